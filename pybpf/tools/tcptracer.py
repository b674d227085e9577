"""tcptracer: trace TCP connections -- a line per connect (C), accept (A) and close (X), as BCC's tcptracer.

Three prebuilt objects send the same ``struct tcp_event`` records on a perf event array; ``--kind`` picks one
(default: kprobes where the kernel has them, else tracepoints):

* ``tracepoint`` -- ``tcptracer.bpf.o``: ``sock/inet_sock_set_state`` and ``syscalls/sys_exit_accept{,4}``;
* ``kprobe``     -- ``tcptracer_kprobe.bpf.o``: tcp_v4/v6_connect, inet_csk_accept, tcp_close (tcptracer-bpf's hooks);
* ``fentry``     -- ``tcptracer_fentry.bpf.o``: the same functions through fentry/fexit.

``--fdinstall PID`` also reports (F) each new socket fd of that process, through the ``fdinstall_pids`` map::

    python -m pybpf.tools.tcptracer
    pybpf-tcptracer -t -v -p 1234
"""
from __future__ import annotations

import argparse
import ipaddress
import time
from typing import Any

from .runner import Printer, Session, tool_main

EXAMPLES = """examples:
    pybpf-tcptracer               # trace TCP connect, accept and close events
    pybpf-tcptracer -t            # include a timestamp column
    pybpf-tcptracer -p 181        # only process 181
    pybpf-tcptracer -N 4026531840 # only network namespace 4026531840
    pybpf-tcptracer -v            # include network namespace, UID and fd columns
    pybpf-tcptracer --fdinstall 181  # also report new socket fds of process 181 (F)
    pybpf-tcptracer --kind tracepoint  # force the tracepoint flavour
"""
# kind -> (prebuilt object, programs always loaded, optional programs (hooks some kernels lack), fd_install program)
FLAVOURS: dict[str, tuple[str, list[str], list[str], str]] = {
    "tracepoint": ("tcptracer", ["inet_sock_set_state", "sys_exit_accept4"], ["sys_exit_accept"], ""),
    "kprobe": ("tcptracer_kprobe", ["tcp_v4_connect", "tcp_v4_connect_ret", "inet_csk_accept_ret", "tcp_close"],
               ["tcp_v6_connect", "tcp_v6_connect_ret"], "fd_install"),
    "fentry": ("tcptracer_fentry", ["tcp_v4_connect_exit", "inet_csk_accept_exit", "tcp_close_entry"],
               ["tcp_v6_connect_exit"], "fd_install_entry"),
}
EVENT_LETTERS = {1: "C", 2: "A", 3: "X", 4: "F"}
EVENT_NAMES = {1: "connect", 2: "accept", 3: "close", 4: "fd_install"}
AF_INET = 2


def parser() -> argparse.ArgumentParser:
    """The tool's command line."""
    p = argparse.ArgumentParser(prog="pybpf-tcptracer", description="Trace TCP connect, accept and close events.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-t", "--timestamp", action="store_true", help="include seconds since the tool started")
    p.add_argument("-p", "--pid", type=int, metavar="PID", help="trace this process only")
    p.add_argument("-N", "--netns", type=int, metavar="NETNS", help="trace this network namespace (inode) only")
    p.add_argument("-v", "--verbose", action="store_true", help="include network namespace, UID and fd columns")
    p.add_argument("--fdinstall", type=int, metavar="PID", action="append", default=[],
                   help="also report new fds of this process (repeatable)")
    p.add_argument("--kind", choices=("auto", *FLAVOURS), default="auto",
                   help="hooks to use (default auto: kprobes if the kernel has them, else tracepoints)")
    p.add_argument("--json", action="store_true", help="print one JSON object per event")
    return p


def choose_kind(kind: str) -> str:
    """The flavour ``auto`` means on this kernel: kprobe where kprobes exist, else tracepoint."""
    if kind != "auto":
        return kind
    from ..sys import probes

    return "kprobe" if probes.feature("kprobe_pmu") or probes.feature("kprobe_events") else "tracepoint"


def address(family: int, raw: bytes) -> str:
    """An address from an event's 16 bytes (IPv4 uses the first 4)."""
    return str(ipaddress.IPv4Address(raw[:4]) if family == AF_INET else ipaddress.IPv6Address(raw))


def run(args: argparse.Namespace) -> int:
    """Trace until Ctrl-C."""
    kind = choose_kind(args.kind)
    obj, required, optional, fd_install = FLAVOURS[kind]
    programs = required + optional + ([fd_install] if args.fdinstall and fd_install else [])
    out = Printer(args.json)
    with Session(obj, programs=programs, optional=optional) as s:
        watched = s.obj.maps["fdinstall_pids"]
        for pid in args.fdinstall:
            watched[pid] = 1
        start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)

        def event(e: Any) -> None:
            if (args.pid is not None and e.pid != args.pid) or (args.netns is not None and e.netns != args.netns):
                return
            ip = 4 if e.family == AF_INET else 6
            saddr, daddr = address(e.family, e.saddr), address(e.family, e.daddr)
            cols = []
            if args.timestamp:
                cols.append(f"{(e.ts_ns - start_ns) / 1e9:<9.3f}")
            cols.append(f"{EVENT_LETTERS.get(e.type, '?'):<2} {e.pid:<6} {e.comm:<16} {ip:<2} {saddr:<16} "
                        f"{daddr:<16} {e.sport:<6} {e.dport:<6}")
            if args.verbose:
                cols.append(f"{e.netns:<10} {e.uid:<6} {e.fd}")
            out.event(" ".join(cols), {"ts_ns": e.ts_ns, "type": EVENT_NAMES.get(e.type, str(e.type)), "pid": e.pid,
                                       "tid": e.tid, "comm": e.comm, "uid": e.uid, "ip": ip, "saddr": saddr,
                                       "daddr": daddr, "sport": e.sport, "dport": e.dport, "netns": e.netns,
                                       "fd": e.fd})

        def lost(cpu: int, count: int) -> None:
            out.event(f"lost {count} events on CPU {cpu}", {"type": "lost", "cpu": cpu, "count": count})

        s.perf("events", event, decode=s.codec("tcp_event"), lost=lost)
        head = [f"{'TIME(s)':<9}"] if args.timestamp else []
        head.append(f"{'T':<2} {'PID':<6} {'COMM':<16} {'IP':<2} {'SADDR':<16} {'DADDR':<16} {'SPORT':<6} {'DPORT':<6}")
        if args.verbose:
            head.append(f"{'NETNS':<10} {'UID':<6} FD")
        banner = f"Tracing TCP established connections ({kind}). Ctrl-C to end.\n" + " ".join(head)
        s.run(ready=lambda: out.header(banner))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pybpf-tcptracer`` / ``python -m pybpf.tools.tcptracer``."""
    return tool_main(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
