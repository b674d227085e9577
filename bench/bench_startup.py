"""Start-up cost side by side: pybpf vs BCC (python3-bpfcc) vs libbpf-tools.

    sudo python bench/bench_startup.py [--runs N] [--quick]

* ``import pybpf`` vs ``import bcc`` (``-X importtime``, best of N fresh interpreters; pybpf from the wheel
  installed in a fresh venv, so with compiled bytecode as users get it; bcc with the system python3);
* installed size: pybpf with its dependencies (that venv's site-packages) vs BCC with LLVM/clang (the Debian
  packages' Installed-Size) and libbpf-tools;
* time to first event of ``execsnoop`` and ``opensnoop``: from starting the tool until it prints a line about
  a uniquely named command (execsnoop) or file (opensnoop) that a helper execs or opens every 10 ms -- pybpf's
  tool with an empty pybpf cache and with a warm one, libbpf-tools' and BCC's (each if installed).  The C
  tools run under ``stdbuf -oL``: writing to a pipe, their stdio would otherwise hold lines back until 4 KB
  have gathered (pybpf's tools flush every line).

Targets (the issue): ``import pybpf`` <= 40 ms; installed size with dependencies <= 5 MB; first event no
later than libbpf-tools'.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import Installed, Timing, failed, machine, ratio, summary, table

BCC_PACKAGES = ("python3-bpfcc", "libbpfcc", "libbpf1", "libclang-cpp14", "libllvm14", "libelf1")
BCC_PYTHON = "/usr/bin/python3"
#: tool -> (how its event is triggered, BCC's command, libbpf-tools' command)
TOOLS = {"execsnoop": ("exec", "/usr/sbin/execsnoop-bpfcc", "/usr/sbin/execsnoop"),
         "opensnoop": ("open", "/usr/sbin/opensnoop-bpfcc", "/usr/sbin/opensnoop")}
IMPORT_TARGET_MS, SIZE_TARGET_MB = 40.0, 5.0


def import_ms(python: str, module: str, runs: int, cwd: str) -> float | str:
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


def first_event(argv: list[str], trigger: str, runs: int, env: dict[str, str] | None = None,
                cwd: str | None = None) -> Timing:
    """Seconds from starting ``argv`` (a snoop tool) to its first line naming what ``trigger`` (``exec`` or
    ``open``) does, ``runs`` times."""
    times = []
    for _ in range(runs):
        result = _first_event_once(argv, trigger, env, cwd)
        if isinstance(result, str):
            return failed(result)
        times.append(result)
    return summary(times)


def _first_event_once(argv: list[str], trigger: str, env: dict[str, str] | None, cwd: str | None) -> float | str:
    with tempfile.TemporaryDirectory() as tmp:
        name = f"pbst{os.getpid() % 100000}{time.monotonic_ns() % 10000}"
        target = Path(tmp) / name
        if trigger == "exec":
            target.symlink_to("/bin/true")
        else:
            target.write_text("")
        stop = threading.Event()

        def act() -> None:
            while not stop.is_set():
                if trigger == "exec":
                    subprocess.run([str(target)])
                else:
                    with open(target):
                        pass
                time.sleep(0.01)
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=cwd or tmp)
        t = threading.Thread(target=act)
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
            return f"failed: {err[-1][:60] if err else 'exit ' + str(proc.wait())}"
        finally:
            stop.set()
            t.join()
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def first_events(inst: Installed, runs: int) -> list[tuple[str, Timing, Timing, Timing, Timing]]:
    """Per tool: (name, pybpf with an empty cache, pybpf warm, libbpf-tools, BCC) times to first event."""
    out = []
    for tool, (trigger, bcc, libbpf_tools) in TOOLS.items():
        print(f"  {tool}", file=sys.stderr)
        ours = [inst.bin(f"pybpf-{tool}")]

        def once(env: dict[str, str]) -> Timing:
            return first_event(ours, trigger, 1, env, inst.workdir)  # noqa: B023 - called right here
        cold, warm = inst.cold(once, runs), inst.warm(once, runs)
        theirs = [first_event(["stdbuf", "-oL", cmd], trigger, runs) if os.path.exists(cmd) else
                  failed(f"{cmd} absent") for cmd in (libbpf_tools, bcc)]
        out.append((tool, cold, warm, *theirs))
    return out


FIRST_EVENT_HEADER = ("time to first event", "pybpf cold", "pybpf warm", "libbpf-tools", "warm/libbpf-tools",
                      "BCC")


def first_event_rows(results: list[tuple[str, Timing, Timing, Timing, Timing]]) -> list[list[str]]:
    """Table rows (ms, ``median (best)``) of :func:`first_events`."""
    def cell(t: Timing) -> str:
        return f"{t.ms()} ({t.ms('best')})" if t.median is not None else t.why

    return [[tool, cell(cold), cell(warm), cell(lt), ratio(warm, lt), cell(bcc)]
            for tool, cold, warm, lt, bcc in results]


def fmt(value: float | str, unit: str, digits: int = 1) -> str:
    return f"{value:.{digits}f} {unit}" if isinstance(value, float) else value


def main() -> int:
    """Measure and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="repetitions per measurement (best and median reported)")
    ap.add_argument("--quick", action="store_true", help="3 runs")
    args = ap.parse_args()
    runs = 3 if args.quick else args.runs
    print(machine(), file=sys.stderr)
    with Installed() as inst:
        py = inst.python
        ours_import = import_ms(py, "pybpf", runs, inst.workdir)
        bcc_import = import_ms(BCC_PYTHON, "bcc", runs, inst.workdir)
        tool_import = import_ms(py, "pybpf.tools.execsnoop", runs, inst.workdir)
        ours_mb = tree_bytes(inst.venv.site_packages) / 2**20
        ours_src_mb = tree_bytes(inst.venv.site_packages, skip_pycache=True) / 2**20
        bcc_mb = package_mb(BCC_PACKAGES)
        libbpf_mb = package_mb(("libbpf-tools", "libbpf1", "libelf1"))
        events = first_events(inst, runs) if os.geteuid() == 0 else []

    rows = [(f"import time (best of {runs})", fmt(ours_import, "ms"), fmt(bcc_import, "ms")),
            ("  import pybpf.tools.execsnoop", fmt(tool_import, "ms"), ""),
            ("installed size, with deps", fmt(ours_mb, "MB"), fmt(bcc_mb, "MB")),
            ("  without __pycache__", fmt(ours_src_mb, "MB"), ""),
            ("  libbpf-tools (all tools)", "", fmt(libbpf_mb, "MB"))]
    print(table(("", "pybpf", "BCC / other"), rows))
    print()
    if events:
        print(table(FIRST_EVENT_HEADER, first_event_rows(events)))
        print(f"\nms, median (best) of {runs}; ratio of medians")
    else:
        print("time to first event: needs root")
    print(f"\ntargets: import pybpf <= {IMPORT_TARGET_MS:.0f} ms "
          f"({'met' if isinstance(ours_import, float) and ours_import <= IMPORT_TARGET_MS else 'NOT met'}); "
          f"installed size <= {SIZE_TARGET_MB:.0f} MB "
          f"({'met' if ours_mb <= SIZE_TARGET_MB else 'NOT met'} with bytecode, "
          f"{'met' if ours_src_mb <= SIZE_TARGET_MB else 'NOT met'} without)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
