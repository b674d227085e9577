#!/usr/bin/env python3
"""Scenario S5, end to end: XDP drops ICMP on a veth pair between two network namespaces.

    sudo python3 examples/s5_xdp_drop.py                       # bpf_link where the kernel has one
    sudo python3 examples/s5_xdp_drop.py --mechanism netlink   # the pre-5.9 way (IFLA_XDP)
    sudo python3 examples/s5_xdp_drop.py --mode skb            # generic XDP

Creates namespaces xdpdemo-a (192.0.2.1) and xdpdemo-b (192.0.2.2) joined by veth (pybpf.testing.netns), loads the
prebuilt xdp_drop.bpf.o (its .rodata knob drop_proto = ICMP), enters namespace b from Python (``ip netns exec``
would remount /sys) and attaches the program to b's interface.  Then: ping from a fails, TCP from a to b
still connects, ``ip link`` shows the program; after the Link is closed ping works again.  Everything it
made is removed on exit.
"""
from __future__ import annotations

import argparse
import subprocess

from pybpf.link import attach_xdp
from pybpf.loader import load
from pybpf.prebuilt import path as prebuilt
from pybpf.testing.netns import VethPair


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mechanism", choices=["bpf_link", "netlink"], help="force how XDP is attached")
    ap.add_argument("--mode", choices=["skb", "drv"], help="XDP mode (default: the kernel's choice)")
    ap.add_argument("--prefix", default="xdpdemo-", help="namespace name prefix (namespaces PREFIXa, PREFIXb)")
    args = ap.parse_args()
    with VethPair(args.prefix) as net:
        print(f"before: ping {'works' if net.ping() else 'FAILS'}")
        with load(prebuilt("xdp_drop"), globals={"drop_proto": 1}) as obj:
            prog = obj.programs["xdp_drop"]
            with net.inside_b():
                link = attach_xdp(prog, net.b, mode=args.mode, mechanism=args.mechanism)
            with link:
                print(f"attached: {link!r}")
                shown = sh("ip", "-n", net.b, "link", "show", net.b).splitlines()
                print("ip link:", next(ln.strip() for ln in shown if "prog/xdp" in ln))
                print(f"with XDP: ping {'works' if net.ping() else 'fails'}, "
                      f"TCP {'connects' if net.tcp_connects() else 'fails'}")
                stats = obj.maps["xdp_stats"]  # per-CPU array: one u64 per CPU for each of [passed, dropped]
                stats.set_codecs(key="I", value="Q")
                print(f"counters: {sum(stats[0])} passed, {sum(stats[1])} dropped")
        print(f"detached: ping {'works' if net.ping() else 'FAILS'}; "
              f"ip link shows {'no program' if 'prog/xdp' not in sh('ip', '-n', net.b, 'link') else 'a program'}")


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    main()
