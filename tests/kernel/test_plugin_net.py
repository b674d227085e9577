"""The pytest plugin (pybpf.testing.plugin) on the real kernel, used the way a user would: its fixtures load the
prebuilt XDP, tc (tcx) and socket-filter programs and assembler-built ones, ``run`` drives BPF_PROG_TEST_RUN with
packets from pybpf.testing.packets, and ``assert_map`` checks the counters the programs keep."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from pybpf import prebuilt
from pybpf.testing import assert_map, packets, run

pytestmark = [pytest.mark.kernel, pytest.mark.bpf_root]

Factory = Callable[..., Any]
A, B = "192.0.2.1", "192.0.2.2"
ICMP = packets.icmp_frame(A, B, b"ping")
UDP = packets.udp_frame(A, B, 4000, 53, b"query")
TCP6 = packets.tcp_frame("2001:db8::1", "2001:db8::2", 4000, 80, "S")


@pytest.mark.bpf_prog_type("xdp")
def test_xdp_drop_default_drops_icmp_only(bpf_object: Factory) -> None:
    obj = bpf_object(prebuilt.path("xdp_drop"))
    prog, stats = obj.programs["xdp_drop"], obj.maps["xdp_stats"]
    stats.set_codecs(value="Q")
    assert run(prog, ICMP).verdict == "XDP_DROP"
    for frame in (UDP, TCP6, packets.ether(b"\0" * 28, packets.ETH_P_ARP)):
        r = run(prog, frame)
        assert r.verdict == "XDP_PASS" and r.data == frame
    assert_map(stats, {0: 3, 1: 1}, percpu=sum)


@pytest.mark.bpf_prog_type("xdp")
def test_xdp_drop_rodata_knob_and_repeat(bpf_object: Factory) -> None:
    obj = bpf_object(prebuilt.path("xdp_drop"), globals={"drop_proto": 17})
    prog, stats = obj.programs["xdp_drop"], obj.maps["xdp_stats"]
    stats.set_codecs(value="Q")
    r = run(prog, UDP, repeat=5)
    assert r.verdict == "XDP_DROP" and r.retval == 1 and r.duration_ns >= 0
    assert run(prog, ICMP).verdict == "XDP_PASS"
    assert_map(stats, {0: 1, 1: 5}, percpu=sum)


@pytest.mark.bpf_prog_type("sched_cls")
def test_tcx_programs_count_packets_and_bytes(bpf_object: Factory) -> None:
    obj = bpf_object(prebuilt.path("tcx"))
    counters = obj.maps["counters"]
    counters.set_codecs(value=("QQ", "packets bytes"))
    r = run(obj.programs["tcx_ingress"], UDP)
    assert r.verdict == "TCX_NEXT" and r.signed == -1 and r.retval == 0xFFFFFFFF
    run(obj.programs["tcx_egress"], TCP6, repeat=2)

    def total(per_cpu: list[Any]) -> tuple[int, int]:
        return sum(c.packets for c in per_cpu), sum(c.bytes for c in per_cpu)
    assert_map(counters, {0: (1, len(UDP)), 1: (2, 2 * len(TCP6))}, percpu=total)


@pytest.mark.bpf_prog_type("socket_filter", "xdp", "sched_cls")
def test_prog_types_socket_filter_xdp_tc(bpf_object: Factory) -> None:
    obj = bpf_object(prebuilt.path("prog_types"), programs=["socket_filter", "xdp_prog", "tc_prog"])
    hits = obj.maps["hits"]
    hits.set_codecs(key="I", value="Q")
    # skb->len: the whole packet after the Ethernet header the kernel pulls
    assert run(obj.programs["socket_filter"], UDP).retval == len(UDP) - 14
    assert run(obj.programs["xdp_prog"], UDP).verdict == "XDP_PASS"
    assert run(obj.programs["tc_prog"], UDP, repeat=3).verdict == "TCX_PASS"  # TC_ACT_OK, the same 0
    assert_map(hits, {0: 1, 1: 1, 2: 3}, exact=False)  # P_SOCKET, P_XDP, P_TC


@pytest.mark.bpf_prog_type("xdp", "socket_filter")
def test_assembler_programs(bpf_program: Factory, bpf_map: Factory) -> None:
    xdp = bpf_program("r0 = 1\nexit", "xdp")  # XDP_DROP
    assert run(xdp, ICMP).verdict == "XDP_DROP"
    counts = bpf_map("array", 4, 8, 1, key="I", value="Q")
    sock = bpf_program("""
        r6 = *(u32 *)(r1 + 0)                 # skb->len
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = map[counts] ll
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
    out:
        r0 = r6
        exit
    """, "socket_filter", maps={"counts": counts})
    for _ in range(3):
        assert run(sock, TCP6).retval == len(TCP6) - 14  # skb->len, past the Ethernet header
    assert_map(counts, {0: 3})


def test_assert_map_reports_every_difference(bpf_map: Factory) -> None:
    m = bpf_map("hash", 4, 8, 8, key="I", value="Q", name="pb_diff")
    m.update_batch({1: 10, 2: 20, 3: 30})
    assert_map(m, {1: 10, 2: 20, 3: 30})
    assert_map(m, {2: 20}, exact=False)
    with pytest.raises(AssertionError) as e:
        assert_map(m, {1: 10, 2: 21, 4: 40})
    assert str(e.value) == ("map 'pb_diff' differs from what was expected:\n"
                            "  key 2: expected 21, got 20\n"
                            "  missing key 4 (expected 40)\n"
                            "  unexpected key 3: 30")


def test_run_refuses_packets_shorter_than_ethernet(bpf_program: Factory) -> None:
    with pytest.raises(ValueError, match="Ethernet header"):
        run(bpf_program("r0 = 2\nexit", "xdp"), b"\0" * 4)
