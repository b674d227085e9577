"""pybpf.tools.xdp_drop on the real kernel (scenario S5 as a tool): on a veth pair between two private network
namespaces, ping fails while the tool runs and TCP still connects; ``ip link`` shows the program; after
Ctrl-C the program is gone and ping works again."""
from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from toolrun import ToolProcess

from pybpf.sys.netns import entered

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair(uniq: str) -> Iterator[tuple[str, str]]:
    """Namespaces ``<uniq>a``/``<uniq>b`` joined by veths of the same names; yields (ns a, ns b)."""
    a, b = f"{uniq}a", f"{uniq}b"
    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("link", "add", a, "netns", a, "type", "veth", "peer", "name", b, "netns", b)
        for ns, addr in ((a, A_ADDR), (b, B_ADDR)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ns)
            ip("-n", ns, "link", "set", ns, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def ping(ns: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "2", B_ADDR],
                          capture_output=True).returncode == 0


def tcp_connects(a: str, b: str) -> bool:
    with entered(b):
        srv = socket.socket()
    with srv:
        srv.bind((B_ADDR, 0))
        srv.listen()
        with entered(a):
            cli = socket.socket()
        with cli:
            cli.settimeout(10)
            cli.connect((B_ADDR, srv.getsockname()[1]))
            conn, _ = srv.accept()
            conn.close()
    return True


def test_ping_dropped_tcp_passes(pair: tuple[str, str]) -> None:
    a, b = pair
    assert ping(a), "the veth pair does not carry ping even without XDP"
    tool = ToolProcess("pybpf.tools.xdp_drop", b, "--netns", b, "--json", "-i", "0.2")
    try:
        tool.wait_stderr("Dropping IP protocol 1")
        assert "prog/xdp" in ip("-n", b, "-d", "link", "show", b)
        assert not ping(a)
        assert tcp_connects(a, b)
        tool.next_json(lambda c: c["dropped"] >= 1 and c["passed"] >= 1)  # the ping dropped, TCP passed
        assert tool.interrupt() == 0
    finally:
        tool.kill()
    assert "prog/xdp" not in ip("-n", b, "-d", "link", "show", b)
    assert ping(a)


def test_verbose_lines_and_other_protocol(pair: tuple[str, str]) -> None:
    a, b = pair
    tool = ToolProcess("pybpf.tools.xdp_drop", b, "--netns", b, "-p", "tcp", "-v", "-i", "60")
    try:
        tool.next_line(lambda ln: ln.startswith("Dropping IP protocol 6"))
        assert ping(a)  # ICMP passes now
        with pytest.raises(TimeoutError):
            with entered(a):
                cli = socket.socket()
            with cli:
                cli.settimeout(1)
                cli.connect((B_ADDR, 9))  # the SYN is dropped: no RST comes back, the connect times out
        tool.next_line(lambda ln: ln.endswith("pybpf-xdp_drop: drop IP protocol 6 packet"))
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_unknown_interface_is_one_line() -> None:
    r = subprocess.run([sys.executable, "-m", "pybpf.tools.xdp_drop", "pbnonexist0"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "pbnonexist0" in r.stderr
