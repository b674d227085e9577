"""The committed prebuilt objects: each has its source, is a BPF ELF with the sections it should have, and is
exactly what tools/build_objs.sh makes of its source today (reproducible builds, no stale objects)."""
from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

ROOT = Path(__file__).resolve().parents[2]
PREBUILT = ROOT / "prebuilt"
SRC = PREBUILT / "src"
BUILD = ROOT / "tools" / "build_objs.sh"
EM_BPF = "EM_BPF"

OBJECTS = sorted(PREBUILT.glob("*.bpf.o"))
SOURCES = sorted(SRC.glob("*.bpf.c"))


def _name(path: Path) -> str:
    return path.name.split(".bpf.")[0]


def _no_btf(name: str) -> bool:
    """Sources marked `pybpf-build: no-btf` are deliberately built without -g."""
    return re.search(r"pybpf-build:\s*no-btf\b", (SRC / f"{name}.bpf.c").read_text()) is not None


def test_corpus_is_not_empty() -> None:
    assert OBJECTS, "no prebuilt/*.bpf.o: run tools/build_objs.sh"


def test_objects_and_sources_match() -> None:
    objs = {_name(p) for p in OBJECTS}
    srcs = {_name(p) for p in SOURCES}
    assert objs - srcs == set(), f"objects without a prebuilt/src/NAME.bpf.c: {sorted(objs - srcs)}"
    assert srcs - objs == set(), f"sources never built (run tools/build_objs.sh): {sorted(srcs - objs)}"


@pytest.mark.parametrize("obj", OBJECTS, ids=_name)
def test_object_is_bpf_elf(obj: Path) -> None:
    with obj.open("rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == EM_BPF, f"{obj.name}: e_machine {elf['e_machine']}"
        assert elf.elfclass == 64 and elf.little_endian, f"{obj.name}: not 64-bit little-endian"
        assert elf["e_type"] == "ET_REL", f"{obj.name}: e_type {elf['e_type']}"
        names = {s.name for s in elf.iter_sections()}
    assert "license" in names, f"{obj.name}: no license section"
    assert not any(n.startswith(".debug_") for n in names), f"{obj.name}: DWARF not stripped"
    if _no_btf(_name(obj)):
        assert ".BTF" not in names and ".BTF.ext" not in names, f"{obj.name} is meant to be BTF-less"
    else:
        assert {".BTF", ".BTF.ext"} <= names, f"{obj.name}: missing .BTF/.BTF.ext"


def _toolchain_differences() -> list[str]:
    """Lines of the committed toolchain fingerprint (prebuilt/src/toolchain.sha256, written by the build that
    made the committed objects) that this machine's toolchain does not match (``build_objs.sh --toolchain``)."""
    proc = subprocess.run(["bash", str(BUILD), "--toolchain"], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"no toolchain to rebuild with: {proc.stderr.strip()}")
    here = set(proc.stdout.splitlines())
    return [line for line in (SRC / "toolchain.sha256").read_text().splitlines() if line not in here]


def _section_differences(a: bytes, b: bytes) -> list[str]:
    """Names of the ELF sections whose contents differ between two objects (for the failure message)."""
    from io import BytesIO

    def sections(data: bytes) -> dict[str, bytes]:
        return {s.name: s.data() for s in ELFFile(BytesIO(data)).iter_sections() if s["sh_type"] != "SHT_NOBITS"}

    sa, sb = sections(a), sections(b)
    return sorted(n for n in sa.keys() | sb.keys() if sa.get(n) != sb.get(n))


def _build(out: Path, *names: str) -> None:
    proc = subprocess.run(["bash", str(BUILD), str(out), *names], capture_output=True, text=True)
    assert proc.returncode == 0, f"tools/build_objs.sh failed:\n{proc.stderr[-3000:]}"


def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    for tool in ("clang-19", "llvm-strip-19"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (apt install {tool.replace('-strip', '')})")
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        pytest.skip("libbpf headers not installed (apt install libbpf-dev)")
    # bpftool is not needed: the build uses the committed prebuilt/src/vmlinux.h.
    if differ := _toolchain_differences():
        pytest.skip("byte identity needs the toolchain that built the committed objects; this machine's differs "
                    "in:\n" + "\n".join(differ))

    _build(tmp_path / "objs")
    differ = [o for o in OBJECTS if (tmp_path / "objs" / o.name).read_bytes() != o.read_bytes()]
    if differ:
        # Built once more, alone: an object that then matches was a one-off of the compiler, not a stale object.
        _build(tmp_path / "again", *(_name(o) for o in differ))
        stale = {o.name: _section_differences(o.read_bytes(), (tmp_path / "again" / o.name).read_bytes())
                 for o in differ if (tmp_path / "again" / o.name).read_bytes() != o.read_bytes()}
        if len(stale) < len(differ):
            warnings.warn(f"clang built {[o.name for o in differ if o.name not in stale]} differently once, the "
                          f"same as committed the second time", stacklevel=1)
        assert not stale, (f"rebuilt objects differ from the committed ones (object: sections): {stale}; rebuild "
                           f"with tools/build_objs.sh and commit (toolchain pins: prebuilt/README.md)")
