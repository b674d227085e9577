"""Turning stack addresses into names: kernel addresses through ``/proc/kallsyms``, user addresses through
``/proc/PID/maps`` and the ELF symbol tables (``.symtab``, else ``.dynsym``) of the mapped files.

Tables are read once and searched by bisection.  A small ELF64 reader is enough here (section headers, symbols,
program headers); it never executes or relocates anything.
"""
from __future__ import annotations

import bisect
import os
import struct
from typing import NamedTuple

KALLSYMS = "/proc/kallsyms"
_TEXT_TYPES = frozenset("tTwW")
MAX_KERNEL_FUNCTION = 1 << 20  # kallsyms has no sizes: further than this past a symbol is "unknown"


class Location(NamedTuple):
    """Where an address falls: ``name`` (symbol), ``offset`` into it, ``module`` (kernel module or file)."""

    name: str
    offset: int
    module: str

    def __str__(self) -> str:
        where = f" [{self.module}]" if self.module else ""
        return f"{self.name}+{self.offset:#x}{where}" if self.offset else f"{self.name}{where}"


class _Table:
    """Sorted start addresses with their names (and optional sizes), searched by bisection."""

    def __init__(self, entries: list[tuple[int, int, str]], max_gap: int = 0):
        entries.sort()
        self.starts = [e[0] for e in entries]
        self.sizes = [e[1] for e in entries]
        self.names = [e[2] for e in entries]
        self.max_gap = max_gap

    def find(self, addr: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        size = self.sizes[i] or self.max_gap
        if size and addr >= self.starts[i] + size:
            return None
        return self.names[i], addr - self.starts[i]


class KernelSymbols:
    """The kernel's function symbols from ``/proc/kallsyms`` (all zero when ``kptr_restrict`` hides them)."""

    def __init__(self, path: str = KALLSYMS):
        entries: list[tuple[int, int, str]] = []
        self.modules: dict[str, str] = {}
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in _TEXT_TYPES:
                    continue
                addr = int(parts[0], 16)
                if addr:
                    entries.append((addr, 0, parts[2]))
                    if len(parts) > 3:
                        self.modules[parts[2]] = parts[3].strip("[]")
        self._table = _Table(entries, MAX_KERNEL_FUNCTION)

    @property
    def available(self) -> bool:
        """False when the addresses are hidden (kptr_restrict) or the file was empty."""
        return bool(self._table.starts)

    def resolve(self, addr: int) -> Location | None:
        """The function containing ``addr``, or None."""
        hit = self._table.find(addr)
        if hit is None:
            return None
        return Location(hit[0], hit[1], self.modules.get(hit[0], ""))

    def __call__(self, addr: int) -> str:
        """``func+0x1a`` (``[module]`` appended for modules), or the address in hex when unknown."""
        loc = self.resolve(addr)
        return str(loc) if loc is not None else f"{addr:#x}"


_KERNEL: KernelSymbols | None = None


def kernel_symbols(refresh: bool = False) -> KernelSymbols:
    """The process-wide :class:`KernelSymbols`, read on first use (or again with ``refresh``: programs and
    modules loaded since appear then)."""
    global _KERNEL
    if _KERNEL is None or refresh:
        _KERNEL = KernelSymbols()
    return _KERNEL


# --- user space ----------------------------------------------------------------------------------------------

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")
SHT_SYMTAB, SHT_DYNSYM, PT_LOAD = 2, 11, 1
STT_FUNC, STT_GNU_IFUNC = 2, 10


class ElfSymbols:
    """Function symbols and loadable segments of one ELF64 little-endian file."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        h = _EHDR.unpack_from(data, 0)
        phoff, shoff, phentsize, phnum, shentsize, shnum = h[5], h[6], h[9], h[10], h[11], h[12]
        self.segments = []  # (file offset, file size, vaddr)
        for i in range(phnum):
            p = _PHDR.unpack_from(data, phoff + i * phentsize)
            if p[0] == PT_LOAD:
                self.segments.append((p[2], p[5], p[3]))
        sections = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)] if shoff else []
        tables = {s[1]: s for s in sections if s[1] in (SHT_SYMTAB, SHT_DYNSYM)}
        entries: list[tuple[int, int, str]] = []
        sec = tables.get(SHT_SYMTAB) or tables.get(SHT_DYNSYM)
        if sec is not None and sec[6] < len(sections):
            strtab = sections[sec[6]]
            strings = data[strtab[4]:strtab[4] + strtab[5]]
            body = data[sec[4]:sec[4] + sec[5] - sec[5] % _SYM.size]
            for name_off, info, _, _, value, size in _SYM.iter_unpack(body):
                if value and info & 0xF in (STT_FUNC, STT_GNU_IFUNC):
                    end = strings.find(b"\0", name_off)
                    entries.append((value, size, strings[name_off:end].decode(errors="replace")))
        self._table = _Table(entries)

    def vaddr(self, file_offset: int) -> int | None:
        """The link-time virtual address of a file offset (through the PT_LOAD segment holding it)."""
        for off, size, vaddr in self.segments:
            if off <= file_offset < off + size:
                return file_offset - off + vaddr
        return None

    def resolve_vaddr(self, vaddr: int) -> tuple[str, int] | None:
        """(symbol, offset) for a link-time virtual address."""
        return self._table.find(vaddr)


_ELF_CACHE: dict[tuple[str, int, int, int], ElfSymbols | None] = {}


def elf_symbols(path: str) -> ElfSymbols | None:
    """The (cached) :class:`ElfSymbols` of ``path``, or None when it cannot be read as ELF."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns)
    if key not in _ELF_CACHE:
        try:
            _ELF_CACHE[key] = ElfSymbols(path)
        except (OSError, ValueError, struct.error):
            _ELF_CACHE[key] = None
    return _ELF_CACHE[key]


class ProcessSymbols:
    """Resolves user addresses of process ``pid`` with a snapshot of its executable mappings."""

    def __init__(self, pid: int):
        self.pid = pid
        self._maps: list[tuple[int, int, int, str]] = []  # start, end, file offset, path
        root = f"/proc/{pid}/root"
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) < 5 or "x" not in parts[1]:
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                path = parts[5].strip() if len(parts) > 5 else ""
                self._maps.append((lo, hi, int(parts[2], 16), path))
        self._maps.sort()
        self._starts = [m[0] for m in self._maps]
        self._root = root if os.path.isdir(root) else ""

    def resolve(self, addr: int) -> Location | None:
        """The function (and file) containing ``addr``, or None when it is in no mapped file we can read."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        lo, hi, off, path = self._maps[i]
        if addr >= hi or not path.startswith("/"):
            return Location(path, addr - lo, "") if addr < hi and path else None
        clean = path[:-len(" (deleted)")] if path.endswith(" (deleted)") else path
        elf = elf_symbols(self._root + clean) or elf_symbols(clean)
        if elf is None:
            return None
        vaddr = elf.vaddr(addr - lo + off)
        hit = elf.resolve_vaddr(vaddr) if vaddr is not None else None
        if hit is None:
            return Location(os.path.basename(clean), addr - lo + off, clean)
        return Location(hit[0], hit[1], clean)

    def __call__(self, addr: int) -> str:
        """``func+0x1a [/path/lib.so]``, or the address in hex when unknown."""
        loc = self.resolve(addr)
        return str(loc) if loc is not None else f"{addr:#x}"
