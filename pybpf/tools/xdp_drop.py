"""xdp-drop: drop every packet of one IP protocol arriving on a network interface, at XDP, until Ctrl-C.

Runs the prebuilt ``xdp_drop.bpf.o`` with its ``.rodata`` knob ``drop_proto`` set before load (default ICMP:
ping fails while TCP still connects), attaches it to the interface (a bpf_link, or netlink on older kernels)
and prints the passed/dropped counters every INTERVAL seconds; detaching on exit restores the traffic::

    python -m pybpf.tools.xdp_drop eth1                  # drop ICMP on eth1
    pybpf-xdp-drop veth0 --proto udp --mode skb -i 5     # drop UDP, generic XDP, counters every 5 s
    pybpf-xdp-drop veth1 --netns blue --verbose          # in network namespace blue, a line per drop
"""
from __future__ import annotations

import argparse
import time
from typing import Any

from .runner import Printer, Session, tool_main

EXAMPLES = """examples:
    pybpf-xdp-drop eth1                 # drop ICMP arriving on eth1
    pybpf-xdp-drop eth1 -p tcp          # drop TCP instead (protocol name or number)
    pybpf-xdp-drop eth1 -p icmpv6       # drop ICMPv6 (IPv6 next header 58)
    pybpf-xdp-drop eth1 --mode skb      # generic (skb) XDP, for drivers without native XDP
    pybpf-xdp-drop veth1 --netns blue   # an interface of network namespace 'blue'
    pybpf-xdp-drop eth1 -v              # print a line per dropped packet (bpf_printk)
    pybpf-xdp-drop eth1 -i 5 -d 60      # counters every 5 s, stop after a minute
"""
PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58,
             "sctp": 132, "udplite": 136}


def protocol(text: str) -> int:
    """An IP protocol number from a name (``icmp``, ``tcp``...) or a number 0-255."""
    number = PROTOCOLS.get(text.lower())
    if number is None:
        try:
            number = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"unknown protocol {text!r}: give a number or one of "
                                             f"{', '.join(PROTOCOLS)}") from None
    if not 0 <= number <= 255:
        raise argparse.ArgumentTypeError(f"protocol {number} is not between 0 and 255")
    return number


def parser() -> argparse.ArgumentParser:
    """The tool's command line."""
    p = argparse.ArgumentParser(prog="pybpf-xdp-drop", description="Drop one IP protocol on an interface with XDP.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("iface", metavar="IFACE", help="network interface to attach to")
    p.add_argument("-p", "--proto", type=protocol, default=1, metavar="PROTO",
                   help="IP protocol to drop: name (icmp, tcp, udp, icmpv6...) or number (default icmp)")
    p.add_argument("--mode", choices=("skb", "drv", "hw"), help="XDP mode (default: native when the driver has it)")
    p.add_argument("--netns", metavar="NAME", help="network namespace of the interface (ip netns name or path)")
    p.add_argument("-v", "--verbose", action="store_true", help="print a line per dropped packet")
    p.add_argument("-i", "--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between counter lines (default 1)")
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print counters (and drops) as JSON objects")
    return p


def run(args: argparse.Namespace) -> int:
    """Attach, report counters until Ctrl-C (or ``--duration``), detach."""
    if args.interval <= 0:
        raise ValueError("the interval must be positive")
    knobs = {"drop_proto": args.proto, "verbose": int(args.verbose)}
    out = Printer(args.json)
    with Session("xdp_drop", globals=knobs, targets={"xdp_drop": args.iface}, netns=args.netns,
                 attach_options={"xdp_drop": {"mode": args.mode}} if args.mode else None) as s:
        stats = s.obj.maps["xdp_stats"]
        link = s.links["xdp_drop"]

        def counters() -> None:
            passed, dropped = sum(stats[0]), sum(stats[1])
            out.event(f"{time.strftime('%H:%M:%S'):<8} {passed:>12} {dropped:>12}",
                      {"time": time.strftime("%H:%M:%S"), "passed": passed, "dropped": dropped})

        def dropped(line: Any) -> None:
            out.event(f"{line.timestamp:.6f} {line.message}", {"type": "drop", "message": line.message})

        if args.verbose:
            s.printk(dropped)
        banner = (f"Dropping IP protocol {args.proto} on {args.iface} (XDP via {link.mechanism}). Ctrl-C to end.\n"
                  f"{'TIME':<8} {'PASSED':>12} {'DROPPED':>12}")
        s.run(ready=lambda: out.header(banner), interval=args.interval, tick=counters, duration=args.duration)
        counters()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pybpf-xdp-drop`` / ``python -m pybpf.tools.xdp_drop``."""
    return tool_main(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
