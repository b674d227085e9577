#!/usr/bin/env python3
"""Scenario S2: BCC's hello world -- "Hello, World!" in trace_pipe for every clone (new process or thread).

    sudo python3 examples/s2_hello_clone.py          # until Ctrl-C
    sudo python3 examples/s2_hello_clone.py --demo   # fork until this process's line shows, then stop

BCC wrote it as ``kprobe__sys_clone``.  Where the kernel has kprobes this uses hello_clone_kprobe.bpf.o
(SEC("kprobe/__x64_sys_clone") and SEC("ksyscall/clone")); elsewhere hello_clone.bpf.o, the same on the
syscall tracepoints sys_enter_clone, sys_enter_clone3 and sys_enter_vfork, attaching those that exist.
"""
from __future__ import annotations

import argparse
import os

from pybpf.prebuilt import path as prebuilt

import pybpf
from pybpf.errors import NotFound
from pybpf.sys import probes
from pybpf.trace_pipe import TracePipe


def attach_all(obj: pybpf.Object) -> list[pybpf.Link]:
    """Attach every program whose hook exists on this kernel."""
    links = []
    for name, prog in obj.programs.items():
        try:
            links.append(prog.attach())
        except NotFound as e:
            print(f"skipping {name}: {e}")
    return links


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="fork until this process's line is seen, then stop")
    args = ap.parse_args()

    kprobes = probes.feature("kprobe_pmu") or probes.feature("kprobe_events")
    name = "hello_clone_kprobe" if kprobes else "hello_clone"
    with pybpf.load(prebuilt(name)) as obj, TracePipe() as tp:
        links = attach_all(obj)
        try:
            tp.skip_backlog()
            print(f"{name}: attached {', '.join(f'{lk.kind} {lk.target}' for lk in links)}")
            if args.demo:
                for _ in range(50):  # again if another trace_pipe reader took the line
                    child = os.fork()
                    if child == 0:
                        os._exit(0)
                    os.waitpid(child, 0)
                    for line in tp.read(1.0, pid=os.getpid(), contains="Hello, World!"):
                        print(f"{line.task}-{line.pid}: {line.message}")
                        return 0
                print("no line seen")
                return 1
            for line in tp.follow(contains="Hello, World!"):
                print(f"{line.task}-{line.pid}: {line.message}")
        except KeyboardInterrupt:
            pass
        finally:
            for lk in links:
                lk.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
