#!/usr/bin/env python3
"""Scenario S1: hello world -- a tracepoint on execve() calls bpf_printk; pybpf reads trace_pipe for you.

    sudo python3 examples/s1_hello.py            # a line per exec anywhere on the machine, until Ctrl-C
    sudo python3 examples/s1_hello.py --demo     # run /bin/true until its line shows, then stop

The prebuilt hello.bpf.o has one program in SEC("tracepoint/syscalls/sys_enter_execve"); attach() reads the
section name and attaches it (a bpf_link, or the perf event ioctl on older kernels).  The trace buffer is
global and reading consumes it, so lines are filtered on the program's own "pybpf-hello" prefix.
(The same from the shell: ``pybpf run hello``.)
"""
from __future__ import annotations

import argparse
import subprocess

from pybpf.prebuilt import path as prebuilt

import pybpf
from pybpf.trace_pipe import TracePipe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="exec /bin/true until its line is seen, then stop")
    args = ap.parse_args()

    with pybpf.load(prebuilt("hello")) as obj, obj.programs["hello"].attach() as link, TracePipe() as tp:
        tp.skip_backlog()  # lines written before we attached are not ours
        print(f"attached: {link!r}")
        if args.demo:
            children: set[int] = set()
            for _ in range(50):  # again if another trace_pipe reader took the line
                child = subprocess.Popen(["/bin/true"])
                child.wait()
                children.add(child.pid)
                for line in tp.read(1.0, contains="pybpf-hello", where=lambda ln: ln.pid in children):
                    print(f"{line.task}-{line.pid}: {line.message}")
                    return 0
            print("no line seen")
            return 1
        try:
            for line in tp.follow(contains="pybpf-hello"):
                print(f"{line.task}-{line.pid}: {line.message}")
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
