"""The ELF layer of the loader: an eBPF relocatable object read with pyelftools into plain, checked records
(sections, symbols, relocations).  Every problem becomes a :class:`~pybpf.errors.ELFError` that names the
object and the section, symbol or relocation at fault; nothing from pyelftools escapes.  The section headers
pyelftools read are kept in :mod:`pybpf._cache` by the object's content hash: an object read before is read
again without importing pyelftools (symbols and relocations are always decoded here, from the bytes).
"""
from __future__ import annotations

import functools
import io
import marshal
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ELFError

EM_BPF = 247
SHT_PROGBITS, SHT_SYMTAB, SHT_NOBITS, SHT_REL = 1, 2, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON = 0, 0xFF00, 0xFFF1, 0xFFF2
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN = 0, 1, 2

#: The eBPF relocation types (llvm's ELFRelocs/BPF.def) by number.
R_BPF = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32", 4: "R_BPF_64_NODYLD32",
         10: "R_BPF_64_32"}
R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_NODYLD32, R_BPF_64_32 = 1, 2, 3, 4, 10

_REL = struct.Struct("<QQ")
_SYM = struct.Struct("<IBBHQQ")


class Section:
    """One ELF section: index, name, header fields and contents (zeros for SHT_NOBITS)."""

    __slots__ = ("index", "name", "type", "flags", "size", "link", "info", "entsize", "data")

    def __init__(self, index: int, name: str, type: int, flags: int, size: int, link: int, info: int,  # noqa: A002
                 entsize: int, data: bytes):
        self.index, self.name, self.type, self.flags, self.size = index, name, type, flags, size
        self.link, self.info, self.entsize, self.data = link, info, entsize, data

    @property
    def executable(self) -> bool:
        """Holds code (SHF_EXECINSTR)."""
        return bool(self.flags & SHF_EXECINSTR)


class Symbol:
    """One symbol-table entry, decoded."""

    __slots__ = ("index", "name", "value", "size", "type", "bind", "visibility", "shndx")

    def __init__(self, index: int, name: str, value: int, size: int, type: int, bind: int,  # noqa: A002
                 visibility: int, shndx: int):
        self.index, self.name, self.value, self.size = index, name, value, size
        self.type, self.bind, self.visibility, self.shndx = type, bind, visibility, shndx

    @property
    def is_extern(self) -> bool:
        """libbpf's extern: undefined, global or weak, no type."""
        return self.shndx == SHN_UNDEF and self.bind in (STB_GLOBAL, STB_WEAK) and self.type == STT_NOTYPE


class Rel:
    """One ``Elf64_Rel`` of a relocation section: ``offset`` in the target section, symbol and type."""

    __slots__ = ("offset", "symbol", "type")

    def __init__(self, offset: int, symbol: Symbol, type: int):  # noqa: A002
        self.offset, self.symbol, self.type = offset, symbol, type

    @property
    def type_name(self) -> str:
        """``R_BPF_64_64`` and so on."""
        return R_BPF.get(self.type, f"relocation type {self.type}")


T = TypeVar("T")
_Header = tuple[str, int, int, int, int, int, int, int]  # name, type, flags, size, link, info, entsize, offset


class ElfObject:
    """A parsed eBPF ELF object: its sections (by index), symbols and relocation sections by target index."""

    def __init__(self, data: bytes, where: str = "<bytes>"):
        self.where = where
        self.sections: list[Section] = []
        self.symbols: list[Symbol] = []
        self.relocations: dict[int, list[Rel]] = {}  # target section index -> its relocations
        self.rel_sections: dict[int, Section] = {}  # target section index -> the SHT_REL section
        self.symtab_index = 0
        self._read(data)

    def fail(self, message: str) -> ELFError:
        """An :class:`ELFError` about this object."""
        return ELFError(f"{self.where}: {message}")

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run a pyelftools call, turning any exception it raises into an ELFError about ``what``."""
        try:
            return fn()
        except ELFError:
            raise
        except Exception as e:  # noqa: BLE001 - pyelftools raises its ELFError/ELFParseError, struct.error...
            raise self.fail(f"{what}: {type(e).__name__}: {e}".rstrip(": ")) from None

    def _read(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF":
            raise self.fail("not an ELF file (bad magic)" if data else "empty file")
        for i, (name, sh_type, flags, size, link, info, entsize, offset) in enumerate(self._section_headers(data)):
            if sh_type == SHT_NOBITS or i == 0:
                body = b""
            else:
                if offset + size > len(data):
                    raise self.fail(f"section {name!r} (#{i}, offset {offset}, {size} bytes) runs past the end of the "
                                    f"{len(data)}-byte file: truncated?")
                body = data[offset:offset + size]
            self.sections.append(Section(i, name, sh_type, flags, size, link, info, entsize, body))
        symtabs = [s for s in self.sections if s.type == SHT_SYMTAB]
        if len(symtabs) > 1:
            raise self.fail("more than one symbol table")
        if not symtabs:
            raise self.fail("no symbol table: was the object stripped?")
        self._read_symbols(symtabs[0])
        for sec in self.sections:
            if sec.type == SHT_REL:
                self._read_rels(sec)

    def _section_headers(self, data: bytes) -> list[_Header]:
        """Each section's (name, type, flags, size, link, info, entsize, offset), from :mod:`pybpf._cache` if this
        object was read before (so pyelftools need not even be imported), else read with pyelftools."""
        from .. import _cache

        key = _cache.digest(data) + _cache.code_key(__file__)
        cached = _cache.load("elf-headers", key)
        if cached is not None:
            headers = _unmarshal_headers(cached)
            if headers is not None:
                return headers
        headers = self._read_headers(data)
        _cache.store("elf-headers", key, marshal.dumps(headers), keep=256)  # a kilobyte or two each
        return headers

    def _read_headers(self, data: bytes) -> list[_Header]:
        """The ELF and section headers, checked, with pyelftools."""
        from elftools.elf.elffile import ELFFile

        elf: Any = self._guard("ELF header", lambda: ELFFile(io.BytesIO(data)))
        if elf.elfclass != 64 or not elf.little_endian:
            raise self.fail(f"a {elf.elfclass}-bit {'little' if elf.little_endian else 'big'}-endian ELF; "
                            "eBPF objects are 64-bit little-endian")
        hdr = elf.header
        machine = hdr["e_machine"]
        if hdr["e_type"] != "ET_REL":
            raise self.fail(f"ELF type {hdr['e_type']}: an eBPF object must be relocatable (ET_REL, clang -c)")
        if machine not in ("EM_BPF", "EM_NONE", EM_BPF, 0):
            raise self.fail(f"machine {machine}: not an eBPF object (expected EM_BPF)")
        count = self._guard("section header table", elf.num_sections)
        if hdr["e_shoff"] + count * hdr["e_shentsize"] > len(data):
            raise self.fail(f"section header table (offset {hdr['e_shoff']}, {count} entries) runs past the end "
                            f"of the {len(data)}-byte file: truncated?")
        headers = []
        for i in range(count):
            sec = self._guard(f"section #{i}", functools.partial(elf.get_section, i))
            name: str = self._guard(f"name of section #{i}", functools.partial(getattr, sec, "name"))
            h = sec.header
            headers.append((name, _sh_type(h["sh_type"]), h["sh_flags"], h["sh_size"], h["sh_link"], h["sh_info"],
                            h["sh_entsize"], h["sh_offset"]))
        return headers

    def _read_symbols(self, symtab: Section) -> None:
        self.symtab_index = symtab.index
        if symtab.entsize != _SYM.size or symtab.size % _SYM.size:
            raise self.fail(f"symbol table {symtab.name!r}: entry size {symtab.entsize}, size {symtab.size}: "
                            f"not a whole number of {_SYM.size}-byte Elf64_Sym")
        if not 0 < symtab.link < len(self.sections):
            raise self.fail(f"symbol table {symtab.name!r} links to string section #{symtab.link}, which does not "
                            "exist")
        strtab = self.sections[symtab.link].data
        for i in range(symtab.size // _SYM.size):
            st_name, st_info, st_other, shndx, value, size = _SYM.unpack_from(symtab.data, i * _SYM.size)
            name = self._string(strtab, st_name, f"name of symbol #{i}")
            if shndx != SHN_UNDEF and shndx < SHN_LORESERVE and shndx >= len(self.sections):
                raise self.fail(f"symbol {name or f'#{i}'!r} points to section #{shndx}, which does not exist")
            self.symbols.append(Symbol(i, name, value, size, st_info & 0xF, st_info >> 4, st_other & 0x3, shndx))

    def _string(self, table: bytes, off: int, what: str) -> str:
        if off >= len(table) and off:
            raise self.fail(f"{what}: string offset {off} is outside the {len(table)}-byte string table")
        end = table.find(b"\0", off)
        if end < 0:
            raise self.fail(f"{what}: string at offset {off} is not NUL-terminated")
        return table[off:end].decode("utf-8", "replace")

    def _read_rels(self, sec: Section) -> None:
        if sec.entsize != _REL.size or sec.size % _REL.size:
            raise self.fail(f"relocation section {sec.name!r}: entry size {sec.entsize}, size {sec.size}: not a "
                            f"whole number of {_REL.size}-byte Elf64_Rel")
        if sec.link != self.symtab_index:
            raise self.fail(f"relocation section {sec.name!r} uses symbol table #{sec.link}, not the object's "
                            f"(#{self.symtab_index})")
        target = sec.info
        if not 0 < target < len(self.sections):
            raise self.fail(f"relocation section {sec.name!r} applies to section #{target}, which does not exist")
        rels = []
        for i in range(sec.size // _REL.size):
            offset, info = _REL.unpack_from(sec.data, i * _REL.size)
            sym_idx, rtype = info >> 32, info & 0xFFFFFFFF
            if sym_idx >= len(self.symbols):
                raise self.fail(f"{sec.name} relocation #{i} at offset {offset}: symbol #{sym_idx} does not exist "
                                f"(the table has {len(self.symbols)})")
            if rtype not in R_BPF:
                raise self.fail(f"{sec.name} relocation #{i} at offset {offset}: unknown relocation type {rtype} "
                                "(not an eBPF relocation)")
            rels.append(Rel(offset, self.symbols[sym_idx], rtype))
        self.relocations[target] = rels
        self.rel_sections[target] = sec

    def symbol_name(self, sym: Symbol) -> str:
        """The symbol's name, or for an unnamed section symbol the section's name (as libbpf reports it)."""
        if sym.type == STT_SECTION and not sym.name and sym.shndx < len(self.sections):
            return self.sections[sym.shndx].name
        return sym.name or f"symbol #{sym.index}"


def _unmarshal_headers(payload: bytes) -> list[_Header] | None:
    """Section headers stored by :meth:`ElfObject._section_headers`, or None if ``payload`` does not hold them."""
    try:
        headers = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(headers, list) or not all(
            isinstance(h, tuple) and len(h) == 8 and isinstance(h[0], str)
            and all(type(v) is int and v >= -1 for v in h[1:]) for h in headers):
        return None
    return headers


def _sh_type(value: Any) -> int:
    """pyelftools gives section types as names when it knows them; we want the numbers."""
    if isinstance(value, int):
        return value
    return {"SHT_NULL": 0, "SHT_PROGBITS": SHT_PROGBITS, "SHT_SYMTAB": SHT_SYMTAB, "SHT_STRTAB": 3,
            "SHT_RELA": 4, "SHT_NOBITS": SHT_NOBITS, "SHT_REL": SHT_REL}.get(value, -1)
