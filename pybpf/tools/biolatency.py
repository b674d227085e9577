"""biolatency: block device I/O latency as a power-of-two histogram, printed like BCC's biolatency.

Runs the prebuilt ``biolatency.bpf.o`` (tracepoints ``block/block_rq_{insert,issue,complete}``; the histogram
is built in the kernel) and prints it on Ctrl-C, or every INTERVAL seconds COUNT times::

    python -m pybpf.tools.biolatency           # until Ctrl-C, in microseconds
    pybpf-biolatency -m 1 10                   # milliseconds, every second, 10 times
    pybpf-biolatency -D -Q                     # one histogram per disk, time in the queue included
    pybpf-biolatency -d vda --json 5 1         # one disk, as JSON
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from .runner import Printer, Session, tool_main

EXAMPLES = """examples:
    pybpf-biolatency               # summarize block I/O latency as a histogram until Ctrl-C
    pybpf-biolatency 1 10          # print 1 second summaries, 10 times
    pybpf-biolatency -mT 1         # 1s summaries, milliseconds, and timestamps
    pybpf-biolatency -Q            # include OS queued time in I/O time
    pybpf-biolatency -D            # show each disk device separately
    pybpf-biolatency -d vda        # trace vda only
"""
_MINORBITS = 20  # the kernel's dev_t: major << 20 | minor


def parser() -> argparse.ArgumentParser:
    """The tool's command line."""
    p = argparse.ArgumentParser(prog="pybpf-biolatency", description="Summarize block device I/O latency as a "
                                "histogram.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-T", "--timestamp", action="store_true", help="include a timestamp with each histogram")
    p.add_argument("-Q", "--queued", action="store_true", help="include OS queued time in I/O time")
    p.add_argument("-m", "--milliseconds", action="store_true", help="histogram in milliseconds")
    p.add_argument("-D", "--disks", action="store_true", help="one histogram per disk device")
    p.add_argument("-d", "--disk", metavar="DISK", help="trace this disk only (e.g. vda, sda, nvme0n1)")
    p.add_argument("--json", action="store_true", help="print each histogram as one JSON object")
    p.add_argument("interval", nargs="?", type=float, help="seconds between histograms (default: at Ctrl-C)")
    p.add_argument("count", nargs="?", type=int, help="number of histograms to print (default: forever)")
    return p


def disk_dev(name: str) -> int:
    """The kernel dev_t (major << 20 | minor) of block device ``name``."""
    try:
        with open(f"/sys/class/block/{name}/dev") as f:
            major, minor = (int(x) for x in f.read().split(":"))
    except OSError:
        raise ValueError(f"no block device {name!r} (see /sys/class/block)") from None
    return major << _MINORBITS | minor


def disk_name(dev: int) -> str:
    """The name of the block device with kernel dev_t ``dev`` (``major:minor`` when unknown)."""
    numbers = f"{dev >> _MINORBITS}:{dev & ((1 << _MINORBITS) - 1)}"
    try:
        with open(f"/sys/dev/block/{numbers}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return numbers


def log2_hist(counts: Mapping[int, int], unit: str) -> list[str]:
    """A log2 histogram as text, in BCC's print_log2_hist layout: slot ``s`` counts values in
    [2^s, 2^(s+1)) (slot 0 also counts 0), rows up to the last non-empty slot."""
    used = [s for s, n in counts.items() if n]
    if not used:
        return []
    top, peak = max(used), max(counts.values())
    lines = [f"     {unit:<19} : count     distribution"]
    for s in range(top + 1):
        low, high = (1 << s if s else 0), (1 << (s + 1)) - 1
        n = counts.get(s, 0)
        lines.append(f"{low:>10} -> {high:<10} : {n:<8} |{'*' * (n * 40 // peak):<40}|")
    return lines


def run(args: argparse.Namespace) -> int:
    """Trace until Ctrl-C or COUNT intervals, printing the histograms."""
    if args.interval is not None and args.interval <= 0:
        raise ValueError("the interval must be positive")
    if args.count is not None and args.count <= 0:
        raise ValueError("the count must be positive")
    knobs = {"targ_ms": int(args.milliseconds), "targ_queued": int(args.queued), "targ_per_disk": int(args.disks)}
    if args.disk:
        knobs.update(filter_dev=1, targ_dev=disk_dev(args.disk))
    unit = "msecs" if args.milliseconds else "usecs"
    out = Printer(args.json)
    optional = [] if args.queued else ["block_rq_insert"]  # only -Q needs the insert tracepoint
    with Session("biolatency", globals=knobs, optional=optional) as s:
        hists = s.obj.maps["hists"]

        def show() -> None:
            per_disk: dict[int, dict[int, int]] = {}
            for key, n in hists.lookup_and_delete_batch():
                per_disk.setdefault(key.dev, {})[key.slot] = n
            stamp = time.strftime("%H:%M:%S")
            if args.timestamp and not args.json:
                print(f"{stamp:<8}")
            for dev, counts in sorted(per_disk.items()):
                lines = log2_hist(counts, unit)
                if args.disks:
                    lines.insert(0, f"disk = {disk_name(dev)}")
                record: dict[str, Any] = {"time": stamp, "unit": unit, "total": sum(counts.values()),
                                          "slots": [{"low": 1 << k if k else 0, "high": (1 << (k + 1)) - 1,
                                                     "count": counts.get(k, 0)} for k in range(max(counts) + 1)]}
                if args.disks:
                    record["disk"] = disk_name(dev)
                out.event("\n" + "\n".join(lines), record)

        left = args.count
        finished = False

        def tick() -> None:
            nonlocal left, finished
            show()
            if left is not None:
                left -= 1
                if left == 0:
                    finished = True
                    s.stop()

        s.run(ready=lambda: out.header("Tracing block device I/O... Hit Ctrl-C to end."), interval=args.interval,
              tick=tick)
        if not finished:
            show()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pybpf-biolatency`` / ``python -m pybpf.tools.biolatency``."""
    return tool_main(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
