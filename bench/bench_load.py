"""Load time of each prebuilt object, side by side, with ratios:

* ``bpftool`` = ``bpftool prog loadall OBJ DIR`` as a process (libbpf, C: start to loaded and pinned);
* ``pybpf cold`` / ``pybpf warm`` = ``pybpf load OBJ --pin DIR`` as a process, pybpf installed from the wheel
  in a fresh venv (see bench/benchlib.py), with an empty pybpf cache and with the cache a first run left
  (kernel BTF index and name lookups, the object's section headers: ``pybpf._cache``);
* ``pybpf in-proc`` = ``pybpf.load(OBJ)`` then ``close()`` in a warm process (kernel BTF parsed, features
  probed), and ``libbpf in-proc`` = libbpf's ``bpf_object__open_file`` + ``__load`` + ``__close`` through ctypes
  (``libbpf.so.1`` if installed; it parses the kernel's BTF on every load, as libbpf does).

    sudo python bench/bench_load.py [-n RUNS] [--quick] [OBJECT...]

Cells are milliseconds, median and (best) of RUNS; ratios are pybpf / libbpf on medians.  Objects bpftool
cannot load as they are (legacy ``SEC("maps")`` needs a variant build, pinned maps) are left out.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from benchlib import ROOT, Installed, Timing, failed, machine, ratio, run_quietly, table, timed

sys.path.insert(0, str(ROOT))

#: a few objects covering the range, for --quick (and the README): tiny, tools, CO-RE heavy, many programs
QUICK = ("hello", "execsnoop", "opensnoop", "biolatency", "tcptracer", "core", "prog_types", "maps_tour")
HEADER = ("object", "bpftool", "pybpf cold", "pybpf warm", "warm/bpftool", "pybpf in-proc", "libbpf in-proc",
          "in-proc ratio")


@dataclass
class Row:
    """One object's measurements."""

    name: str
    bpftool: Timing
    cold: Timing
    warm: Timing
    inproc: Timing
    libbpf: Timing

    def cells(self) -> list[str]:
        """The table row: ``median (best)`` per measurement, then the ratios."""
        def cell(t: Timing) -> str:
            return f"{t.ms()} ({t.ms('best')})" if t.median is not None else t.why

        return [self.name, cell(self.bpftool), cell(self.cold), cell(self.warm), ratio(self.warm, self.bpftool),
                cell(self.inproc), cell(self.libbpf), ratio(self.inproc, self.libbpf)]


class Libbpf:
    """libbpf (``libbpf.so.1``) through ctypes: open, load and close an object in this process."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("bpf")
        if name is None:
            raise OSError("libbpf.so is not installed (apt install libbpf1)")
        lib = ctypes.CDLL(name)
        lib.bpf_object__open_file.restype = ctypes.c_void_p
        lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.bpf_object__load.argtypes = [ctypes.c_void_p]
        lib.bpf_object__close.argtypes = [ctypes.c_void_p]
        lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
        lib.libbpf_set_print(None)  # silence its log
        self.lib = lib

    def load_and_close(self, path: str) -> None:
        """One load; OSError if libbpf cannot open or load the object."""
        obj = self.lib.bpf_object__open_file(path.encode(), None)
        if not obj:
            raise OSError(f"libbpf cannot open {path}")
        err = self.lib.bpf_object__load(obj)
        self.lib.bpf_object__close(obj)
        if err:
            raise OSError(f"libbpf: load failed ({os.strerror(-err) if err < 0 else err})")


def _processes(argv: list[str], pin: str, runs: int, **kw: object) -> Timing:
    """``argv`` (which pins under ``pin``) run ``runs`` times; the pins are removed after each run."""
    def once() -> None:
        try:
            run_quietly(argv, **kw)
        finally:
            shutil.rmtree(pin, ignore_errors=True)
    try:
        return timed(once, runs)
    except subprocess.CalledProcessError as e:
        lines = e.stderr.decode(errors="replace").strip().splitlines() if e.stderr else []
        return failed(f"failed: {lines[-1][:60] if lines else e.returncode}")


def _in_process(load: object, path: str, runs: int) -> Timing:
    """``load(path)`` timed in this process, after one warm-up load."""
    from pybpf.errors import BPFError

    try:
        load(path)  # type: ignore[operator]
        return timed(lambda: load(path), runs)  # type: ignore[operator]
    except (OSError, BPFError) as e:
        return failed(f"failed: {str(e).splitlines()[0][:60]}")


def loadable(name: str) -> bool:
    """Whether bpftool (libbpf) loads the object as it is (see the module docstring)."""
    from libbpf_oracle import directives

    d = directives(name)
    return not ("skip" in d or "variant" in d or "unpin" in d)


def measure(inst: Installed, names: list[str], runs: int) -> list[Row]:
    """One :class:`Row` per object in ``names`` (file names, e.g. ``hello.bpf.o``)."""
    import pybpf.loader
    from libbpf_oracle import directives
    from pybpf.prebuilt import path as source_path
    from pybpf.sys.fs import ensure_bpffs

    pin = os.path.join(ensure_bpffs(), f"pybpf_bench_{os.getpid()}")
    try:
        libbpf: Libbpf | None = Libbpf()
    except OSError:
        libbpf = None
    rows = []
    for name in names:
        obj = inst.prebuilt(name)
        typ = directives(name).get("type")
        print(f"  {name}", file=sys.stderr)
        bpftool = _processes(["bpftool", "prog", "loadall", obj, pin] + (["type", typ] if typ else []), pin, runs)
        cli = [inst.bin("pybpf"), "load", obj, "--pin", pin]

        def once(env: dict[str, str]) -> Timing:
            return _processes(cli, pin, 1, cwd=inst.workdir, env=env)  # noqa: B023 - called right here
        cold, warm = inst.cold(once, runs), inst.warm(once, runs)
        inproc = _in_process(lambda p: pybpf.loader.load(p).close(), source_path(name), runs)
        lib = (failed("no libbpf.so") if libbpf is None else failed("needs 'type'") if typ else
               _in_process(libbpf.load_and_close, source_path(name), runs))
        rows.append(Row(name.removesuffix(".bpf.o"), bpftool, cold, warm, inproc, lib))
    return rows


def main() -> int:
    """Measure every object given (default: all that bpftool loads as they are) and print the table."""
    import pybpf.prebuilt

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=7, help="runs per measurement (default 7)")
    ap.add_argument("--quick", action="store_true", help=f"3 runs of {', '.join(QUICK)} only")
    ap.add_argument("objects", nargs="*", help="prebuilt object names (default: all)")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bpftool"):
        print("needs root and bpftool (apt install bpftool)", file=sys.stderr)
        return 2
    names = [n if n.endswith(".o") else n + ".bpf.o" for n in (args.objects or (QUICK if args.quick else ()))]
    names = names or [n for n in pybpf.prebuilt.names() if loadable(n)]
    print(machine(), file=sys.stderr)
    with Installed() as inst:
        rows = measure(inst, names, 3 if args.quick else args.runs)
    print(table(HEADER, [r.cells() for r in rows]))
    print(f"\nms, median (best) of {3 if args.quick else args.runs}; ratios of medians")
    return 0


if __name__ == "__main__":
    sys.exit(main())
