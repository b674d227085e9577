#!/usr/bin/env python3
"""Scenario S5, end to end: XDP drops ICMP on a veth pair between two network namespaces.

    sudo python3 examples/xdp_drop_veth.py                       # bpf_link where the kernel has one
    sudo python3 examples/xdp_drop_veth.py --mechanism netlink   # the pre-5.9 way (IFLA_XDP)
    sudo python3 examples/xdp_drop_veth.py --mode skb            # generic XDP

Creates namespaces xdpdemo-a (192.0.2.1) and xdpdemo-b (192.0.2.2) joined by veth, loads the prebuilt
xdp_drop.bpf.o (its .rodata knob drop_proto = ICMP), enters namespace b from Python (``ip netns exec``
would remount /sys) and attaches the program to b's interface.  Then: ping from a fails, TCP from a to b
still connects, ``ip link`` shows the program; after the Link is closed ping works again.  Everything it
made is removed on exit.
"""
from __future__ import annotations

import argparse
import socket
import subprocess

from pybpf.link import attach_xdp
from pybpf.loader import load
from pybpf.prebuilt import path as prebuilt
from pybpf.sys.netns import entered

NS_A, NS_B = "xdpdemo-a", "xdpdemo-b"
ADDR_A, ADDR_B = "192.0.2.1", "192.0.2.2"


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def ping() -> bool:
    r = subprocess.run(["ip", "netns", "exec", NS_A, "ping", "-n", "-c", "2", "-i", "0.3", "-W", "1", ADDR_B],
                       capture_output=True)
    return r.returncode == 0


def tcp_connects() -> bool:
    with entered(NS_B):
        server = socket.create_server((ADDR_B, 8080))
    with entered(NS_A):
        client = socket.socket()
    with server, client:
        client.settimeout(5)
        client.connect((ADDR_B, 8080))
        server.accept()[0].close()
        return True


def setup() -> None:
    sh("ip", "netns", "add", NS_A)
    sh("ip", "netns", "add", NS_B)
    sh("ip", "link", "add", "veth-a", "netns", NS_A, "type", "veth", "peer", "name", "veth-b", "netns", NS_B)
    for ns, dev, addr in ((NS_A, "veth-a", ADDR_A), (NS_B, "veth-b", ADDR_B)):
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mechanism", choices=["bpf_link", "netlink"], help="force how XDP is attached")
    ap.add_argument("--mode", choices=["skb", "drv"], help="XDP mode (default: the kernel's choice)")
    args = ap.parse_args()
    try:
        setup()
        print(f"before: ping {'works' if ping() else 'FAILS'}")
        with load(prebuilt("xdp_drop"), globals={"drop_proto": 1}) as obj:
            prog = obj.programs["xdp_drop"]
            with entered(NS_B):
                link = attach_xdp(prog, "veth-b", mode=args.mode, mechanism=args.mechanism)
            with link:
                print(f"attached: {link!r}")
                shown = sh("ip", "-n", NS_B, "link", "show", "veth-b").splitlines()
                print("ip link:", next(ln.strip() for ln in shown if "prog/xdp" in ln))
                print(f"with XDP: ping {'works' if ping() else 'fails'}, "
                      f"TCP {'connects' if tcp_connects() else 'fails'}")
                stats = obj.maps["xdp_stats"]  # per-CPU array: one u64 per CPU for each of [passed, dropped]
                stats.set_codecs(key="I", value="Q")
                print(f"counters: {sum(stats[0])} passed, {sum(stats[1])} dropped")
        print(f"detached: ping {'works' if ping() else 'FAILS'}; "
              f"ip link shows {'no program' if 'prog/xdp' not in sh('ip', '-n', NS_B, 'link') else 'a program'}")
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    main()
