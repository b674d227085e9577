#!/usr/bin/env python3
"""Count write() syscalls per process with an assembled tracepoint program, and show the Link behind it.

    sudo python3 examples/tracepoint_counter.py                    # 5 seconds, top 10 writers
    sudo python3 examples/tracepoint_counter.py -d 2 --mechanism perf_event
    sudo python3 examples/tracepoint_counter.py --pin /sys/fs/bpf/writes   # stays attached after exit

The program is written in llvm-objdump syntax and assembled by pybpf.asm; ``map[counts]`` is resolved to the
hash map's fd at load.  attach_tracepoint() uses a bpf_link where the kernel has one (Linux 5.15+), else the
perf event ioctl; ``--mechanism`` forces either.
"""
from __future__ import annotations

import argparse
import time

import pybpf
from pybpf.link import attach_tracepoint

PROGRAM = """
    call bpf_get_current_pid_tgid
    r0 >>= 32                        # the process id (tgid)
    *(u32 *)(r10 - 4) = w0
    r1 = map[counts] ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto new
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1      # counts[tgid] += 1
    goto out
new:
    *(u64 *)(r10 - 16) = 1
    r1 = map[counts] ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r4 = 1                           # BPF_NOEXIST: counts[tgid] = 1
    call bpf_map_update_elem
out:
    r0 = 0
    exit
"""


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-d", "--duration", type=float, default=5.0, help="seconds to count (default 5)")
    ap.add_argument("-n", "--top", type=int, default=10, help="processes to show")
    ap.add_argument("--mechanism", choices=["bpf_link", "perf_event"], help="force how the program is attached")
    ap.add_argument("--pin", metavar="PATH", help="pin the link in bpffs so it outlives this script")
    args = ap.parse_args()

    with pybpf.Map.create("hash", 4, 8, 10240, name="counts", key="I", value="Q") as counts, \
            pybpf.Program.load(PROGRAM, "tracepoint", maps={"counts": counts}, name="count_writes") as prog:
        link = attach_tracepoint(prog, "syscalls", "sys_enter_write", mechanism=args.mechanism)
        with link:
            print(f"{link!r}\n  {link.info()}")
            if args.pin:
                link.pin(args.pin)
                print(f"pinned at {args.pin}: remove the file to detach")
            time.sleep(args.duration)
            top = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:args.top]
        print(f"\n{'PID':>7} {'COMM':<16} WRITES")
        for pid, n in top:
            print(f"{pid:>7} {comm(pid):<16} {n}")


if __name__ == "__main__":
    main()
