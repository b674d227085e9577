"""The committed prebuilt objects: each has its source, is a BPF ELF with the sections it should have, and is
exactly what tools/build_objs.sh makes of its source today (reproducible builds, no stale objects)."""
from __future__ import annotations

import re
import shutil
import subprocess
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


def _committed_compiler() -> str | None:
    """The clang that built the committed objects, from their .comment section."""
    with OBJECTS[0].open("rb") as f:
        sec = ELFFile(f).get_section_by_name(".comment")
        if sec is None:
            return None
        return sec.data().split(b"\0")[0].decode().strip() or None


def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    clang = shutil.which("clang-19")
    strip = shutil.which("llvm-strip-19") or shutil.which("llvm-strip")
    if not clang:
        pytest.skip("clang-19 not installed (apt install clang-19)")
    if not strip:
        pytest.skip("llvm-strip not installed (apt install llvm-19)")
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        pytest.skip("libbpf headers not installed (apt install libbpf-dev)")
    # bpftool is not needed: the build uses the committed prebuilt/src/vmlinux.h.
    version = subprocess.run([clang, "--version"], capture_output=True, text=True, check=True).stdout
    committed = _committed_compiler()
    if committed and committed not in version:
        pytest.skip(f"committed objects were built by {committed!r}, this clang-19 is "
                    f"{version.splitlines()[0]!r}: byte identity needs the same compiler")

    out = tmp_path / "objs"
    proc = subprocess.run(["bash", str(BUILD), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, f"tools/build_objs.sh failed:\n{proc.stderr[-3000:]}"
    differ = [o.name for o in OBJECTS if (out / o.name).read_bytes() != o.read_bytes()]
    assert not differ, (f"rebuilt objects differ from the committed ones: {differ}; rebuild with "
                        f"tools/build_objs.sh and commit (toolchain pins: prebuilt/README.md)")
