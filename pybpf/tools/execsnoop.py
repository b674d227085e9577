"""execsnoop: trace new processes -- one line per execve(), with its parent, result and arguments.

Runs the prebuilt ``execsnoop.bpf.o`` (tracepoints ``syscalls/sys_{enter,exit}_execve``, records on a ring
buffer) and prints a line per exec, as BCC's execsnoop does::

    python -m pybpf.tools.execsnoop            # every successful exec
    pybpf-execsnoop -x -T                      # failed ones too, with wall-clock times
    pybpf-execsnoop -n '^curl$' -l example     # command name and argument line filters (regexes)
    pybpf-execsnoop -u 1000 --json             # one user's, as JSON lines
"""
from __future__ import annotations

import argparse
import re
import time
from typing import Any

from .runner import Printer, Session, tool_main

EXAMPLES = """examples:
    pybpf-execsnoop                 # trace every successful exec()
    pybpf-execsnoop -x              # include failed exec()s
    pybpf-execsnoop -T -U           # add a time and a UID column
    pybpf-execsnoop -n main         # only commands whose name matches regex 'main'
    pybpf-execsnoop -l tpkg         # only commands whose argument line matches regex 'tpkg'
    pybpf-execsnoop -q              # quote arguments
    pybpf-execsnoop --max-args 5    # keep at most 5 arguments
"""


def parser() -> argparse.ArgumentParser:
    """The tool's command line."""
    p = argparse.ArgumentParser(prog="pybpf-execsnoop", description="Trace exec() syscalls (new processes).",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    when = p.add_mutually_exclusive_group()
    when.add_argument("-T", "--time", action="store_true", help="include a time column (HH:MM:SS)")
    when.add_argument("-t", "--timestamp", action="store_true", help="include seconds since the tool started")
    p.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    p.add_argument("-U", "--print-uid", action="store_true", help="include a UID column")
    p.add_argument("-u", "--uid", type=int, metavar="UID", help="trace this user only")
    p.add_argument("-q", "--quote", action="store_true", help='quote arguments ("a b" stays one argument)')
    p.add_argument("-n", "--name", metavar="REGEX", type=re.compile,
                   help="only print commands whose name (comm) matches this regex")
    p.add_argument("-l", "--line", metavar="REGEX", type=re.compile,
                   help="only print commands whose argument line matches this regex")
    p.add_argument("--max-args", type=int, default=20, metavar="N",
                   help="arguments kept per exec, command included (1-20, default 20); a line that reached the "
                        "limit ends with ' ...'")
    p.add_argument("--json", action="store_true", help="print one JSON object per exec")
    return p


def _quote(arg: str) -> str:
    return '"' + arg.replace('"', '\\"') + '"'


def run(args: argparse.Namespace) -> int:
    """Trace until Ctrl-C."""
    if not 1 <= args.max_args <= 20:
        raise ValueError(f"--max-args must be between 1 and 20, not {args.max_args}")
    knobs = {"ignore_failed": 0 if args.fails else 1, "max_args": args.max_args}
    if args.uid is not None:
        knobs["targ_uid"] = args.uid
    out = Printer(args.json)
    with Session("execsnoop", globals=knobs) as s:
        codec = s.codec("exec_event")
        args_at = s.offset("exec_event", "args")
        start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)

        def event(raw: Any) -> None:
            e = codec.unpack_from(raw, 0)
            argv = [a.decode(errors="replace") for a in bytes(raw[args_at:args_at + e.args_size]).split(b"\0")]
            argv = argv[:e.args_count]
            if args.name and not args.name.search(e.comm):
                return
            line = " ".join(_quote(a) if args.quote else a for a in argv)
            if e.args_count >= args.max_args:
                line += " ..."  # the program stopped at the limit: there may have been more
            if args.line and not args.line.search(line):
                return
            cols = []
            if args.time:
                cols.append(f"{time.strftime('%H:%M:%S'):<8}")
            elif args.timestamp:
                cols.append(f"{(e.ts_ns - start_ns) / 1e9:<8.3f}")
            if args.print_uid:
                cols.append(f"{e.uid:<6}")
            cols.append(f"{e.comm:<16} {e.pid:<7} {e.ppid:<7} {e.retval:>3} {line}")
            out.event(" ".join(cols), {"ts_ns": e.ts_ns, "comm": e.comm, "pid": e.pid, "ppid": e.ppid,
                                       "uid": e.uid, "ret": e.retval, "args": argv})

        s.ring("events", event)
        head = []
        if args.time:
            head.append(f"{'TIME':<8}")
        elif args.timestamp:
            head.append(f"{'TIME(s)':<8}")
        if args.print_uid:
            head.append(f"{'UID':<6}")
        head.append(f"{'PCOMM':<16} {'PID':<7} {'PPID':<7} {'RET':>3} ARGS")
        s.run(ready=lambda: out.header(" ".join(head)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pybpf-execsnoop`` / ``python -m pybpf.tools.execsnoop``."""
    return tool_main(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
