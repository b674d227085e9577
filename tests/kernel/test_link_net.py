"""Network attachments on the real kernel, between two private network namespaces joined by a veth pair
(192.0.2.1 <-> 192.0.2.2): XDP and tc drop ICMP while TCP still connects and the kernel's own listings (ip
link, tc filter show, BPF_PROG_QUERY on the cgroup) show the program; closing leaves nothing behind.  Also cgroup_skb,
socket filters, reuseport, sockmap, sk_lookup, flow dissector and netfilter."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Iterator

import pytest
from conftest import kernel_skip
from linkprogs import counter_map, icmp_dropper, load_counter

import pybpf
from pybpf.link import (attach_cgroup, attach_netfilter, attach_netns, attach_reuseport, attach_socket,
                        attach_sockmap, attach_tc, attach_xdp, xdp_query)
from pybpf.sys import abi, fs, netlink, syscall
from pybpf.sys.netns import entered
from pybpf.testing.netns import VethPair

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"
TC_ACT_OK, TC_ACT_SHOT = 0, 2
NF_DROP, NF_ACCEPT = 0, 1


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netpair(uniq: str) -> Iterator[VethPair]:
    """Two network namespaces ``<uniq>a`` and ``<uniq>b`` joined by veth interfaces of the same names."""
    with VethPair(uniq, A_ADDR, B_ADDR) as net:
        yield net


# --- XDP and tc ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", [pytest.param(None, marks=pytest.mark.feature("xdp")), "bpf_link", "netlink"])
def test_xdp_drops_icmp_while_tcp_connects(netpair: VethPair, mechanism: str) -> None:
    b = netpair.b
    with counter_map() as m, pybpf.Program.load(icmp_dropper(m.fd, abi.XDP_DROP, abi.XDP_PASS, 0, 4), "xdp",
                                                 name="t_xdp") as prog:
        prog_id = prog.info().id
        with entered(b):
            link = attach_xdp(prog, b, mechanism=mechanism)
        try:
            assert link.mechanism == (mechanism or link.mechanism)
            assert f"prog/xdp id {prog_id} " in sh("ip", "-n", b, "link", "show", b)
            with entered(b):
                assert xdp_query(b).prog_id == prog_id
            assert not netpair.ping()
            assert m[0] >= 1
            assert netpair.tcp_connects()
        finally:
            link.close()  # from the host namespace: the link (or its netlink socket) knows where it acts
        assert "prog/xdp" not in sh("ip", "-n", b, "link", "show", b)
        assert netpair.ping(count=3)


def test_xdp_update_and_busy(netpair: VethPair) -> None:
    b = netpair.b
    with counter_map() as m:
        drop = pybpf.Program.load(icmp_dropper(m.fd, abi.XDP_DROP, abi.XDP_PASS, 0, 4), "xdp", name="t_drop")
        allow = pybpf.Program.load(icmp_dropper(m.fd, abi.XDP_PASS, abi.XDP_PASS, 0, 4), "xdp", name="t_allow")
        with drop, allow:
            for mechanism in ("bpf_link", "netlink"):
                with entered(b):
                    link = attach_xdp(drop, b, mechanism=mechanism)
                    with pytest.raises(pybpf.KernelError) as ei:
                        attach_xdp(allow, b, mechanism="netlink")  # something is attached already
                    assert ei.value.errno_name in ("EBUSY", "EEXIST")
                with link:
                    assert not netpair.ping()
                    link.update(allow, old=drop)
                    assert link.info().prog_id == allow.info().id
                    assert netpair.ping(count=3)
                    with pytest.raises(pybpf.KernelError):
                        link.update(allow, old=drop)  # drop is not the attached program any more
                    link.update(drop)
                    assert not netpair.ping()
                assert "prog/xdp" not in sh("ip", "-n", b, "link", "show", b)


@pytest.mark.parametrize("mechanism", [pytest.param(None, marks=pytest.mark.feature("tc")), "bpf_link", "netlink"])
def test_tc_ingress_drops_icmp(netpair: VethPair, mechanism: str) -> None:
    b = netpair.b
    with counter_map() as m, pybpf.Program.load(icmp_dropper(m.fd, TC_ACT_SHOT, TC_ACT_OK, 76, 80), "sched_cls",
                                                 name="t_tc") as prog:
        prog_id = prog.info().id
        with entered(b):
            link = attach_tc(prog, b, "ingress", mechanism=mechanism)
        try:
            if link.mechanism == "netlink":
                shown = sh("tc", "-n", b, "filter", "show", "dev", b, "ingress")
                assert f"id {prog_id} " in shown and "direct-action" in shown
            else:
                assert link.info().type_name == "tcx"
            assert not netpair.ping()
            assert m[0] >= 1
            assert netpair.tcp_connects()
        finally:
            link.close()
        assert sh("tc", "-n", b, "filter", "show", "dev", b, "ingress").strip() == ""
        assert "clsact" not in sh("tc", "-n", b, "qdisc", "show", "dev", b)
        assert netpair.ping(count=3)


def test_tc_from_section_keeps_foreign_clsact(netpair: VethPair) -> None:
    """A clsact qdisc that was there before is left in place; ours (egress, from SEC("tc/egress")) goes."""
    a = netpair.a
    sh("tc", "-n", a, "qdisc", "add", "dev", a, "clsact")
    prog, m = load_counter("sched_cls", ret=TC_ACT_OK, expected_attach_type="tcx_egress")
    prog.section = "tc/egress"
    with prog, m:
        with entered(a):
            link = prog.attach(a, mechanism="netlink")
        with link:
            assert link.info()["direction"] == "egress"
            assert netpair.ping()
            assert m[0] >= 1
        assert sh("tc", "-n", a, "filter", "show", "dev", a, "egress").strip() == ""
        assert "clsact" in sh("tc", "-n", a, "qdisc", "show", "dev", a)


# --- cgroups ---------------------------------------------------------------------------------------------------


@pytest.fixture
def cgroup(uniq: str) -> Iterator[str]:
    """A new cgroup v2 directory (cgroup2 is at /sys/fs/cgroup/unified here, at /sys/fs/cgroup elsewhere)."""
    root = next((point for point, kind in fs.mounts() if kind == "cgroup2"), None)
    if root is None:
        kernel_skip("no cgroup2 file system mounted", feature="cgroup2")
    path = os.path.join(root, uniq)
    os.mkdir(path)
    try:
        yield path
    finally:
        os.rmdir(path)


def egress_progs(cgroup: str) -> list[int]:
    """Ids of the programs on the cgroup's egress hook, as the kernel lists them (BPF_PROG_QUERY)."""
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return syscall.prog_query(fd, abi.BPF_CGROUP_INET_EGRESS)[1]
    finally:
        os.close(fd)


def udp_send_from(cgroup: str) -> str:
    """Send one UDP datagram from a child process placed in ``cgroup``; return what the child saw."""
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    s.sendto(b'x', ('127.0.0.1', 9))\n    print('sent')\nexcept OSError as e:\n"
            "    print(e.strerror)")

    def enter() -> None:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    return subprocess.run([sys.executable, "-c", code], preexec_fn=enter, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("mechanism", [pytest.param(None, marks=pytest.mark.feature("cgroup")), "bpf_link",
                                       "prog_attach"])
def test_cgroup_skb_egress_drop(cgroup: str, mechanism: str) -> None:
    prog, m = load_counter("cgroup_skb", ret=0, expected_attach_type="cgroup_inet_egress")
    with prog, m:
        with attach_cgroup(prog, cgroup, mechanism=mechanism) as link:
            assert egress_progs(cgroup) == [prog.info().id]
            assert udp_send_from(cgroup) == "Operation not permitted"
            assert m[0] == 1
            assert link.info().prog_id == prog.info().id
        assert egress_progs(cgroup) == []
        assert udp_send_from(cgroup) == "sent"
        assert m[0] == 1


def test_cgroup_prog_attach_update(cgroup: str) -> None:
    drop, m = load_counter("cgroup_skb", ret=0, expected_attach_type="cgroup_inet_egress")
    allow = pybpf.Program.load(b"\xb7\0\0\0\1\0\0\0\x95\0\0\0\0\0\0\0", "cgroup_skb", name="t_allow",
                               expected_attach_type="cgroup_inet_egress")
    with drop, allow, m, attach_cgroup(drop, cgroup, mechanism="prog_attach") as link:
        assert udp_send_from(cgroup) != "sent"
        link.update(allow)
        assert udp_send_from(cgroup) == "sent"
        assert link.info().prog_id == allow.info().id
    assert egress_progs(cgroup) == []


# --- sockets ---------------------------------------------------------------------------------------------------


def test_socket_filter_drops_then_detaches() -> None:
    prog, m = load_counter("socket_filter", ret=0)  # keep 0 bytes: drop
    with prog, m, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        with attach_socket(prog, rx) as link:
            for i in range(3):
                tx.sendto(b"dropped%d" % i, rx.getsockname())
            assert link.mechanism == "sockopt"
        tx.sendto(b"after", rx.getsockname())
        assert rx.recv(100) == b"after"  # the three earlier ones never reached the socket
        assert m[0] == 3


def test_reuseport_program_sees_each_datagram() -> None:
    prog, m = load_counter("sk_reuseport", ret=abi.SK_PASS)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        socks[0].bind(("127.0.0.1", 0))
        socks[1].bind(socks[0].getsockname())
        with prog, m, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            with attach_reuseport(prog, socks[0]):
                for _ in range(4):
                    tx.sendto(b"x", socks[0].getsockname())
            tx.sendto(b"x", socks[0].getsockname())
            assert m[0] == 4
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("mechanism", ["bpf_link", "prog_attach"])
def test_sk_msg_on_sockmap(mechanism: str) -> None:
    prog, m = load_counter("sk_msg", ret=abi.SK_PASS, expected_attach_type="sk_msg_verdict")
    with prog, m, pybpf.Map.create("sockmap", 4, 4, 1, key="I", value="I") as smap:
        with attach_sockmap(prog, smap, mechanism=mechanism) as link:
            assert link.mechanism == mechanism
            with socket.create_server(("127.0.0.1", 0)) as server, \
                    socket.create_connection(server.getsockname()) as client:
                conn, _ = server.accept()
                with conn:
                    smap[0] = client.fileno()
                    for _ in range(3):
                        client.sendall(b"abc")
                    assert conn.recv(9, socket.MSG_WAITALL) == b"abc" * 3
        assert m[0] == 3
        _, attached = syscall.prog_query(smap.fd, abi.BPF_SK_MSG_VERDICT)
        assert attached == []


# --- per-namespace hooks ----------------------------------------------------------------------------------------


def test_sk_lookup_sees_connections(netpair: VethPair) -> None:
    b = netpair.b
    prog, m = load_counter("sk_lookup", ret=abi.SK_PASS, expected_attach_type="sk_lookup")
    with prog, m:
        with attach_netns(prog, b) as link:
            assert link.info()["netns_ino"] == os.stat(f"/var/run/netns/{b}").st_ino
            assert netpair.tcp_connects()
            assert m[0] >= 1
        seen = m[0]
        assert netpair.tcp_connects() and m[0] == seen


@pytest.mark.parametrize("mechanism", ["bpf_link", "prog_attach"])
def test_flow_dissector_runs_for_rps(netpair: VethPair, mechanism: str) -> None:
    """Receive packet steering hashes each packet b receives, which runs b's flow dissector."""
    b = netpair.b
    sh("ip", "netns", "exec", b, "sh", "-c", f"echo 1 > /sys/class/net/{b}/queues/rx-0/rps_cpus")
    prog, m = load_counter("flow_dissector", ret=abi.BPF_OK, expected_attach_type="flow_dissector")
    with prog, m:
        with attach_netns(prog, b, mechanism=mechanism) as link:
            assert link.mechanism == mechanism
            assert netpair.ping()
            assert m[0] >= 1
        with open(f"/var/run/netns/{b}") as ns:
            assert syscall.prog_query(ns.fileno(), abi.BPF_FLOW_DISSECTOR)[1] == []


def test_netfilter_local_in_drop(netpair: VethPair) -> None:
    b = netpair.b
    prog, m = load_counter("netfilter", ret=NF_DROP, expected_attach_type="netfilter")
    with prog, m:
        with entered(b):
            link = attach_netfilter(prog, "ipv4", "local_in", priority=-128)
        with link:
            assert link.info()["hooknum"] == abi.NF_INET_LOCAL_IN
            assert not netpair.ping()
            assert m[0] >= 1
        assert netpair.ping(count=3)


def test_netlink_errors_carry_the_kernels_message(netpair: VethPair) -> None:
    """No clsact qdisc yet: the kernel's extended ACK says what is missing, and the error shows it."""
    a = netpair.a
    prog, m = load_counter("sched_cls")
    with prog, m:
        with entered(a):
            rtnl, index = netlink.Rtnl(), netlink.ifindex(a)
        with rtnl, pytest.raises(pybpf.KernelError) as ei:
            rtnl.bpf_filter_add(index, abi.TC_H_CLSACT & 0xFFFF0000 | abi.TC_H_MIN_INGRESS, prog.fd, "t")
    assert ei.value.errno_name == "EINVAL" and "Qdisc" in str(ei.value)
