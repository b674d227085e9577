"""Load time of each prebuilt object: pybpf vs bpftool (libbpf), side by side, with ratios.

    sudo python bench/bench_load.py [-n REPEAT] [OBJECT...]

Columns: ``bpftool`` = ``bpftool prog loadall OBJ DIR`` as a process (start to loaded and pinned);
``pybpf cli`` = ``python -m pybpf load OBJ --pin DIR`` as a process (same work, interpreter start included);
``pybpf`` = ``pybpf.load(OBJ)`` in a warm process (parse, link, create maps, load programs; then closed).
Times are medians in milliseconds; ratios are pybpf / bpftool.  Objects bpftool cannot load as they are
(legacy SEC("maps"), or refused by this kernel) are listed and skipped.
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests")]  # libbpf_oracle.directives()


def _timed(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _run_and_unpin(cmd: list[str], pin: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)
    shutil.rmtree(pin, ignore_errors=True)


def _load_and_close(path: str) -> None:
    import pybpf.loader as L

    L.load(path).close()


def main() -> int:
    """Measure every object given (default: all prebuilt ones) and print the table."""
    import pybpf.prebuilt
    from libbpf_oracle import directives

    import pybpf.loader as L
    from pybpf.errors import BPFError
    from pybpf.sys.fs import ensure_bpffs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--repeat", type=int, default=5, help="runs per measurement (median is shown)")
    ap.add_argument("objects", nargs="*", help="prebuilt object names (default: all)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bpftool"):
        print("needs root and bpftool (apt install bpftool)", file=sys.stderr)
        return 2
    bpffs = ensure_bpffs()
    names = args.objects or pybpf.prebuilt.names()
    print(f"{'object':24} {'bpftool':>9} {'pybpf cli':>10} {'ratio':>6} {'pybpf':>9} {'ratio':>6}   (ms, median of "
          f"{args.repeat})")
    ratios_cli, ratios_lib = [], []
    for name in names:
        path = pybpf.prebuilt.path(name)
        d = directives(os.path.basename(path))
        if "skip" in d or "variant" in d or "unpin" in d:
            why = d.get("skip") or ("bpftool needs a variant build" if "variant" in d else "pins maps by name")
            print(f"{name:24} skipped: {why}")
            continue
        pin = os.path.join(bpffs, f"pybpf_bench_{os.getpid()}")
        tool = ["bpftool", "prog", "loadall", path, pin] + (["type", d["type"]] if d.get("type") else [])
        cli = [sys.executable, "-m", "pybpf", "load", path, "--pin", pin]
        try:
            L.load(path).close()  # warm-up: probes, kernel BTF, imports
            t_tool = _timed(functools.partial(_run_and_unpin, tool, pin), args.repeat)
            t_cli = _timed(functools.partial(_run_and_unpin, cli, pin), args.repeat)
            t_lib = _timed(functools.partial(_load_and_close, path), args.repeat)
        except (subprocess.CalledProcessError, BPFError) as e:
            print(f"{name:24} failed: {e}")
            continue
        finally:
            shutil.rmtree(pin, ignore_errors=True)
        ratios_cli.append(t_cli / t_tool)
        ratios_lib.append(t_lib / t_tool)
        print(f"{name:24} {t_tool:9.1f} {t_cli:10.1f} {t_cli / t_tool:6.2f} {t_lib:9.1f} {t_lib / t_tool:6.2f}")
    if ratios_cli:
        print(f"{'geometric mean ratio':24} {'':9} {'':10} {statistics.geometric_mean(ratios_cli):6.2f} {'':9} "
              f"{statistics.geometric_mean(ratios_lib):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
