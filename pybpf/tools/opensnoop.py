"""opensnoop: trace open() and openat() -- one line per call, with the process, the fd or error, and the path.

Runs the prebuilt ``opensnoop.bpf.o`` (tracepoints ``syscalls/sys_{enter,exit}_open{,at}``, records on a ring
buffer; the pid, thread, uid and failed-only filters run in the kernel) and prints lines as BCC's opensnoop::

    python -m pybpf.tools.opensnoop          # every open
    pybpf-opensnoop -p 1234 -x               # failed opens of one process
    pybpf-opensnoop -n nginx -e -f O_WRONLY  # opens for writing by processes named like nginx, with flags
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

from .runner import Printer, Session, tool_main

EXAMPLES = """examples:
    pybpf-opensnoop                # trace every open()
    pybpf-opensnoop -T             # include a timestamp column
    pybpf-opensnoop -U             # include a UID column
    pybpf-opensnoop -x             # only failed opens
    pybpf-opensnoop -p 181         # only process 181 (-t for one thread, -u for one user)
    pybpf-opensnoop -n main        # only processes whose name contains 'main'
    pybpf-opensnoop -e             # show the open flags
    pybpf-opensnoop -f O_WRONLY -f O_RDWR  # only opens for writing
    pybpf-opensnoop -d 10          # trace for 10 seconds only
"""
_ACCESS = {"O_RDONLY": os.O_RDONLY, "O_WRONLY": os.O_WRONLY, "O_RDWR": os.O_RDWR}


def _flag(name: str) -> str:
    name = name.upper()
    if not name.startswith("O_"):
        name = "O_" + name
    if not isinstance(getattr(os, name, None), int):
        raise argparse.ArgumentTypeError(f"unknown open flag {name!r} (e.g. O_WRONLY, O_CREAT)")
    return name


def parser() -> argparse.ArgumentParser:
    """The tool's command line."""
    p = argparse.ArgumentParser(prog="pybpf-opensnoop", description="Trace open() and openat() syscalls.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-T", "--timestamp", action="store_true", help="include seconds since the tool started")
    p.add_argument("-U", "--print-uid", action="store_true", help="include a UID column")
    p.add_argument("-x", "--failed", action="store_true", help="only show failed opens")
    who = p.add_mutually_exclusive_group()
    who.add_argument("-p", "--pid", type=int, metavar="PID", help="trace this process only")
    who.add_argument("-t", "--tid", type=int, metavar="TID", help="trace this thread only")
    p.add_argument("-u", "--uid", type=int, metavar="UID", help="trace this user only")
    p.add_argument("-d", "--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("-n", "--name", metavar="NAME", help="only processes whose name contains NAME")
    p.add_argument("-e", "--extended-fields", action="store_true", help="include the open flags (octal)")
    p.add_argument("-f", "--flag-filter", metavar="FLAG", type=_flag, action="append", default=[],
                   help="only opens with this flag (O_WRONLY, O_CREAT...; repeatable, any matches)")
    p.add_argument("--json", action="store_true", help="print one JSON object per open")
    return p


def _flags_match(flags: int, wanted: list[str]) -> bool:
    for name in wanted:
        if name in _ACCESS:
            if flags & os.O_ACCMODE == _ACCESS[name]:
                return True
        elif flags & getattr(os, name):
            return True
    return False


def run(args: argparse.Namespace) -> int:
    """Trace until Ctrl-C or the end of ``--duration``."""
    knobs: dict[str, int] = {"targ_failed": int(args.failed)}
    for knob, value in (("targ_pid", args.pid), ("targ_tid", args.tid), ("targ_uid", args.uid)):
        if value is not None:
            knobs[knob] = value
    out = Printer(args.json)
    syscalls = ("open", "openat")
    optional = [f"tracepoint__syscalls__sys_{side}_{call}" for side in ("enter", "exit") for call in syscalls]
    with Session("opensnoop", globals=knobs, optional=optional) as s:
        if not s.links:
            raise OSError("none of the open/openat syscall tracepoints exists on this kernel")
        codec = s.codec("open_event")
        start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)

        def event(e: Any) -> None:
            if args.name and args.name not in e.comm:
                return
            if args.flag_filter and not _flags_match(e.flags, args.flag_filter):
                return
            fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
            cols = []
            if args.timestamp:
                cols.append(f"{(e.ts_ns - start_ns) / 1e9:<14.9f}")
            if args.print_uid:
                cols.append(f"{e.uid:<6}")
            cols.append(f"{e.pid:<6} {e.comm:<16} {fd:>4} {err:>3}")
            if args.extended_fields:
                cols.append(f"{e.flags & 0xFFFFFFFF:08o}")
            cols.append(e.fname)
            out.event(" ".join(cols), {"ts_ns": e.ts_ns, "pid": e.pid, "tid": e.tid, "uid": e.uid, "comm": e.comm,
                                       "fd": fd, "err": err, "flags": e.flags, "path": e.fname})

        s.ring("events", event, decode=codec)
        head = []
        if args.timestamp:
            head.append(f"{'TIME(s)':<14}")
        if args.print_uid:
            head.append(f"{'UID':<6}")
        head.append(f"{'PID':<6} {'COMM':<16} {'FD':>4} {'ERR':>3}")
        if args.extended_fields:
            head.append(f"{'FLAGS':<8}")
        head.append("PATH")
        s.run(ready=lambda: out.header(" ".join(head)), duration=args.duration)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pybpf-opensnoop`` / ``python -m pybpf.tools.opensnoop``."""
    return tool_main(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
