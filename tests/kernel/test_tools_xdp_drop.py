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
from pybpf.testing.netns import VethPair

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair(uniq: str) -> Iterator[VethPair]:
    """Namespaces ``<uniq>a``/``<uniq>b`` joined by veths of the same names."""
    with VethPair(uniq, A_ADDR, B_ADDR) as net:
        yield net


def test_ping_dropped_tcp_passes(pair: VethPair) -> None:
    b = pair.b
    assert pair.ping(), "the veth pair does not carry ping even without XDP"
    tool = ToolProcess("pybpf.tools.xdp_drop", b, "--netns", b, "--json", "-i", "0.2")
    try:
        tool.wait_stderr("Dropping IP protocol 1")
        assert "prog/xdp" in ip("-n", b, "-d", "link", "show", b)
        assert not pair.ping()
        assert pair.tcp_connects()
        tool.next_json(lambda c: c["dropped"] >= 1 and c["passed"] >= 1)  # the ping dropped, TCP passed
        assert tool.interrupt() == 0
    finally:
        tool.kill()
    assert "prog/xdp" not in ip("-n", b, "-d", "link", "show", b)
    assert pair.ping()


def test_verbose_lines_and_other_protocol(pair: VethPair) -> None:
    a, b = pair.a, pair.b
    tool = ToolProcess("pybpf.tools.xdp_drop", b, "--netns", b, "-p", "tcp", "-v", "-i", "60")
    try:
        tool.next_line(lambda ln: ln.startswith("Dropping IP protocol 6"))
        assert pair.ping()  # ICMP passes now
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
