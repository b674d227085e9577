#!/usr/bin/env python3
"""Scenario S3: watch the write() calls of one process -- a tracepoint filtered by a PID set before load.

    sudo python3 examples/s3_write_watch.py PID      # one line per write of process PID, until Ctrl-C
    sudo python3 examples/s3_write_watch.py --demo   # watch a child write 4242 bytes, then stop

write_watch.bpf.o declares ``const volatile int target_pid`` in .rodata; ``pybpf.load(..., globals=...)``
writes it before the map is created and frozen, so the verifier sees a constant and the filter costs
nothing.  The program prints with bpf_printk; lines come back through trace_pipe.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from pybpf.prebuilt import path as prebuilt

import pybpf
from pybpf.trace_pipe import TracePipe

DEMO_SIZE = 4242  # an unusual write size, to recognise the demo's write
# the demo's watched process: waits for a line, then writes DEMO_SIZE bytes once
WRITER = f"import os, sys; sys.stdin.readline(); os.write(os.open(os.devnull, os.O_WRONLY), b'x' * {DEMO_SIZE})"


def watch(object_name: str, marker: str) -> int:
    """Load ``object_name`` with target_pid set, attach its program, print the lines containing ``marker``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pid", type=int, nargs="?", help="process to watch")
    ap.add_argument("--demo", action="store_true", help=f"watch a child write {DEMO_SIZE} bytes, then stop")
    args = ap.parse_args()
    if args.pid is None and not args.demo:
        ap.error("give a PID (watching every process would include this script's own output) or --demo")
    writer = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE) if args.demo else None
    pid = writer.pid if writer else args.pid

    with pybpf.load(prebuilt(object_name), globals={"target_pid": pid}) as obj, TracePipe() as tp:
        (prog,) = obj.programs.values()
        try:
            link = prog.attach()
        except pybpf.NotSupported as e:  # e.g. no kprobes in this kernel (S4)
            print(f"{object_name}: {e}")
            return 1
        with link:
            tp.skip_backlog()
            print(f"watching writes of pid {pid}: {link!r}", flush=True)
            try:
                if writer:
                    writer.communicate(b"go\n")  # now it writes
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:  # other processes' lines may come first
                        for line in tp.read(0.5, pid=pid, contains=str(DEMO_SIZE)):
                            print(line.message)
                            return 0
                    print("no line seen (another trace_pipe reader may have taken it)")
                    return 1
                for line in tp.follow(contains=marker):
                    print(f"{line.task}-{line.pid}: {line.message}", flush=True)
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(watch("write_watch", "pybpf-write:"))
