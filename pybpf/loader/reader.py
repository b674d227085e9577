"""ELF object -> :class:`~pybpf.loader.spec.ObjectSpec`, following libbpf's ``bpf_object__open`` rules:
which sections are programs, maps (BTF-defined ``.maps`` and legacy ``SEC("maps")``) and global data, how
internal maps are named, and how each relocation turns into a symbolic reference on an instruction.
"""
from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

from ..errors import BTFError, ELFError, LinkError
from ..sys import abi
from . import elf as E
from .spec import (
    MAP_IN_MAP_TYPES, PIN_BY_NAME, PIN_NONE, Line, MapSpec, ObjectSpec, ProgramSpec, Relocation, VariableSpec,
)

if TYPE_CHECKING:
    from ..asm import Instruction

OBJ_NAME_LEN = 16  # BPF_OBJ_NAME_LEN, with the NUL
_DATA_PREFIXES = (".data", ".rodata")
STRUCT_OPS_SECTIONS = (".struct_ops", ".struct_ops.link")
_LEGACY_DEF = struct.Struct("<5I")  # struct bpf_map_def: type, key_size, value_size, max_entries, map_flags


def object_name(path: str) -> str:
    """libbpf's object name: the file's base name up to its first dot, at most 15 characters."""
    base = os.path.basename(path)[:OBJ_NAME_LEN - 1]
    return base.split(".", 1)[0]


def internal_map_name(obj_name: str, section: str) -> str:
    """The kernel name libbpf gives the map of data section ``section`` (libbpf's internal_map_name): as much
    of the object name as fits before the section name (which counts as at least 7 characters), none for
    custom ``.data.*``/``.rodata.*`` sections, at most 15 characters, invalid characters replaced by ``_``."""
    sfx_len = min(max(7, len(section)), OBJ_NAME_LEN - 1)
    pfx_len = 0 if "." in section[1:] else min(OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
    name = obj_name[:pfx_len] + section[:sfx_len]
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name[:OBJ_NAME_LEN - 1])


def ObjectFile(source: str | os.PathLike[str] | bytes | bytearray | memoryview, name: str | None = None) -> ObjectSpec:
    """Parse an eBPF ELF object (a path or its bytes) into an :class:`ObjectSpec`; no kernel, no root.

    ``name`` overrides the object name used for internal map names (default: the file name up to its first
    dot, as libbpf does).  Malformed input raises :class:`~pybpf.errors.ELFError`, :class:`LinkError` or
    :class:`BTFError` saying what is wrong and where."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, path = bytes(source), ""
    else:
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ELFError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return _Reader(data, path, name).spec
    except (BTFError, LinkError) as e:  # met in BTF while reading maps, globals, externs: name the object
        where = path or "<bytes>"
        if str(e).startswith(where):
            raise
        raise type(e)(f"{where}: {'.BTF: ' if isinstance(e, BTFError) else ''}{e}") from None


class _Reader:
    """One pass of ``ObjectFile``: the ELF, the spec being built, and lookups between them."""

    def __init__(self, data: bytes, path: str, name: str | None):
        self.elf = E.ElfObject(data, path or "<bytes>")
        self.where = self.elf.where
        self.spec = ObjectSpec(name=name if name is not None else (object_name(path) if path else "obj"), path=path)
        self.text_index = 0
        self.maps_index = -1  # .maps
        self.legacy_index = -1  # maps
        self.data_sections: dict[int, E.Section] = {}
        self.struct_ops_sections: dict[int, E.Section] = {}  # .struct_ops, .struct_ops.link
        self.functions: dict[tuple[int, int], ProgramSpec] = {}  # (section index, slot) -> function
        self.map_at: dict[tuple[int, int], MapSpec] = {}  # (section index, offset) -> map
        self.data_map: dict[int, MapSpec] = {}  # data section index -> its internal map
        self._btf_sections: dict[str, E.Section] = {}
        self._collect_sections()
        self._load_btf()
        self._collect_programs()
        self._collect_maps()
        self._collect_relocations()
        self._attach_btf_ext()

    def fail(self, message: str) -> ELFError:
        """An ELFError about this object."""
        return ELFError(f"{self.where}: {message}")

    # ---- sections ----------------------------------------------------------------------------------------

    def _collect_sections(self) -> None:
        spec = self.spec
        spec.symbol_offsets = {s.name: s.value for s in self.elf.symbols
                               if s.type == E.STT_OBJECT and s.bind in (E.STB_GLOBAL, E.STB_WEAK) and s.name}
        spec.hidden_symbols = {s.name for s in self.elf.symbols if s.bind != E.STB_LOCAL and s.name
                               and s.visibility in (E.STV_HIDDEN, E.STV_INTERNAL)}
        for sec in self.elf.sections[1:]:
            name = sec.name
            spec.section_sizes.setdefault(name, sec.size)
            if name == "license":
                spec.license = sec.data.split(b"\0", 1)[0][:63].decode("utf-8", "replace")
            elif name == "version":
                if sec.size != 4:
                    raise self.fail(f"section 'version' is {sec.size} bytes; it must hold one u32 kernel version")
                spec.kern_version = struct.unpack("<I", sec.data)[0]
            elif name == ".maps":
                self.maps_index = sec.index
            elif name == "maps":
                self.legacy_index = sec.index
            elif name in STRUCT_OPS_SECTIONS and sec.type == E.SHT_PROGBITS and sec.size:
                self.struct_ops_sections[sec.index] = sec
            elif name in (".BTF", ".BTF.ext"):
                if sec.type != E.SHT_PROGBITS:
                    raise self.fail(f"section {name!r} has type {sec.type}, not PROGBITS")
                self._btf_sections[name] = sec
            elif sec.type == E.SHT_PROGBITS and sec.size and not sec.executable:
                if name in _DATA_PREFIXES or name.startswith((".data.", ".rodata.")):
                    self._data_section(sec)
            elif sec.type == E.SHT_NOBITS and (name == ".bss" or name.startswith(".bss.")) and sec.size:
                self._data_section(sec)
            if name == ".text" and sec.executable:
                self.text_index = sec.index

    def _data_section(self, sec: E.Section) -> None:
        """Record a global-data section; its size becomes a map's u32 value_size."""
        if sec.size > 0xFFFFFFFF:
            raise self.fail(f"section {sec.name!r} (#{sec.index}) claims {sec.size} bytes: more than a map value "
                            "can hold (value_size is 32 bits)")
        self.data_sections[sec.index] = sec

    def _load_btf(self) -> None:
        from ..btf import BTF, BTFExt

        btf_sec = self._btf_sections.get(".BTF")
        if btf_sec is None:
            return
        try:
            self.spec.btf = BTF.parse(btf_sec.data)
            ext = self._btf_sections.get(".BTF.ext")
            if ext is not None:
                self.spec.btf_ext = BTFExt.parse(ext.data, self.spec.btf)
        except BTFError as e:
            raise BTFError(f"{self.where}: {e}") from None

    # ---- programs ----------------------------------------------------------------------------------------

    def _collect_programs(self) -> None:
        from ..asm import Instructions
        from ..errors import AsmError
        from .sections import find_sec_def, parse_section

        elf, spec = self.elf, self.spec
        found: list[tuple[int, int, E.Symbol]] = []
        for sym in elf.symbols:
            if sym.type != E.STT_FUNC or not (0 < sym.shndx < len(elf.sections)):
                continue
            sec = elf.sections[sym.shndx]
            if not (sec.type == E.SHT_PROGBITS and sec.executable and sec.size):
                continue
            found.append((sym.shndx, sym.value, sym))
        found.sort(key=lambda t: (t[0], t[1]))
        only_text = len(found) == 1 and found[0][0] == self.text_index
        for shndx, off, sym in found:
            sec = elf.sections[shndx]
            name = sym.name
            if not name:
                raise self.fail(f"section {sec.name!r}: function at offset {off} has no name")
            if off % 8 or sym.size % 8 or not sym.size:
                raise self.fail(f"section {sec.name!r}: function {name!r} at offset {off}, {sym.size} bytes, is not "
                                "a whole number of 8-byte instructions")
            if off + sym.size > sec.size:
                raise self.fail(f"section {sec.name!r}: function {name!r} (offset {off}, {sym.size} bytes) crosses "
                                f"the end of the {sec.size}-byte section")
            subprogram = shndx == self.text_index and not only_text
            if not subprogram and sym.bind == E.STB_LOCAL:
                raise LinkError(f"{self.where}: section {sec.name!r}: program {name!r} is static; programs must be "
                                "global functions (static functions belong in .text)")
            try:
                insns = Instructions.decode(sec.data[off:off + sym.size])
            except AsmError as e:
                raise self.fail(f"section {sec.name!r}, function {name!r}: {e}") from None
            insns[0].symbol = name
            section = sec.name
            autoload = True
            if section.startswith("?"):
                section, autoload = section[1:], False
            prog = ProgramSpec(name=name, section=section, instructions=insns, license=spec.license,
                               autoload=autoload, subprogram=subprogram, section_index=shndx, offset=off // 8)
            if not subprogram and find_sec_def(section) is not None:
                info = parse_section(section)
                prog.info, prog.type, prog.expected_attach_type = info, info.prog_type, info.expected_attach_type
                prog.flags, prog.attach_to = info.prog_flags, info.target
            table = spec.functions if subprogram else spec.programs
            if name in spec.programs or name in spec.functions:
                raise self.fail(f"function {name!r} is defined twice")
            table[name] = prog
            self.functions[(shndx, off // 8)] = prog

    # ---- maps --------------------------------------------------------------------------------------------

    def _collect_maps(self) -> None:
        if self.maps_index >= 0:
            self._btf_maps()
        if self.legacy_index >= 0:
            self._legacy_maps()
        self._data_maps()
        self._struct_ops_maps()
        self._collect_externs()

    def _collect_externs(self) -> None:
        """Extern symbols by section (libbpf's collect_externs); ``__kconfig`` ones get the ``.kconfig`` map."""
        from .externs import KCONFIG, kconfig_layout

        spec = self.spec
        kconfig: dict[str, bool] = {}
        for sym in self.elf.symbols:
            if not sym.is_extern:
                continue
            sec = self._extern_section(sym.name)
            spec.externs[sym.name] = sec
            if sym.bind == E.STB_WEAK:
                spec.weak_externs.add(sym.name)
            if sec == KCONFIG:
                kconfig[sym.name] = sym.bind == E.STB_WEAK
        if not kconfig:
            return
        assert spec.btf is not None
        spec.kconfig = kconfig_layout(spec.btf, kconfig)
        last = spec.kconfig[-1]
        m = MapSpec(internal_map_name(spec.name, KCONFIG), abi.BPF_MAP_TYPE_ARRAY, 4, last.offset + last.size, 1,
                    abi.BPF_F_RDONLY_PROG, section=KCONFIG)
        found = spec.btf.find(KCONFIG, abi.BTF_KIND_DATASEC)
        if found:
            m.value_type = found[0].id
        self._add_map(m, -1)

    def _add_map(self, m: MapSpec, shndx: int) -> None:
        if m.name in self.spec.maps:
            raise self.fail(f"map {m.name!r} is defined twice")
        self.spec.maps[m.name] = m
        self.map_at[(shndx, m.offset)] = m

    def _legacy_maps(self) -> None:
        sec = self.elf.sections[self.legacy_index]
        syms = [s for s in self.elf.symbols if s.shndx == sec.index and s.type != E.STT_SECTION]
        if not syms or not sec.size or sec.size % len(syms):
            raise self.fail(f"section 'maps': {sec.size} bytes for {len(syms)} map symbols; cannot tell the size of "
                            "one struct bpf_map_def")
        def_size = sec.size // len(syms)
        for sym in syms:
            if sym.bind == E.STB_LOCAL:
                raise LinkError(f"{self.where}: map {sym.name!r} in section 'maps' is static; legacy maps must be "
                                "global")
            if sym.value + def_size > sec.size:
                raise self.fail(f"section 'maps': map {sym.name!r} at offset {sym.value} runs past the end")
            raw = sec.data[sym.value:sym.value + def_size].ljust(_LEGACY_DEF.size, b"\0")
            mtype, ksize, vsize, entries, flags = _LEGACY_DEF.unpack_from(raw)
            self._add_map(MapSpec(sym.name, mtype, ksize, vsize, entries, flags, section="maps", offset=sym.value),
                          sec.index)

    def _btf_maps(self) -> None:
        from ..btf import Datasec, Var

        btf = self.spec.btf
        sec = self.elf.sections[self.maps_index]
        if btf is None:
            raise LinkError(f"{self.where}: section '.maps' needs BTF (compile with clang -g)")
        try:
            datasec = btf.find_one(".maps", abi.BTF_KIND_DATASEC)
        except BTFError:
            raise LinkError(f"{self.where}: section '.maps' has no DATASEC '.maps' in its BTF") from None
        assert isinstance(datasec, Datasec)
        offsets = {s.name: s.value for s in self.elf.symbols if s.shndx == sec.index and s.name}
        for vsi in datasec.vars:
            var = btf[vsi.type_id]
            if not isinstance(var, Var) or not var.name:
                raise LinkError(f"{self.where}: .maps: entry [{vsi.type_id}] is not a named VAR")
            if var.linkage != abi.BTF_VAR_GLOBAL_ALLOCATED:
                raise LinkError(f"{self.where}: map {var.name!r}: static maps are not supported (linkage "
                                f"{var.linkage})")
            offset = offsets.get(var.name, vsi.offset)
            if offset + vsi.size > sec.size:
                raise self.fail(f"map {var.name!r}: its definition (offset {offset}, {vsi.size} bytes) runs past the "
                                f"{sec.size}-byte '.maps' section")
            m = self._btf_map_def(var.name, var.type_id, inner=False)
            m.section, m.offset = ".maps", offset
            self._add_map(m, sec.index)

    def _btf_map_def(self, name: str, type_id: int, inner: bool) -> MapSpec:
        """libbpf's parse_btf_map_def: a map from the members of its definition struct."""
        from ..btf import Array, FuncProto, Ptr, Struct

        btf = self.spec.btf
        assert btf is not None
        where = f"{self.where}: map {name!r}"
        try:
            d = btf.resolve(type_id)
            if not isinstance(d, Struct):
                raise LinkError(f"{where}: definition is a {d.kind_name}, not a struct")
            m = MapSpec(name, 0)
            for i, mem in enumerate(d.members):
                mt = btf.resolve(mem.type_id)
                what = f"{where}: attribute {mem.name!r}"
                if mem.name in ("type", "max_entries", "map_flags", "numa_node", "key_size", "value_size",
                                "pinning", "map_extra"):
                    if not isinstance(mt, Ptr) or not isinstance(btf[mt.type_id], Array):
                        raise LinkError(f"{what}: expected a pointer to an array (__uint()), got {mt.kind_name}")
                    val = btf[mt.type_id].nelems
                    if mem.name == "type":
                        m.type = val
                    elif mem.name == "map_flags":
                        m.flags = val
                    elif mem.name in ("key_size", "value_size"):
                        old = getattr(m, mem.name)
                        if old and old != val:
                            raise LinkError(f"{what}: {val} conflicts with the {old} already given")
                        setattr(m, mem.name, val)
                    elif mem.name == "pinning":
                        if inner:
                            raise LinkError(f"{where}: an inner map cannot be pinned")
                        if val not in (PIN_NONE, PIN_BY_NAME):
                            raise LinkError(f"{what}: unknown pinning {val} (0: none, 1: by name)")
                        m.pinning = val
                    else:
                        setattr(m, mem.name, val)
                elif mem.name in ("key", "value"):
                    if not isinstance(mt, Ptr):
                        raise LinkError(f"{what}: expected a pointer (__type()), got {mt.kind_name}")
                    size = btf.size_of(mt.type_id)
                    attr = mem.name + "_size"
                    if getattr(m, attr) and getattr(m, attr) != size:
                        raise LinkError(f"{what}: type size {size} conflicts with {attr} {getattr(m, attr)}")
                    setattr(m, attr, size)
                    setattr(m, mem.name + "_type", mt.type_id)
                elif mem.name == "values":
                    if inner:
                        raise LinkError(f"{where}: an inner map cannot have 'values'")
                    if i != len(d.members) - 1:
                        raise LinkError(f"{where}: 'values' must be the last attribute")
                    if m.type not in MAP_IN_MAP_TYPES and m.type != abi.BPF_MAP_TYPE_PROG_ARRAY:
                        raise LinkError(f"{where}: 'values' is only for prog arrays and maps of maps")
                    if m.value_size and m.value_size != 4:
                        raise LinkError(f"{where}: 'values' needs value_size 4, not {m.value_size}")
                    m.value_size = 4
                    arr = btf[mem.type_id]
                    if not isinstance(arr, Array) or arr.nelems:
                        raise LinkError(f"{what}: expected a zero-length array of pointers (__array())")
                    ptr = btf.resolve(arr.type_id)
                    if not isinstance(ptr, Ptr):
                        raise LinkError(f"{what}: array elements must be pointers, not {ptr.kind_name}")
                    target = btf.resolve(ptr.type_id)
                    if m.type == abi.BPF_MAP_TYPE_PROG_ARRAY:
                        if not isinstance(target, FuncProto):
                            raise LinkError(f"{what}: a prog array's values must point to functions")
                    else:
                        m.inner = self._btf_map_def(f"{name}.inner", target.id, inner=True)
                # unknown attributes are ignored, as libbpf does outside strict mode
            if not m.type:
                raise LinkError(f"{where}: no map type given")
            if m.type == abi.BPF_MAP_TYPE_RINGBUF:
                m.max_entries = _ringbuf_size(m.max_entries)
            return m
        except BTFError as e:
            raise LinkError(f"{where}: {e}") from None

    def _data_maps(self) -> None:
        from ..btf import Datasec, Var

        btf = self.spec.btf
        for idx, sec in sorted(self.data_sections.items()):
            readonly = sec.name.startswith(".rodata")
            flags = abi.BPF_F_RDONLY_PROG if readonly else 0
            m = MapSpec(internal_map_name(self.spec.name, sec.name), abi.BPF_MAP_TYPE_ARRAY, 4, sec.size, 1, flags,
                        section=sec.name, data=None if sec.type == E.SHT_NOBITS else sec.data)
            datasec = None
            if btf is not None:
                found = btf.find(sec.name, abi.BTF_KIND_DATASEC)
                if found:
                    datasec = found[0]
                    m.value_type = datasec.id
            # libbpf's map_is_mmapable: a global variable (not static, not hidden) is exposed to user space
            hidden = self.spec.hidden_symbols
            if btf is not None and isinstance(datasec, Datasec) and any(
                    isinstance(btf[v.type_id], Var) and btf[v.type_id].linkage != abi.BTF_VAR_STATIC
                    and btf[v.type_id].name not in hidden for v in datasec.vars):
                m.flags |= abi.BPF_F_MMAPABLE
            self._add_map(m, idx)
            self.data_map[idx] = m
            self._variables(sec, m, datasec)

    def _struct_ops_maps(self) -> None:
        """One BPF_MAP_TYPE_STRUCT_OPS map per variable of ``.struct_ops``/``.struct_ops.link`` (as libbpf): named
        after the variable, its value the variable's struct (``values`` gets the programs in its function
        pointers from the relocations)."""
        from ..btf import Datasec, Struct, Var

        btf = self.spec.btf
        for idx, sec in sorted(self.struct_ops_sections.items()):
            found = btf.find(sec.name, abi.BTF_KIND_DATASEC) if btf is not None else []
            if btf is None or not found or not isinstance(found[0], Datasec):
                raise self.fail(f"section {sec.name!r} has no BTF DATASEC: struct_ops maps are described by BTF "
                                "(compile with -g)")
            flags = abi.BPF_F_LINK if sec.name == ".struct_ops.link" else 0
            for v in found[0].vars:
                var = btf[v.type_id]
                struct = btf.resolve(var.type_id) if isinstance(var, Var) else None
                if not isinstance(var, Var) or not isinstance(struct, Struct) or v.offset + v.size > sec.size:
                    raise self.fail(f"{sec.name}: entry [{v.type_id}] is not a struct variable inside the section")
                m = MapSpec(var.name, abi.BPF_MAP_TYPE_STRUCT_OPS, 4, struct.size, 1, flags, value_type=struct.id,
                            data=sec.data[v.offset:v.offset + v.size], section=sec.name, offset=v.offset)
                self._add_map(m, idx)

    def _variables(self, sec: E.Section, m: MapSpec, datasec: Any) -> None:
        btf = self.spec.btf
        types: dict[str, tuple[int, int]] = {}
        if datasec is not None and btf is not None:
            from ..btf import Var

            for v in datasec.vars:
                var = btf[v.type_id]
                if not isinstance(var, Var):
                    raise BTFError(f"{self.where}: DATASEC {sec.name!r}: entry [{v.type_id}] is a {var.kind_name}, "
                                   "not a VAR")
                types[var.name] = (var.type_id, var.linkage)
        for sym in self.elf.symbols:
            if sym.shndx != sec.index or sym.type != E.STT_OBJECT or not sym.name:
                continue
            if sym.value + sym.size > sec.size:
                raise self.fail(f"variable {sym.name!r} (offset {sym.value}, {sym.size} bytes) runs past the end of "
                                f"section {sec.name!r}")
            type_id, linkage = types.get(sym.name, (0, abi.BTF_VAR_STATIC if sym.bind == E.STB_LOCAL
                                                    else abi.BTF_VAR_GLOBAL_ALLOCATED))
            if sym.name in self.spec.variables:
                continue  # a static of the same name in another function: the first one wins
            self.spec.variables[sym.name] = VariableSpec(sym.name, sec.name, sym.value, sym.size, type_id, linkage,
                                                         m.name)

    # ---- relocations -------------------------------------------------------------------------------------

    def _collect_relocations(self) -> None:
        elf = self.elf
        by_section: dict[int, list[ProgramSpec]] = {}
        for prog in (*self.spec.programs.values(), *self.spec.functions.values()):
            by_section.setdefault(prog.section_index, []).append(prog)
        for progs in by_section.values():
            progs.sort(key=lambda p: p.offset)
        for target, rels in sorted(elf.relocations.items()):
            sec = elf.sections[target]
            if sec.executable:
                self._code_relocations(sec, rels, by_section.get(target, []))
            elif target == self.maps_index:
                self._values_relocations(sec, rels)
            elif target in self.struct_ops_sections:
                self._struct_ops_relocations(sec, rels)
            elif not sec.name.startswith((".BTF", ".debug")):  # type/line info: offsets, not addresses
                for rel in rels:
                    self.spec.relocations.append(Relocation(sec.name, rel.offset, rel.type_name,
                                                            elf.symbol_name(rel.symbol), "ignored"))
        for progs in by_section.values():
            for prog in progs:
                self._local_calls(prog)

    def _code_relocations(self, sec: E.Section, rels: list[E.Rel], progs: list[ProgramSpec]) -> None:
        starts = {p.offset: p for p in progs}
        index_cache: dict[str, list[int]] = {}
        for n, rel in enumerate(rels):
            where = f"{self.where}: {self.elf.rel_sections[sec.index].name} relocation #{n} (offset {rel.offset})"
            if rel.offset % 8 or rel.offset >= sec.size:
                raise self.fail(f"{where.split(': ', 1)[1]}: not an instruction boundary of section {sec.name!r}")
            slot = rel.offset // 8
            prog = _containing(progs, slot)
            if prog is None:
                continue  # not inside any function (an overridden weak function): libbpf skips it too
            offs = index_cache.get(prog.name)
            if offs is None:
                offs = index_cache[prog.name] = prog.instructions.offsets()
            try:
                idx = offs.index(slot - prog.offset)
            except ValueError:
                raise LinkError(f"{where}: points into the middle of an ld_imm64 in {prog.name!r}") from None
            ins = prog.instructions[idx]
            kind, target = self._relocate(ins, rel, sec, starts, f"{where}, program {prog.name!r} insn {idx}")
            self.spec.relocations.append(Relocation(sec.name, rel.offset, rel.type_name,
                                                    self.elf.symbol_name(rel.symbol), kind, target))

    def _relocate(self, ins: Instruction, rel: E.Rel, sec: E.Section, starts: dict[int, ProgramSpec],
                  where: str) -> tuple[str, str]:
        """Make ``ins`` refer symbolically to what ``rel`` points at; return (kind, target name)."""
        sym = rel.symbol
        sym_name = self.elf.symbol_name(sym)
        if not (ins.is_call or ins.is_ld_imm64):
            raise LinkError(f"{where}: relocation against {sym_name!r} on {ins}, which is neither a call nor an "
                            "ld_imm64")
        expected = E.R_BPF_64_32 if ins.is_call else E.R_BPF_64_64
        if rel.type != expected:
            raise LinkError(f"{where}: {rel.type_name} cannot apply to {'a call' if ins.is_call else 'an ld_imm64'} "
                            f"(expected {E.R_BPF[expected]})")
        if sym.is_extern:
            kconfig = next((v for v in self.spec.kconfig if v.name == sym.name), None)
            if kconfig is not None:
                if not ins.is_ld_imm64:
                    raise LinkError(f"{where}: kconfig extern {sym.name!r} used by a call")
                m = self.spec.maps[internal_map_name(self.spec.name, ".kconfig")]
                ins.src, ins.imm, ins.reference = abi.BPF_PSEUDO_MAP_VALUE, kconfig.offset << 32, m.name
                return "kconfig", f"{m.name}+{kconfig.offset}"
            ins.reference = sym.name
            return "extern", sym.name
        if ins.is_call:
            if ins.src != abi.BPF_PSEUDO_CALL:
                raise LinkError(f"{where}: relocated call of {sym_name!r} is not a bpf-to-bpf call (src {ins.src})")
            if sym.value % 8:
                raise LinkError(f"{where}: call target {sym_name!r} at byte {sym.value} is not an instruction")
            slot = sym.value // 8 + ins.imm + 1
            fn = self._function_at(sym.shndx, slot, where, sym_name)
            ins.reference, ins.imm = fn.name, -1
            return "call", fn.name
        if not sym.shndx or sym.shndx >= E.SHN_LORESERVE:
            raise LinkError(f"{where}: {sym_name!r} is not defined in any section (undefined or common symbol: "
                            "forgot to initialise a global?)")
        lo = (ins.imm & 0xFFFFFFFF) - ((ins.imm & 0x80000000) << 1)
        target_sec = self.elf.sections[sym.shndx]
        if target_sec.executable:
            if (sym.value + lo) % 8:
                raise LinkError(f"{where}: function address {sym_name!r}+{lo} is not an instruction")
            fn = self._function_at(sym.shndx, (sym.value + lo) // 8, where, sym_name)
            ins.src, ins.imm, ins.reference = abi.BPF_PSEUDO_FUNC, 0, fn.name
            return "func", fn.name
        mp = self.map_at.get((sym.shndx, sym.value)) if sym.shndx in (self.maps_index, self.legacy_index) else None
        if mp is not None:
            ins.src, ins.imm, ins.reference = abi.BPF_PSEUDO_MAP_FD, 0, mp.name
            return "map", mp.name
        if sym.shndx in (self.maps_index, self.legacy_index):
            raise LinkError(f"{where}: no map is defined at offset {sym.value} of section {target_sec.name!r} "
                            f"({sym_name!r})")
        dm = self.data_map.get(sym.shndx)
        if dm is None:
            raise LinkError(f"{where}: {sym_name!r} lives in section {target_sec.name!r}, which is neither a map nor a "
                            "global data section")
        off = (sym.value + lo) & 0xFFFFFFFF
        ins.src, ins.imm, ins.reference = abi.BPF_PSEUDO_MAP_VALUE, off << 32, dm.name
        return "data", f"{dm.name}+{off}"

    def _function_at(self, shndx: int, slot: int, where: str, sym_name: str) -> ProgramSpec:
        fn = self.functions.get((shndx, slot))
        if fn is None:
            sections = self.elf.sections
            sec = repr(sections[shndx].name) if 0 < shndx < len(sections) else f"#{shndx} (not a code section)"
            raise LinkError(f"{where}: {sym_name!r} resolves to instruction {slot} of section {sec}, where no "
                            "function starts")
        if not fn.subprogram:
            raise LinkError(f"{where}: {fn.name!r} is a program (section {fn.section!r}); only .text functions "
                            "can be called or referenced")
        return fn

    def _local_calls(self, prog: ProgramSpec) -> None:
        """Calls without a relocation (to a static function of the same section): name their target."""
        slot = prog.offset
        for i, ins in enumerate(prog.instructions):
            if ins.is_pseudo_call and ins.reference is None:
                where = f"{self.where}: section {prog.section!r}, program {prog.name!r} insn {i}"
                fn = self._function_at(prog.section_index, slot + ins.imm + 1, where, f"call +{ins.imm}")
                ins.reference, ins.imm = fn.name, -1
            elif ins.is_load_func and ins.reference is None:
                raise LinkError(f"{self.where}: program {prog.name!r} insn {i}: function address without a "
                                "relocation")
            slot += ins.size

    def _values_relocations(self, sec: E.Section, rels: list[E.Rel]) -> None:
        """``.values`` of prog arrays and maps of maps (libbpf's collect_map_relos)."""
        from ..btf import Struct

        btf = self.spec.btf
        assert btf is not None
        defs = [m for m in self.spec.maps.values() if m.section == ".maps"]
        sizes = {v.name: v.size for v in self.elf.symbols if v.shndx == sec.index}
        for n, rel in enumerate(rels):
            sym_name = self.elf.symbol_name(rel.symbol)
            where = f"{self.where}: .rel.maps relocation #{n} (offset {rel.offset}, {sym_name!r})"
            m = next((d for d in defs if d.offset <= rel.offset and rel.offset + 8 <= d.offset + sizes.get(d.name, 0)),
                     None)
            if m is None:
                raise LinkError(f"{where}: not inside any map definition")
            if m.type in MAP_IN_MAP_TYPES:
                if rel.symbol.shndx != sec.index or sym_name not in self.spec.maps:
                    raise LinkError(f"{where}: {sym_name!r} is not a BTF-defined map")
                if m.type == abi.BPF_MAP_TYPE_HASH_OF_MAPS and m.key_size != 4:
                    raise LinkError(f"{where}: hash of maps {m.name!r} needs 4-byte keys to be initialised")
            elif m.type == abi.BPF_MAP_TYPE_PROG_ARRAY:
                prog = self.spec.programs.get(sym_name)
                if prog is None or prog.section_index != rel.symbol.shndx or prog.offset * 8 != rel.symbol.value:
                    raise LinkError(f"{where}: {sym_name!r} is not an entry-point program")
            else:
                raise LinkError(f"{where}: map {m.name!r} ({m.type_name}) cannot have initial values")
            var = btf.find_one(m.name, abi.BTF_KIND_VAR)
            d = btf.resolve(var.type_id)
            if not isinstance(d, Struct) or not d.members or d.members[-1].name != "values":
                raise LinkError(f"{where}: map {m.name!r} has no 'values' attribute")
            moff = rel.offset - m.offset - d.members[-1].byte_offset
            if moff < 0 or moff % 8:
                raise LinkError(f"{where}: not a slot of {m.name!r}.values")
            m.values[moff // 8] = sym_name
            self.spec.relocations.append(Relocation(".maps", rel.offset, rel.type_name, sym_name, "values",
                                                    f"{m.name}[{moff // 8}]"))

    def _struct_ops_relocations(self, sec: E.Section, rels: list[E.Rel]) -> None:
        """The programs in a struct_ops variable's function pointers (libbpf's collect_st_ops_relos):
        ``values`` maps the member's byte offset in the struct to the program."""
        maps = [m for m in self.spec.maps.values() if m.section == sec.name]
        for n, rel in enumerate(rels):
            sym_name = self.elf.symbol_name(rel.symbol)
            where = f"{self.where}: {sec.name} relocation #{n} (offset {rel.offset}, {sym_name!r})"
            m = next((m for m in maps if m.offset <= rel.offset and rel.offset + 8 <= m.offset + m.value_size), None)
            if m is None:
                raise LinkError(f"{where}: not inside any struct_ops variable")
            prog = self.spec.programs.get(sym_name)
            if prog is None or prog.type != abi.BPF_PROG_TYPE_STRUCT_OPS or prog.section_index != rel.symbol.shndx \
                    or prog.offset * 8 != rel.symbol.value:
                raise LinkError(f"{where}: {sym_name!r} is not a struct_ops program (SEC(\"struct_ops/...\"))")
            m.values[rel.offset - m.offset] = sym_name
            self.spec.relocations.append(Relocation(sec.name, rel.offset, rel.type_name, sym_name, "struct_ops",
                                                    f"{m.name}+{rel.offset - m.offset}"))

    def _extern_section(self, name: str) -> str:
        """The DATASEC (``.kconfig``, ``.ksyms``) an extern's BTF VAR/FUNC sits in, or ``""`` without BTF."""
        btf = self.spec.btf
        if btf is None:
            return ""
        for ds in btf.types(abi.BTF_KIND_DATASEC):
            for v in ds.vars:
                if btf[v.type_id].name == name:
                    return ds.name
        return ""

    # ---- .BTF.ext ----------------------------------------------------------------------------------------

    def _attach_btf_ext(self) -> None:
        """Hang func_info, line_info and CO-RE records on the instructions they describe."""
        ext = self.spec.btf_ext
        if ext is None:
            return
        by_name: dict[str, list[ProgramSpec]] = {}
        for prog in (*self.spec.programs.values(), *self.spec.functions.values()):
            sec_name = self.elf.sections[prog.section_index].name
            by_name.setdefault(sec_name, []).append(prog)
        slots: dict[str, dict[int, Any]] = {}
        for sec_name, progs in by_name.items():
            table: dict[int, Any] = {}
            for prog in progs:
                for off, ins in zip(prog.instructions.offsets(), prog.instructions):
                    table[prog.offset + off] = ins
            slots[sec_name] = table
        for sec_name, recs in ext.func_info.items():
            for r in recs:
                self._ext_target(slots, sec_name, r.insn_off, "func_info").func = r.type_id
        for sec_name, recs in ext.line_info.items():
            for r in recs:
                ins = self._ext_target(slots, sec_name, r.insn_off, "line_info")
                if ins.line is not None:
                    raise BTFError(f"{self.where}: .BTF.ext line_info for section {sec_name!r}: two records for the "
                                   f"instruction at byte {r.insn_off}")
                ins.line = Line(r.file, r.line, r.line_num, r.col, r.file_off, r.line_off)
        for sec_name, recs in ext.core_relos.items():
            for r in recs:
                self._ext_target(slots, sec_name, r.insn_off, "CO-RE relocation").core = r

    def _ext_target(self, slots: dict[str, dict[int, Any]], sec_name: str, insn_off: int, what: str) -> Any:
        table = slots.get(sec_name)
        ins = table.get(insn_off // 8) if table is not None and insn_off % 8 == 0 else None
        if ins is None:
            raise BTFError(f"{self.where}: .BTF.ext {what} for section {sec_name!r} at byte {insn_off}: no "
                           "instruction of a function starts there")
        return ins


def _containing(progs: list[ProgramSpec], slot: int) -> ProgramSpec | None:
    for p in progs:
        if p.offset <= slot < p.offset + p.instructions.slots:
            return p
    return None


def _ringbuf_size(size: int) -> int:
    """libbpf's adjust_ringbuf_sz: round up to a power-of-two multiple of the page size."""
    page = os.sysconf("SC_PAGE_SIZE")
    if not size or (size % page == 0 and (size // page) & (size // page - 1) == 0):
        return size
    mul = 1
    while mul * page <= size:
        mul <<= 1
    return mul * page

