"""Start-up cost side by side: pybpf vs BCC (python3-bpfcc) vs libbpf-tools.

    sudo python bench/bench_startup.py [--runs N]

* ``import pybpf`` vs ``import bcc`` (``-X importtime``, best of N fresh interpreters; pybpf from the wheel
  installed in a fresh venv, so with compiled bytecode as users get it; bcc with the system python3);
* installed size: pybpf with its dependencies (that venv's site-packages) vs BCC with LLVM/clang (the Debian
  packages' Installed-Size) and libbpf-tools;
* time to first event: from starting ``execsnoop`` until it prints an exec of a uniquely named command run
  every 10 ms -- pybpf's tool, BCC's execsnoop-bpfcc, libbpf-tools' execsnoop (each if installed).

Targets (the issue): ``import pybpf`` <= 40 ms; installed size with dependencies <= 5 MB.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "packaging"))
from test_wheel import Venv, build_venv

BCC_PACKAGES = ("python3-bpfcc", "libbpfcc", "libbpf1", "libclang-cpp14", "libllvm14", "libelf1")
BCC_PYTHON = "/usr/bin/python3"
EXECSNOOPS = {"BCC": ["/usr/sbin/execsnoop-bpfcc"], "libbpf-tools": ["/usr/sbin/execsnoop"]}
IMPORT_TARGET_MS, SIZE_TARGET_MB = 40.0, 5.0


def import_ms(python: str, module: str, runs: int, cwd: Path) -> float | str:
    """Best cumulative ``-X importtime`` of ``module`` in ``runs`` fresh interpreters (ms), or why not (the
    best, not the median: on a shared machine the noise only ever adds)."""
    times = []
    for _ in range(runs):
        r = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True,
                           cwd=cwd)
        if r.returncode:
            return f"failed: {r.stderr.strip().splitlines()[-1]}"
        for line in r.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s?(\S+)$", line)
            if m and m.group(2) == module:
                times.append(int(m.group(1)) / 1000)
    return min(times)


def tree_bytes(path: Path, skip_pycache: bool = False) -> int:
    """Bytes of every file under ``path``."""
    total = 0
    for root, dirs, files in os.walk(path):
        if skip_pycache and "__pycache__" in dirs:
            dirs.remove("__pycache__")
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    return total


def package_mb(packages: tuple[str, ...]) -> float | str:
    """Debian Installed-Size of ``packages`` together (MB), or why not."""
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Installed-Size} ${Status}\n", *packages],
                       capture_output=True, text=True)
    rows = [ln.split() for ln in r.stdout.splitlines()]
    missing = [row[0] for row in rows if "installed" not in row[2:]] + [p for p in packages if p not in
                                                                         {row[0] for row in rows}]
    if missing:
        return f"not installed: {', '.join(missing)}"
    return sum(int(row[1]) for row in rows) / 1024


def first_event_s(argv: list[str], runs: int) -> float | str:
    """Median seconds from starting ``argv`` (an execsnoop) to its first line about our command."""
    out = []
    for _ in range(runs):
        result = _first_event_once(argv)
        if isinstance(result, str):
            return result
        out.append(result)
    return statistics.median(out)


def _first_event_once(argv: list[str]) -> float | str:
    with tempfile.TemporaryDirectory() as tmp:
        name = f"pbst{os.getpid() % 100000}{time.monotonic_ns() % 10000}"
        command = Path(tmp) / name
        command.symlink_to("/bin/true")
        stop = threading.Event()

        def trigger() -> None:
            while not stop.is_set():
                subprocess.run([str(command)])
                time.sleep(0.01)
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        t = threading.Thread(target=trigger)
        t.start()
        try:
            deadline = threading.Timer(120, proc.kill)
            deadline.start()
            for line in proc.stdout:  # type: ignore[union-attr]
                if name in line:
                    deadline.cancel()
                    return time.monotonic() - start
            deadline.cancel()
            err = proc.stderr.read().strip().splitlines()  # type: ignore[union-attr]
            return f"failed: {err[-1] if err else 'exit ' + str(proc.wait())}"
        finally:
            stop.set()
            t.join()
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def fmt(value: float | str, unit: str, digits: int = 1) -> str:
    return f"{value:.{digits}f} {unit}" if isinstance(value, float) else value


def ratio(ours: float | str, theirs: float | str) -> str:
    if isinstance(ours, float) and isinstance(theirs, float) and ours > 0:
        return f"{theirs / ours:.1f}x"
    return "-"


def main() -> int:
    """Measure and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="repetitions per measurement (median reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as base:
        print("building the wheel and a fresh venv ...", file=sys.stderr)
        venv: Venv = build_venv(Path(base))
        py = str(venv.python)
        rows: list[tuple[str, str, str, str]] = []

        ours_import = import_ms(py, "pybpf", args.runs, venv.workdir)
        bcc_import = import_ms(BCC_PYTHON, "bcc", args.runs, venv.workdir)
        rows.append((f"import time (best of {args.runs})", fmt(ours_import, "ms"), fmt(bcc_import, "ms"),
                     ratio(ours_import, bcc_import)))
        tool_import = import_ms(py, "pybpf.tools.execsnoop", args.runs, venv.workdir)
        rows.append(("  import pybpf.tools.execsnoop", fmt(tool_import, "ms"), "", ""))

        ours_mb = tree_bytes(venv.site_packages) / 2**20
        ours_src_mb = tree_bytes(venv.site_packages, skip_pycache=True) / 2**20
        bcc_mb = package_mb(BCC_PACKAGES)
        rows.append(("installed size, with deps", fmt(ours_mb, "MB"), fmt(bcc_mb, "MB"), ratio(ours_mb, bcc_mb)))
        rows.append(("  without __pycache__", fmt(ours_src_mb, "MB"), "", ratio(ours_src_mb, bcc_mb)))
        libbpf_mb = package_mb(("libbpf-tools", "libbpf1", "libelf1"))
        rows.append(("  libbpf-tools (all tools)", "", fmt(libbpf_mb, "MB"), ""))

        if os.geteuid() == 0:
            ours_first = first_event_s([py, "-m", "pybpf.tools.execsnoop"], args.runs)
            rows.append((f"execsnoop: first event (median of {args.runs})", fmt(ours_first, "s", 2), "", ""))
            for who, argv in EXECSNOOPS.items():
                theirs = first_event_s(argv, args.runs) if os.path.exists(argv[0]) else f"{argv[0]} absent"
                rows.append((f"  vs {who}", "", fmt(theirs, "s", 2), ratio(ours_first, theirs)))
        else:
            rows.append(("execsnoop: first event", "needs root", "", ""))

    print(f"{'':38} {'pybpf':>10} {'other':>28} {'other/pybpf':>12}")
    for label, ours, theirs, r in rows:
        print(f"{label:38} {ours:>10} {theirs:>28} {r:>12}")
    print(f"\ntargets: import pybpf <= {IMPORT_TARGET_MS:.0f} ms "
          f"({'met' if isinstance(ours_import, float) and ours_import <= IMPORT_TARGET_MS else 'NOT met'}); "
          f"installed size <= {SIZE_TARGET_MB:.0f} MB "
          f"({'met' if ours_mb <= SIZE_TARGET_MB else 'NOT met'} with bytecode, "
          f"{'met' if ours_src_mb <= SIZE_TARGET_MB else 'NOT met'} without)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
