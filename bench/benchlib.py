"""What the start-up benchmarks share: pybpf installed as users get it, timing, and the table they print.

* :class:`Installed`: the wheel of this tree in a fresh venv (compiled bytecode, no editable-install import
  hook, none of the host's site-packages), run from an empty directory (``python -m`` puts the working
  directory first on ``sys.path``: a stray ``nt.py`` in it would be imported);
* :func:`timed`: best and median of N runs (on a shared machine noise only ever adds: the best is what the
  code costs, the median what a user may see);
* cold and warm pybpf caches: each cold run gets a new, empty ``XDG_CACHE_HOME``; warm runs share one filled by
  a first run;
* :func:`table`: aligned text, or a Markdown table for the README.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "packaging"), str(ROOT / "tests")]  # test_wheel, libbpf_oracle


@dataclass(frozen=True)
class Timing:
    """Best and median of several runs, in seconds (``None``: it could not be measured, see ``why``)."""

    best: float | None
    median: float | None
    why: str = ""

    def ms(self, what: str = "median") -> str:
        """``12.3`` (milliseconds), or why there is no number."""
        value = getattr(self, what)
        return f"{value * 1e3:.1f}" if value is not None else (self.why or "-")


def timed(fn: Callable[[], object], runs: int) -> Timing:
    """Time ``runs`` calls of ``fn`` (after nothing: warm-ups are the caller's choice)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return summary(times)


def summary(times: Sequence[float]) -> Timing:
    """The :class:`Timing` of runs that took ``times`` seconds."""
    return Timing(min(times), statistics.median(times))


def together(runs: Sequence[Timing]) -> Timing:
    """Single runs measured one by one, as one :class:`Timing` (or the first that failed)."""
    bad = [t for t in runs if t.median is None]
    return bad[0] if bad else summary([t.median for t in runs if t.median is not None])


def failed(why: str) -> Timing:
    """A measurement that could not be made."""
    return Timing(None, None, why)


def ratio(ours: Timing, theirs: Timing, what: str = "median") -> str:
    """``ours / theirs`` as ``2.5x`` (``-`` when either is missing)."""
    a, b = getattr(ours, what), getattr(theirs, what)
    return f"{a / b:.1f}x" if a and b else "-"


class Installed:
    """pybpf from a wheel of this tree in a fresh venv (see the module docstring).  A context manager: the
    venv and every cache directory made for it are removed on exit."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="pybpf-bench-")
        from test_wheel import build_venv

        print("building the wheel and a fresh venv ...", file=sys.stderr)
        self.venv = build_venv(Path(self._tmp.name))
        self.python = str(self.venv.python)
        self.workdir = str(self.venv.workdir)
        self.warm_cache = os.path.join(self._tmp.name, "warm-cache")
        for _ in range(3):  # the venv's files into the page cache: the first runs of a new install are slower
            run_quietly([self.bin("pybpf"), "--help"], cwd=self.workdir)

    def bin(self, script: str) -> str:
        """A console script of the venv (``pybpf``, ``pybpf-execsnoop``...)."""
        return str(self.venv.dir / "bin" / script)

    def prebuilt(self, name: str) -> str:
        """The installed copy of a prebuilt object."""
        return str(self.venv.site_packages / "pybpf" / "prebuilt" / name)

    def env(self, cache: str) -> dict[str, str]:
        """The environment of a run with pybpf's cache in ``cache`` (and bytecode written as after install)."""
        skip = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "PYBPF_NO_CACHE")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        env["XDG_CACHE_HOME"] = cache
        return env

    def cold(self, once: Callable[[dict[str, str]], Timing], runs: int) -> Timing:
        """``once(env)`` (one timed run) ``runs`` times, each with a new, empty pybpf cache."""
        times = []
        for _ in range(runs):
            cache = tempfile.mkdtemp(prefix="cold-", dir=self._tmp.name)
            try:
                times.append(once(self.env(cache)))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        return together(times)

    def warm(self, once: Callable[[dict[str, str]], Timing], runs: int) -> Timing:
        """``once(env)`` once to fill a pybpf cache, then ``runs`` times with that cache."""
        env = self.env(self.warm_cache)
        first = once(env)
        return first if first.median is None else together([once(env) for _ in range(runs)])

    def __enter__(self) -> Installed:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


def run_quietly(argv: Sequence[str], **kw: object) -> None:
    """Run a command to completion, its output discarded; CalledProcessError (with its stderr) if it fails."""
    subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)  # type: ignore


def machine() -> str:
    """One line naming the machine: CPU model and count, kernel, Python."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    return (f"{model} x{os.cpu_count()}, Linux {platform.release()}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f} at start")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Rows under a header: aligned columns, or a Markdown table."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                               enumerate(zip(r, widths))) for r in (header, *rows))
