"""The ELF writer and the ``pybpf asm``/``pybpf disasm`` commands: structure read back with pyelftools and
llvm-objdump-19, and loading with ``bpftool prog loadall`` (libbpf) as root."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import kernel_skip

from pybpf.asm import assemble, parse_assembly, write_object
from pybpf.asm.elf import R_BPF_64_32, R_BPF_64_64
from pybpf.cli import main

SOURCE = """
    .map counts, type=array, key_size=4, value_size=8, max_entries=1
    .map events, type=ringbuf, max_entries=4096
    .license "GPL"
    .section xdp
xdp_count:
    *(u32 *)(r10 - 4) = 0
    r1 = map[counts] ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    call add_one
    r0 = 2                  # XDP_PASS
    exit
    .section socket
sock:
    r0 = 0
    exit
    .text
add_one:
    r0 = 7
    r0 += 1
    exit
"""


def read(data: bytes):  # type: ignore[no-untyped-def]
    from elftools.elf.elffile import ELFFile

    return ELFFile(io.BytesIO(data))


def test_object_layout() -> None:
    from elftools.elf.relocation import RelocationSection

    elf = read(write_object(parse_assembly(SOURCE)))
    assert elf["e_machine"] == "EM_BPF" and elf["e_type"] == "ET_REL"
    names = [s.name for s in elf.iter_sections()]
    assert {"xdp", "socket", ".text", "license", ".maps", ".BTF", ".symtab", ".strtab", ".relxdp"} <= set(names)
    assert elf.get_section_by_name("license").data() == b"GPL\0"
    symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}
    assert symbols["xdp_count"]["st_info"]["bind"] == "STB_GLOBAL" and symbols["xdp_count"]["st_size"] == 12 * 8
    assert symbols["add_one"]["st_info"]["type"] == "STT_FUNC" and symbols["counts"]["st_info"]["type"] == "STT_OBJECT"
    relocs = elf.get_section_by_name(".relxdp")
    assert isinstance(relocs, RelocationSection)
    symtab = elf.get_section(relocs["sh_link"])
    got = [(r["r_offset"], symtab.get_symbol(r["r_info_sym"]).name, r["r_info_type"])
           for r in relocs.iter_relocations()]
    assert got == [(8, "counts", R_BPF_64_64), (9 * 8, "add_one", R_BPF_64_32)]
    # local jumps are resolved, map loads and calls are left for the loader, as clang leaves them
    assert elf.get_section_by_name(".text").data() == assemble("r0 = 7\nr0 += 1\nexit")


def test_legacy_maps_section() -> None:
    import struct

    elf = read(write_object(parse_assembly(SOURCE), legacy_maps=True))
    data = elf.get_section_by_name("maps").data()
    assert struct.unpack("<10I", data) == (2, 4, 8, 1, 0, 27, 0, 0, 4096, 0)
    assert elf.get_section_by_name(".BTF") is None


def test_unresolvable_references() -> None:
    from pybpf.errors import LinkError

    with pytest.raises(LinkError, match="not declared"):
        write_object(parse_assembly(".section xdp\nr1 = map[nope] ll\nexit"))
    with pytest.raises(LinkError, match="in .text"):
        write_object(parse_assembly(".section xdp\ncall f\nexit\nf: exit"))


@pytest.mark.skipif(not shutil.which("llvm-objdump-19"), reason="llvm-objdump-19 not installed")
def test_llvm_objdump_reads_the_object(tmp_path: Path) -> None:
    obj = tmp_path / "p.o"
    obj.write_bytes(write_object(parse_assembly(SOURCE)))
    out = subprocess.run(["llvm-objdump-19", "-dr", "--no-show-raw-insn", "--mcpu=v4", str(obj)], check=True,
                         capture_output=True, text=True).stdout
    assert "<xdp_count>:" in out and "R_BPF_64_64\tcounts" in out and "R_BPF_64_32\tadd_one" in out


def test_cli_asm_and_disasm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.s"
    src.write_text(SOURCE)
    assert main(["asm", str(src)]) == 0
    assert (tmp_path / "p.o").read_bytes() == write_object(parse_assembly(SOURCE))
    assert main(["disasm", str(tmp_path / "p.o"), "--section", "xdp", "--helpers"]) == 0
    out = capsys.readouterr().out
    assert "call bpf_map_lookup_elem" in out and "# R_BPF_64_64 counts" in out and "socket" not in out
    # the listing is itself assembly text
    assert parse_assembly(out).sections["xdp"][0].symbol == "xdp_count"
    raw = tmp_path / "r.s"
    raw.write_text("r0 = 1\nexit\n")
    assert main(["asm", "--raw", str(raw), "-o", str(tmp_path / "r.bin")]) == 0
    assert (tmp_path / "r.bin").read_bytes() == assemble("r0 = 1\nexit")
    assert main(["disasm", str(tmp_path / "r.bin")]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["       0:\tr0 = 0x1", "       1:\texit"]
    bad = tmp_path / "bad.s"
    bad.write_text("r0 = 1\nr0 +== 2\n")
    assert main(["asm", str(bad)]) == 1
    assert "line 2" in capsys.readouterr().err


@pytest.mark.kernel
def test_bpftool_loadall(tmp_path: Path, uniq: str) -> None:
    if os.geteuid() != 0:
        kernel_skip("bpftool prog loadall needs root")
    bpftool = shutil.which("bpftool")
    if not bpftool:
        pytest.skip("bpftool not installed (apt install bpftool)")
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    obj = tmp_path / "p.o"
    src = tmp_path / "p.s"
    src.write_text(SOURCE)
    assert main(["asm", str(src), "-o", str(obj)]) == 0
    pin = Path("/sys/fs/bpf") / uniq
    try:
        result = subprocess.run([bpftool, "prog", "loadall", str(obj), str(pin)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in pin.iterdir()) == ["sock", "xdp_count"]
        xlated = subprocess.run([bpftool, "prog", "dump", "xlated", "pinned", str(pin / "xdp_count")],
                                check=True, capture_output=True, text=True).stdout
        assert "call pc+" in xlated and "map[id:" in xlated
    finally:
        shutil.rmtree(pin, ignore_errors=True)
