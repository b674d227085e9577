"""``pybpf trace-pipe``: print the kernel trace buffer (``bpf_printk`` output) as it comes, until Ctrl-C.

    pybpf trace-pipe                      lines written from now on
    pybpf trace-pipe --backlog            also what the buffer already holds
    pybpf trace-pipe --grep hello --pid 1234 --count 5 --json
"""
from __future__ import annotations

import argparse

from ._common import add_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``trace-pipe`` command."""
    p = sub.add_parser("trace-pipe", help="print bpf_printk output (the kernel trace buffer) until Ctrl-C",
                       description="Read tracefs trace_pipe (mounting tracefs if needed) and print its lines. "
                                   "Reading consumes them: other readers of trace_pipe will not see them.")
    p.add_argument("--backlog", action="store_true",
                   help="also print the lines already in the buffer (default: only new ones)")
    p.add_argument("--grep", metavar="TEXT", help="only lines whose message contains TEXT")
    p.add_argument("--pid", type=int, metavar="PID", help="only lines written by thread PID")
    p.add_argument("--count", "-c", type=int, metavar="N", help="stop after N lines")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Follow trace_pipe, printing matching lines (one JSON object per line with ``--json``)."""
    import json

    from ..trace_pipe import TracePipe

    left = args.count
    if left is not None and left <= 0:
        return 0
    with TracePipe() as tp:
        if not args.backlog:
            tp.skip_backlog()
        for line in tp.follow(pid=args.pid, contains=args.grep):
            if args.json:
                print(json.dumps({"task": line.task, "pid": line.pid, "cpu": line.cpu, "flags": line.flags,
                                  "timestamp": line.timestamp, "function": line.function,
                                  "message": line.message}), flush=True)
            else:
                print(line.raw, flush=True)
            if left is not None:
                left -= 1
                if left == 0:
                    break
    return 0

