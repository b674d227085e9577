"""Write an :class:`~pybpf.asm.Assembly` as an ELF relocatable object (EM_BPF) that libbpf loads.

Layout, as clang emits it: one PROGBITS section per ``.section`` holding its instructions, a global STT_FUNC
symbol per program (the first instruction of a section, ``.globl`` labels, call targets) whose size runs to the
next one; subprograms live in ``.text``; ``license``; maps declared with ``.map`` in a BTF-defined ``.maps``
section (libbpf 1.0 and later refuse the legacy ``maps`` section, which ``legacy_maps=True`` writes instead, as
5-u32 ``struct bpf_map_def``); R_BPF_64_64 relocations for map loads and function addresses, R_BPF_64_32 for
bpf-to-bpf calls.  Local jumps are resolved here.
"""
from __future__ import annotations

import re
import struct

from ..errors import LinkError
from ..sys.abi import (
    BPF_PSEUDO_MAP_FD, BTF_KIND_ARRAY, BTF_KIND_DATASEC, BTF_KIND_INT, BTF_KIND_PTR,
    BTF_KIND_STRUCT, BTF_KIND_VAR, BTF_MAGIC, BTF_VAR_GLOBAL_ALLOCATED,
)
from .instruction import Instruction, Instructions, resolve_reference
from .text import Assembly, MapDef

EM_BPF = 247
ET_REL = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL = 1, 2, 3, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
R_BPF_64_64, R_BPF_64_32 = 1, 10
TEXT = ".text"

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_BTF_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags")


class _Strings:
    """An ELF/BTF string table: offsets of NUL-terminated names, each stored once."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.offsets: dict[str, int] = {"": 0}

    def add(self, name: str) -> int:
        off = self.offsets.get(name)
        if off is None:
            off = self.offsets[name] = len(self.data)
            self.data += name.encode() + b"\0"
        return off


class _Symbol:
    __slots__ = ("name", "bind", "type", "section", "value", "size")

    def __init__(self, name: str, bind: int, type: int, section: str, value: int, size: int) -> None:  # noqa: A002
        self.name, self.bind, self.type, self.section, self.value, self.size = name, bind, type, section, value, size


def _program_name(section: str) -> str:
    return re.sub(r"\W", "_", section).strip("_") or "prog"


def _named_sections(asm: Assembly) -> dict[str, Instructions]:
    """The non-empty sections, each with a symbol on its first instruction (the section's name if unnamed)."""
    out = {}
    for name, section in asm.sections.items():
        if section:
            if section[0].symbol is None:
                section = Instructions(section)
                section[0] = section[0].replace(symbol=_program_name(name))
            out[name] = section
    return out


def _functions(sections: dict[str, Instructions], globals_: list[str]) -> dict[str, str]:
    """Every function entry -> its section: each section's first instruction, call and func-load targets and
    ``.globl`` labels."""
    wanted = {ins.reference for section in sections.values() for ins in section
              if ins.reference is not None and (ins.is_pseudo_call or ins.is_load_func)} | set(globals_)
    out: dict[str, str] = {}
    for name, section in sections.items():
        for i, ins in enumerate(section):
            if ins.symbol is not None and (i == 0 or ins.symbol in wanted):
                out[ins.symbol] = name
    return out


def write_object(asm: Assembly, legacy_maps: bool = False) -> bytes:
    """The bytes of an ELF object holding ``asm``'s programs, maps and license.

    Raises :class:`~pybpf.errors.LinkError` for a reference that is neither a local label, a function in
    ``.text`` nor a declared map."""
    named = _named_sections(asm)
    functions = _functions(named, asm.globals)
    maps_section = "maps" if legacy_maps else ".maps"
    map_size = 20 if legacy_maps else 40
    symbols: list[_Symbol] = []
    sections: list[tuple[str, int, int, bytes, int]] = []  # name, type, flags, data, align
    relocations: dict[str, list[tuple[int, str, int]]] = {}  # section -> (byte offset, symbol, type)

    for name, instructions in named.items():
        code, relos = _encode_section(name, instructions, functions, asm.maps)
        sections.append((name, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, code, 8))
        relocations[name] = relos
        entries = [(slot, ins.symbol) for slot, ins in zip(instructions.offsets(), instructions)
                   if ins.symbol in functions]
        for i, (slot, sym) in enumerate(entries):
            end = entries[i + 1][0] if i + 1 < len(entries) else instructions.slots
            bind = STB_LOCAL if name == TEXT and sym not in asm.globals else STB_GLOBAL
            symbols.append(_Symbol(sym, bind, STT_FUNC, name, slot * 8, (end - slot) * 8))
    if asm.license is not None:
        sections.append(("license", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, asm.license.encode() + b"\0", 1))
    if asm.maps:
        if legacy_maps:
            data = b"".join(struct.pack("<5I", m.type, m.key_size, m.value_size, m.max_entries, m.flags)
                            for m in asm.maps.values())
        else:
            data = bytes(map_size * len(asm.maps))
        sections.append((maps_section, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, data, 4 if legacy_maps else 8))
        for i, m in enumerate(asm.maps.values()):
            symbols.append(_Symbol(m.name, STB_GLOBAL, STT_OBJECT, maps_section, i * map_size, map_size))
        if not legacy_maps:
            sections.append((".BTF", SHT_PROGBITS, 0, _maps_btf(list(asm.maps.values())), 4))
    return _layout(sections, symbols, relocations)


def _encode_section(name: str, instructions: Instructions, functions: dict[str, str],
                    maps: dict[str, MapDef]) -> tuple[bytes, list[tuple[int, str, int]]]:
    """The section's bytes with local jumps resolved, and its relocations (offset, symbol, type)."""
    local = instructions.symbol_offsets()
    relos = []
    out = []
    for slot, ins in zip(instructions.offsets(), instructions):
        ref = ins.reference
        if ref is not None:
            ins, relo = _relocate(name, slot, ins, local, functions, maps)
            if relo:
                relos.append((slot * 8, ref, relo))
        out.append(ins.encode())
    return b"".join(out), relos


def _relocate(section: str, slot: int, ins: Instruction, local: dict[str, int], functions: dict[str, str],
              maps: dict[str, MapDef]) -> tuple[Instruction, int]:
    """``ins`` as written in the object, and its relocation type (0: none, resolved here)."""
    ref = ins.reference
    assert ref is not None
    where = f"{section}+{slot * 8:#x} ({ins})"
    if ins.is_pseudo_call or ins.is_load_func:
        if functions.get(ref) != TEXT:
            raise LinkError(f"{where}: {ref!r} is not a function in .text (libbpf calls only .text functions)")
        if ins.is_pseudo_call:
            return ins.replace(imm=-1, reference=None), R_BPF_64_32
        return ins.replace(imm=0, reference=None), R_BPF_64_64
    if ins.is_jump:
        if ref not in local:
            raise LinkError(f"{where}: jump to {ref!r}, which is not a label of this section")
        return resolve_reference(ins, slot, local), 0
    if ins.is_load_map and ins.src == BPF_PSEUDO_MAP_FD:
        if ref not in maps:
            raise LinkError(f"{where}: map {ref!r} is not declared (.map {ref}, type=..., ...)")
        return ins.replace(src=0, imm=0, reference=None), R_BPF_64_64
    raise LinkError(f"{where}: the ELF writer cannot relocate a reference to {ref!r} here")


def _maps_btf(maps: list[MapDef]) -> bytes:
    """Minimal BTF describing ``maps`` the way libbpf reads ``.maps``: ``struct { int (*type)[T]; ... }``."""
    strings = _Strings()
    types: list[bytes] = []

    def add(name: str, kind: int, vlen: int, size_or_type: int, extra: bytes = b"") -> int:
        types.append(struct.pack("<III", strings.add(name), kind << 24 | vlen, size_or_type) + extra)
        return len(types)

    int_id = add("int", BTF_KIND_INT, 0, 4, struct.pack("<I", 1 << 24 | 32))
    pointers: dict[int, int] = {}

    def pointer_to_array(n: int) -> int:
        if n not in pointers:
            array = add("", BTF_KIND_ARRAY, 0, 0, struct.pack("<III", int_id, int_id, n))
            pointers[n] = add("", BTF_KIND_PTR, 0, array)
        return pointers[n]

    variables = []
    for m in maps:
        values = dict(zip(_BTF_FIELDS, (m.type, m.key_size, m.value_size, m.max_entries, m.flags)))
        fields = [(f, v) for f, v in values.items() if v or f in ("type", "max_entries")]
        members = b"".join(struct.pack("<III", strings.add(f), pointer_to_array(v), i * 64)
                           for i, (f, v) in enumerate(fields))
        struct_id = add("", BTF_KIND_STRUCT, len(fields), 40, members)
        variables.append(add(m.name, BTF_KIND_VAR, 0, struct_id, struct.pack("<I", BTF_VAR_GLOBAL_ALLOCATED)))
    entries = b"".join(struct.pack("<III", var, i * 40, 40) for i, var in enumerate(variables))
    add(".maps", BTF_KIND_DATASEC, len(variables), 40 * len(variables), entries)
    type_data = b"".join(types)
    header = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(type_data), len(type_data), len(strings.data))
    return header + type_data + bytes(strings.data)


def _layout(sections: list[tuple[str, int, int, bytes, int]], symbols: list[_Symbol],
            relocations: dict[str, list[tuple[int, str, int]]]) -> bytes:
    """Assemble headers, symbol table, relocation sections and string table into the ELF image."""
    strtab = _Strings()
    index = {name: i + 1 for i, (name, *_) in enumerate(sections)}
    symbols.sort(key=lambda s: s.bind != STB_LOCAL)  # locals first, as ELF requires
    symtab = bytearray(_SYM.size)
    sym_index = {}
    for i, sym in enumerate(symbols, 1):
        sym_index[sym.name] = i
        symtab += _SYM.pack(strtab.add(sym.name), sym.bind << 4 | sym.type, 0, index[sym.section], sym.value,
                            sym.size)
    first_global = 1 + sum(1 for s in symbols if s.bind == STB_LOCAL)
    strtab_index, symtab_index = len(sections) + 1, len(sections) + 2
    all_sections = [(name, kind, flags, data, align, 0, 0, 0) for name, kind, flags, data, align in sections]
    all_sections.append((".strtab", SHT_STRTAB, 0, b"", 1, 0, 0, 0))  # data filled in once all names are in
    all_sections.append((".symtab", SHT_SYMTAB, 0, bytes(symtab), 8, strtab_index, first_global, _SYM.size))
    for name, relos in relocations.items():
        if relos:
            data = b"".join(_REL.pack(off, sym_index[sym] << 32 | kind) for off, sym, kind in relos)
            all_sections.append((".rel" + name, SHT_REL, 0, data, 8, symtab_index, index[name], _REL.size))
    names = [strtab.add(s[0]) for s in all_sections]
    all_sections[strtab_index - 1] = (".strtab", SHT_STRTAB, 0, bytes(strtab.data), 1, 0, 0, 0)
    body = bytearray()
    headers = [bytes(_SHDR.size)]
    offset = _EHDR.size
    for (name, kind, flags, data, align, link, info, entsize), name_off in zip(all_sections, names):
        body += bytes(-(offset + len(body)) % align)
        headers.append(_SHDR.pack(name_off, kind, flags, 0, offset + len(body), len(data), link, info, align,
                                  entsize))
        body += data
    body += bytes(-(offset + len(body)) % 8)
    shoff = offset + len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = _EHDR.pack(ident, ET_REL, EM_BPF, 1, 0, 0, shoff, 0, _EHDR.size, 0, 0, _SHDR.size, len(headers),
                        strtab_index)
    return header + bytes(body) + b"".join(headers)
