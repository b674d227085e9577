"""BTF speed: pybpf.btf vs bpftool on the running kernel's BTF, side by side.

    python bench/bench_btf.py [VMLINUX]      # default /sys/kernel/btf/vmlinux

Each line gives pybpf's time, bpftool's and the ratio.  Whole-command lines run both as fresh processes
(interpreter start-up included, like bpftool's); in-process lines show where pybpf's time goes:

* open: read the file and index every type (one pass; nothing decoded);
* lookup: open + find ``task_struct`` + the offset of ``pid`` (what a CO-RE relocation touches);
* raw dump / C dump: every type decoded and printed (``pybpf btf dump`` vs ``bpftool btf dump``);
* CO-RE: resolve every relocation of tests/unit/core_src/*.bpf.c (clang-19 builds them) vs
  ``bpftool gen min_core_btf`` (libbpf's relocation matching on the same objects).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "unit" / "core_src"


def best(fn: Callable[[], object], runs: int = 5) -> float:
    """Fastest of ``runs`` calls, in seconds."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return min(out)


def run(cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> Callable[[], object]:
    """A callable running ``cmd`` (output discarded), failing loudly."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return lambda: subprocess.run(cmd, check=True, stdout=stdout, stderr=subprocess.DEVNULL, env=env)


def line(what: str, ours: float, theirs: float | None) -> None:
    """One result line: our time, bpftool's, and the ratio."""
    if theirs is None:
        print(f"{what:<34} pybpf {ours * 1e3:9.1f} ms")
    else:
        print(f"{what:<34} pybpf {ours * 1e3:9.1f} ms   bpftool {theirs * 1e3:9.1f} ms   "
              f"ratio pybpf/bpftool {ours / theirs:6.2f}x")


def build_objects(tmp: Path, vmlinux: str) -> list[Path]:
    """tests/unit/core_src/*.bpf.c compiled against ``vmlinux``'s header, or [] without clang-19/bpftool."""
    if not (shutil.which("clang-19") and shutil.which("bpftool")):
        return []
    with open(tmp / "vmlinux.h", "wb") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", vmlinux, "format", "c"], stdout=f, check=True)
    objs = []
    for src in sorted(SRC.glob("*.bpf.c")):
        obj = tmp / (src.name[:-len(".bpf.c")] + ".o")
        subprocess.run(["clang-19", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", f"-I{tmp}", "-c",
                        str(src), "-o", str(obj)], check=True)
        objs.append(obj)
    return objs


CORE_SCRIPT = """
import sys
from elftools.elf.elffile import ELFFile
from pybpf.btf import BTF, BTFExt
from pybpf.btf.core import Resolver
vm = BTF.load(sys.argv[1])
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf = BTF.parse(elf.get_section_by_name(".BTF").data())
        ext = BTFExt.parse(elf.get_section_by_name(".BTF.ext").data(), btf)
    r = Resolver(btf, [vm])
    for relos in ext.core_relos.values():
        for relo in relos:
            r.resolve(relo)
"""


def main() -> int:
    vmlinux = sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux"
    if not os.path.exists(vmlinux):
        print(f"{vmlinux} is missing: nothing to measure")
        return 1
    sys.path.insert(0, str(ROOT))
    from pybpf.btf import BTF
    from pybpf.btf.cdump import format_c
    from pybpf.btf.dump import format_raw

    bpftool = shutil.which("bpftool")
    py = [sys.executable, "-m", "pybpf", "btf", "dump", vmlinux]
    tool = [bpftool or "bpftool", "btf", "dump", "file", vmlinux]
    btf = BTF.load(vmlinux)
    print(f"{vmlinux}: {os.path.getsize(vmlinux) / 1e6:.1f} MB, {len(btf) - 1} types")

    line("open (in-process)", best(lambda: BTF.load(vmlinux)), None)

    def lookup() -> None:
        b = BTF.load(vmlinux)
        b.field(b.find_one("task_struct", 4), "pid")

    line("open + task_struct.pid (in-process)", best(lookup), None)
    fresh = BTF.load(vmlinux)
    line("raw dump (in-process)", best(lambda: sum(1 for _ in format_raw(fresh)), 2), None)
    line("C dump (in-process)", best(lambda: format_c(BTF.load(vmlinux)), 1), None)
    if not bpftool:
        print("bpftool is not installed: no side-by-side numbers")
        return 0
    line("raw dump (command)", best(run(py), 2), best(run(tool), 3))
    line("C dump (command)", best(run(py + ["--format", "c"]), 1), best(run(tool + ["format", "c"]), 3))
    with tempfile.TemporaryDirectory() as tmp:
        objs = build_objects(Path(tmp), vmlinux)
        if objs:
            ours = best(run([sys.executable, "-c", CORE_SCRIPT, vmlinux, *map(str, objs)]), 3)
            theirs = best(run([bpftool, "gen", "min_core_btf", vmlinux, str(Path(tmp) / "min.btf"),
                               *map(str, objs)]), 3)
            line(f"CO-RE, {len(objs)} objects (command)", ours, theirs)
        else:
            print("clang-19 missing: no CO-RE comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
