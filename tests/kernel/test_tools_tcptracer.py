"""pybpf.tools.tcptracer on the real kernel: a TCP connection on loopback made by this process (filtered by our
pid) gives connect, accept and close lines; fd_install records for a watched pid.  The kprobe and fentry
flavours need kernels with kprobes / fentry (VM tests)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from conftest import kernel_skip
from toolrun import ToolProcess

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def _connection() -> tuple[int, int, int]:
    """Connect to a listener on 127.0.0.1, accept, close both ends; (client port, server port, accepted fd)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        sport = srv.getsockname()[1]
        with socket.create_connection(("127.0.0.1", sport)) as cli:
            conn, _ = srv.accept()
            with conn:
                return cli.getsockname()[1], sport, conn.fileno()


def _kind_available(kind: str) -> None:
    import pybpf
    from pybpf import prebuilt
    from pybpf.sys import probes

    if kind == "kprobe" and not (probes.feature("kprobe_pmu") or probes.feature("kprobe_events")):
        kernel_skip("no kprobes on this kernel (CONFIG_KPROBES)", feature="kprobe")
    if kind == "fentry":
        try:
            pybpf.load(prebuilt.path("tcptracer_fentry")).close()
        except pybpf.KernelError as e:
            kernel_skip(f"fentry/fexit programs do not load here: {e}", feature="fentry")


# scenario S7 in each flavour; the kprobe and fentry ones run in the kernel-matrix VMs (this host has neither)
@pytest.mark.parametrize("kind", ["tracepoint", pytest.param("kprobe", marks=pytest.mark.feature("kprobe")),
                                  pytest.param("fentry", marks=pytest.mark.feature("fentry"))])
def test_connect_accept_close(kind: str) -> None:
    _kind_available(kind)
    tool = ToolProcess("pybpf.tools.tcptracer", "--kind", kind, "-p", str(os.getpid()), "--json")
    try:
        tool.wait_stderr("SADDR")
        cport, sport, _ = _connection()
        seen: dict[str, dict] = {}
        while len(seen) < 3:
            e = tool.next_json(lambda e: {e["sport"], e["dport"]} == {cport, sport} and e["type"] not in seen)
            seen[e["type"]] = e
        connect, accept = seen["connect"], seen["accept"]
        assert (connect["sport"], connect["dport"], connect["saddr"], connect["daddr"]) == \
            (cport, sport, "127.0.0.1", "127.0.0.1")
        assert (accept["sport"], accept["dport"], accept["ip"]) == (sport, cport, 4)
        assert all(e["pid"] == os.getpid() and e["netns"] == os.stat("/proc/self/ns/net").st_ino
                   for e in seen.values())
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_text_output_and_fd_install() -> None:
    tool = ToolProcess("pybpf.tools.tcptracer", "--kind", "tracepoint", "-v", "-p", str(os.getpid()),
                       "--fdinstall", str(os.getpid()))
    try:
        head = tool.next_line(lambda ln: "SADDR" in ln).split()
        assert head == ["T", "PID", "COMM", "IP", "SADDR", "DADDR", "SPORT", "DPORT", "NETNS", "UID", "FD"]
        cport, sport, fd = _connection()
        accept = tool.next_line(lambda ln: ln.startswith("A ") and ln.split()[6:8] == [str(sport), str(cport)])
        installed = tool.next_line(lambda ln: ln.startswith("F ") and ln.split()[6] == str(sport))
        assert accept.split()[-1] == installed.split()[-1] == str(fd)
        assert accept.split()[1:3] == [str(os.getpid()), Path("/proc/self/comm").read_text().strip()]
    finally:
        assert tool.interrupt() == 0
        tool.kill()
