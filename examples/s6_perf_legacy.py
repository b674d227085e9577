#!/usr/bin/env python3
"""Scenario S6: records through a perf event array declared the legacy way (``struct bpf_map_def SEC("maps")``),
decoded in Python, with lost-sample counts.

    sudo python3 examples/s6_perf_legacy.py PID      # one record per write() of process PID, until Ctrl-C
    sudo python3 examples/s6_perf_legacy.py --demo   # watch a child write 4242 bytes; print its record, stop

perf_legacy.bpf.o predates global data: its PID filter is ``config_map[0]``, a legacy ARRAY map user space
fills after load.  Each write() sends a ``struct write_event`` with bpf_perf_event_output() to ``log_map``
(max_entries 0: one slot per CPU, filled in by the loader); :class:`pybpf.PerfBuffer` opens one perf ring per
CPU and decodes records with the struct's BTF (the object is built with -g).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from pybpf.prebuilt import path as prebuilt

import pybpf

DEMO_SIZE = 4242
# the demo's watched process: waits for a line, then writes DEMO_SIZE bytes once
WRITER = f"import os, sys; sys.stdin.readline(); os.write(os.open(os.devnull, os.O_WRONLY), b'x' * {DEMO_SIZE})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pid", type=int, nargs="?", help="process to watch")
    ap.add_argument("--demo", action="store_true", help=f"watch a child write {DEMO_SIZE} bytes, then stop")
    args = ap.parse_args()
    if args.pid is None and not args.demo:
        ap.error("give a PID (0 would include this script's own output) or --demo")
    writer = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE) if args.demo else None
    pid = writer.pid if writer else args.pid

    with pybpf.load(prebuilt("perf_legacy")) as obj:
        config = obj.maps["config_map"]
        config.set_codecs(value="I")  # legacy maps carry no BTF: say the value is a u32
        config[0] = pid
        seen: list[Any] = []

        def show(cpu: int, e: Any) -> None:
            print(f"cpu {cpu}: pid {e.pid} tid {e.tid} comm {e.comm!r} write(fd={e.fd}, count={e.count})",
                  flush=True)
            seen.append(e)

        record = obj.spec.btf.find_one("write_event")
        with obj.programs["trace_write"].attach() as link, \
                pybpf.PerfBuffer(obj.maps["log_map"], show, decode=record) as perf:
            print(f"watching writes of pid {pid}: {link!r}", flush=True)
            try:
                if writer:
                    writer.communicate(b"go\n")  # now it writes
                    while not any(e.count == DEMO_SIZE for e in seen):
                        perf.poll(1.0)
                else:
                    while True:
                        perf.poll(1.0)
            except KeyboardInterrupt:
                pass
            print(f"lost samples: {perf.lost_total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
