"""Malformed objects: every problem is a pybpf error that says what and where; nothing else escapes."""
from __future__ import annotations

import random
import struct

import pybpf.prebuilt
import pytest

from pybpf.errors import BPFError, ELFError, LinkError
from pybpf.loader import ObjectFile
from pybpf.loader import elf as E


def _data(name: str = "maps_tour.bpf.o") -> bytes:
    with open(pybpf.prebuilt.path(name), "rb") as f:
        return f.read()


def _sections(data: bytes) -> list[tuple[int, str, int, int, int, int]]:
    """(header offset, name, type, file offset, size, entsize) of each section."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = hdrs[shstrndx][4]
    out = []
    for i, h in enumerate(hdrs):
        name = data[strtab_off + h[0]:data.index(b"\0", strtab_off + h[0])].decode()
        out.append((shoff + i * shentsize, name, h[1], h[4], h[5], h[9]))
    return out


def _first_code_relocations(data: bytes) -> int:
    """File offset of the first relocation section of a program section."""
    return next(s[3] for s in _sections(data) if s[1].startswith(".rel") and "tracepoint" in s[1])


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


def test_not_elf_and_empty() -> None:
    with pytest.raises(ELFError, match="empty file"):
        ObjectFile(b"")
    with pytest.raises(ELFError, match="not an ELF file"):
        ObjectFile(b"hello world")


def test_missing_file_names_it(tmp_path: object) -> None:
    with pytest.raises(ELFError, match="cannot read"):
        ObjectFile(f"{tmp_path}/nope.o")


def test_wrong_machine_class_and_type() -> None:
    data = _data()
    with pytest.raises(ELFError, match="machine EM_X86_64"):
        ObjectFile(_patch(data, 0x12, "<H", 62))
    with pytest.raises(ELFError, match="ET_EXEC"):
        ObjectFile(_patch(data, 0x10, "<H", 2))
    with pytest.raises(ELFError, match="32-bit"):
        ObjectFile(_patch(data, 4, "<B", 1))


@pytest.mark.parametrize("cut", [16, 64, 200, 1000, -300, -64, -1])
def test_truncated(cut: int) -> None:
    data = _data()
    with pytest.raises(ELFError, match="truncated|runs past|header"):
        ObjectFile(data[:cut])


def test_relocation_with_dangling_symbol() -> None:
    data = _data()
    off = _first_code_relocations(data)
    bad = _patch(data, off + 8, "<Q", (9999 << 32) | E.R_BPF_64_64)
    with pytest.raises(ELFError, match=r"relocation #0 .*symbol #9999 does not exist"):
        ObjectFile(bad)


def test_relocation_of_unknown_type() -> None:
    data = _data()
    off = _first_code_relocations(data)
    info, = struct.unpack_from("<Q", data, off + 8)
    with pytest.raises(ELFError, match="unknown relocation type 77"):
        ObjectFile(_patch(data, off + 8, "<Q", (info >> 32 << 32) | 77))


def test_relocation_on_the_wrong_instruction() -> None:
    data = _data()
    off = _first_code_relocations(data)
    r_offset, = struct.unpack_from("<Q", data, off)
    with pytest.raises(LinkError, match="neither a call nor an ld_imm64|middle of an ld_imm64"):
        ObjectFile(_patch(data, off, "<Q", r_offset + 8))
    with pytest.raises(ELFError, match="not an instruction boundary"):
        ObjectFile(_patch(data, off, "<Q", r_offset + 3))


def test_relocation_type_must_fit_the_instruction() -> None:
    data = _data()
    off = _first_code_relocations(data)
    info, = struct.unpack_from("<Q", data, off + 8)
    with pytest.raises(LinkError, match="R_BPF_64_32 cannot apply to an ld_imm64"):
        ObjectFile(_patch(data, off + 8, "<Q", (info >> 32 << 32) | E.R_BPF_64_32))


def test_symbol_pointing_outside_the_sections() -> None:
    data = _data()
    _, _, _, off, _, entsize = next(s for s in _sections(data) if s[2] == E.SHT_SYMTAB)
    with pytest.raises(ELFError, match="points to section #4000"):
        ObjectFile(_patch(data, off + entsize + 6, "<H", 4000))


def test_random_corruption_only_raises_pybpf_errors() -> None:
    rng = random.Random(1234)
    for name in ("maps_tour.bpf.o", "subprogs.bpf.o", "legacy_maps.bpf.o", "tcptracer.bpf.o"):
        data = _data(name)
        for _ in range(150):
            b = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            try:
                ObjectFile(bytes(b))
            except BPFError:
                pass
