"""Tests of count_udp.bpf.o (assembled from ../count_udp.s) with the pybpf pytest plugin: load it, run it on
packets with BPF_PROG_TEST_RUN, check its map; plus a typed skeleton of a C-built object."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from pybpf import prebuilt
from pybpf.testing import assert_map, packets, run

OBJECT = str(Path(__file__).parent.parent / "count_udp.bpf.o")
A, B = "192.0.2.1", "192.0.2.2"

pytestmark = pytest.mark.bpf_prog_type("xdp")  # skipped, with the reason, where XDP cannot load


def test_counts_udp_and_drops_the_discard_port(bpf_object: Callable[..., Any]) -> None:
    obj = bpf_object(OBJECT)
    prog, counts = obj.programs["count_udp"], obj.maps["udp_count"]
    counts.set_codecs(value="Q")  # the assembled object has no BTF for its map: say what the value is

    assert run(prog, packets.udp_frame(A, B, 5000, 53, b"query")).verdict == "XDP_PASS"
    assert run(prog, packets.udp_frame(A, B, 5000, 9, b"junk"), repeat=3).verdict == "XDP_DROP"
    assert run(prog, packets.tcp_frame(A, B, 5000, 9)).verdict == "XDP_PASS"
    assert run(prog, packets.udp_frame("2001:db8::1", "2001:db8::2", 5000, 9)).verdict == "XDP_PASS"
    assert_map(counts, {0: 4})


@pytest.mark.parametrize("proto, dropped", [(1, "icmp"), (17, "udp")])
def test_typed_skeleton_of_a_c_object(bpf_skeleton: Callable[..., Any], proto: int, dropped: str) -> None:
    mod = bpf_skeleton(prebuilt.path("xdp_drop"))  # generated and imported for this test
    frames = {"icmp": packets.icmp_frame(A, B), "udp": packets.udp_frame(A, B, 1, 2)}
    with mod.XdpDrop() as skel:
        skel.rodata.drop_proto = proto  # a typed .rodata constant, set before load
        skel.load()
        for name, frame in frames.items():
            assert run(skel.progs.xdp_drop, frame).verdict == ("XDP_DROP" if name == dropped else "XDP_PASS")
        assert sum(skel.maps.xdp_stats[1]) == 1  # per-CPU u64 counters: list[int]


@pytest.mark.bpf_feature("kprobe")
def test_needs_kprobes() -> None:
    """Skipped with the probed reason on kernels without kprobes."""
