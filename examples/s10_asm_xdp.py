#!/usr/bin/env python3
"""Scenario S10: an XDP program written by hand in eBPF assembly, loaded and attached with no compiler.

    sudo python3 examples/s10_asm_xdp.py            # on a veth pair between two private namespaces

The program drops UDP datagrams to port 9 ("discard") and passes everything else, counting both in an
array map.  It is attached to the veth of namespace b; datagrams sent from namespace a are counted as they
arrive, TCP still connects, and BPF_PROG_TEST_RUN on hand-built frames gives the same verdicts.
"""
from __future__ import annotations

import argparse

import pybpf
from pybpf.link import attach_xdp
from pybpf.sys import abi
from pybpf.testing import packets
from pybpf.testing.netns import VethPair

PROGRAM = """
    r2 = *(u32 *)(r1 + 0)              # ctx->data
    r3 = *(u32 *)(r1 + 4)              # ctx->data_end
    r7 = 0                             # counter index: 0 passed, 1 dropped
    r8 = 2                             # verdict: XDP_PASS
    r4 = r2
    r4 += 42                           # Ethernet (14) + IPv4 without options (20) + UDP (8)
    if r4 > r3 goto count
    r5 = *(u16 *)(r2 + 12)             # EtherType, big endian: 0x0800 reads as 0x0008
    if r5 != 0x8 goto count
    r5 = *(u8 *)(r2 + 14)              # version and header length
    if r5 != 0x45 goto count
    r5 = *(u8 *)(r2 + 23)              # IP protocol
    if r5 != 17 goto count
    r5 = *(u16 *)(r2 + 36)             # UDP destination port, big endian: 9 reads as 0x0900
    if r5 != 0x900 goto count
    r7 = 1
    r8 = 1                             # XDP_DROP
count:
    *(u32 *)(r10 - 4) = r7
    r2 = r10
    r2 += -4
    r1 = map[counts] ll
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = r8
    exit
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", default="asmdemo-", help="namespace name prefix (namespaces PREFIXa, PREFIXb)")
    ap.add_argument("-n", "--count", type=int, default=5, help="UDP datagrams to send to each port")
    args = ap.parse_args()

    with pybpf.Map.create("array", 4, 8, 2, name="counts", key="I", value="Q") as counts, \
            pybpf.Program.load(PROGRAM, "xdp", name="asm_xdp", maps={"counts": counts}) as prog:
        a, b = "192.0.2.1", "192.0.2.2"
        for what, frame in (("udp to port 9", packets.udp_frame(a, b, 5000, 9, b"x")),
                            ("udp to port 53", packets.udp_frame(a, b, 5000, 53, b"x")),
                            ("tcp syn", packets.tcp_frame(a, b, 5000, 9))):
            verdict = prog.test_run(frame).retval
            print(f"test run, {what}: {'XDP_DROP' if verdict == abi.XDP_DROP else 'XDP_PASS'}")
        counts[0], counts[1] = 0, 0

        with VethPair(args.prefix, a, b) as net:
            with net.inside_b():
                link = attach_xdp(prog, net.b)
            with link:
                # datagrams are counted by the program as the veth receives them, in order
                for _ in range(args.count):
                    net.udp_send(9)
                    net.udp_send(53)
                connects = net.tcp_connects()
            print(f"attached to {net.b}: UDP to port 9 dropped {counts[1]}, other packets passed {counts[0]}; "
                  f"TCP {'connects' if connects else 'FAILS'}")


if __name__ == "__main__":
    main()
