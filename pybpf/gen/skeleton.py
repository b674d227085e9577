"""``pybpf gen skeleton`` / ``pybpf gen types``: Python modules generated from an eBPF object (or raw BTF).

A skeleton module embeds the object and declares, for it: a record class per BTF struct/union/enum a map key or
value, a global or a ring/perf buffer record holds (:mod:`pybpf.gen.records`), a ``Progs`` class (one
:class:`~pybpf.Program` per program), a ``Maps`` class (a typed view per map), a class per data section (one typed
:class:`~pybpf.gen.runtime.Var` per global) and the skeleton class itself (:class:`~pybpf.gen.runtime.Skeleton`).
Generation is pure and deterministic: the same object gives the same bytes.

Ring and perf buffers carry no record type in BTF.  It is taken from ``records`` (map -> C type name), else
inferred when that is unambiguous: every ``bpf_ringbuf_output``/``bpf_ringbuf_reserve``/``bpf_perf_event_output``
on the map passes the same constant size, and exactly one named struct of that size is among the object's own
types (kernel types, reached from CO-RE relocations and program contexts, do not count).  Otherwise records
stay ``bytes`` and the module's notes say why.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

from ..errors import BTFError
from ..sys import abi
from .records import RecordWriter, c_decl, class_name
from .runtime import ELEMENT_MAP_TYPES, PERCPU_MAP_TYPES, QUEUE_MAP_TYPES, encode_object, py_names, section_attr

if TYPE_CHECKING:
    from ..btf import BTF
    from ..btf.types import Type
    from ..loader import MapSpec, ObjectSpec

_RECORD_KINDS = (abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64)
#: helper id -> (argument register of the map, of the record size)
_OUTPUT_HELPERS = {abi.BPF_FUNC_ringbuf_output: (1, 3), abi.BPF_FUNC_ringbuf_reserve: (1, 2),
                   abi.BPF_FUNC_perf_event_output: (2, 5), abi.BPF_FUNC_skb_output: (2, 5),
                   abi.BPF_FUNC_xdp_output: (2, 5)}
_BUFFER_MAPS = (abi.BPF_MAP_TYPE_RINGBUF, abi.BPF_MAP_TYPE_PERF_EVENT_ARRAY)
_ARRAY_KEYED = frozenset((abi.BPF_MAP_TYPE_ARRAY, abi.BPF_MAP_TYPE_PERCPU_ARRAY))
_LINE = 118


@dataclass
class RingRecord:
    """The record type of a ring/perf buffer map: its BTF id (0: unknown, bytes) and how it was found."""

    type_id: int
    why: str


@dataclass
class _Module:
    """The pieces of one generated module."""

    header: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_object(path: str) -> tuple[bytes, ObjectSpec]:
    """An object's bytes and its spec."""
    from ..loader import ObjectFile

    with open(path, "rb") as f:
        data = f.read()
    return data, ObjectFile(data, _object_name(path))


def _object_name(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".bpf.o", ".o"):
        if base.endswith(ext):
            return base[:-len(ext)]
    return base


# --- ring/perf buffer records --------------------------------------------------------------------------------


def ring_records(spec: ObjectSpec, explicit: Mapping[str, str] | None = None) -> dict[str, RingRecord]:
    """The record type of every ring/perf buffer map of ``spec``: from ``explicit`` (map -> C type name, as
    ``exec_event`` or ``struct exec_event``), else inferred (see the module docstring), else unknown."""
    explicit = dict(explicit or {})
    buffers = [m.name for m in spec.maps.values() if m.type in _BUFFER_MAPS]
    unknown = sorted(set(explicit) - set(buffers))
    if unknown:
        raise BTFError(f"{spec.name}: --record names {', '.join(unknown)}, which is not a ring or perf buffer map "
                       f"(those are: {', '.join(buffers) or 'none'})")
    out: dict[str, RingRecord] = {}
    sizes = _output_sizes(spec)
    own: list[Type] | None = None
    for name in buffers:
        if name in explicit:
            out[name] = RingRecord(_named_type(spec, explicit[name]).id, "given with --record")
            continue
        if spec.btf is None:
            out[name] = RingRecord(0, "the object has no BTF")
            continue
        found = sizes.get(name, set())
        if len(found) != 1 or None in found:
            what = "no output call with a constant size" if not found or found == {None} else \
                f"output calls of sizes {', '.join(sorted(str(s) for s in found))}"
            out[name] = RingRecord(0, f"record type not inferred ({what}); give --record {name}=TYPE")
            continue
        size = found.pop()
        if own is None:
            own = _own_structs(spec)
        cands = [t for t in own if spec.btf.size_of(t) == size]
        if len(cands) == 1:
            out[name] = RingRecord(cands[0].id, f"inferred: the only struct of the object's own types of the "
                                   f"{size} bytes its output calls pass; --record {name}=TYPE overrides")
        else:
            names = ", ".join(t.name for t in cands) or "none"
            out[name] = RingRecord(0, f"record type not inferred ({size}-byte records; structs of that size: "
                                   f"{names}); give --record {name}=TYPE")
    return out


def _named_type(spec: ObjectSpec, c_name: str) -> Type:
    if spec.btf is None:
        raise BTFError(f"{spec.name}: the object has no BTF, so it has no type {c_name!r}")
    kind, _, name = c_name.strip().rpartition(" ")
    found: list[Type] = [t for t in spec.btf.find(name)
                         if t.kind in _RECORD_KINDS and (not kind or kind == _kind_word(t))]
    if not found:
        raise BTFError(f"{spec.name}: no struct, union or enum {c_name!r} in the object's BTF")
    return found[0]


def _output_sizes(spec: ObjectSpec) -> dict[str, set[int | None]]:
    """Map name -> the record sizes passed to output helpers on it (None: not a constant)."""
    out: dict[str, set[int | None]] = {}
    for prog in (*spec.programs.values(), *spec.functions.values()):
        insns = list(prog.instructions)
        targets = _jump_targets(prog.instructions)
        for i, ins in enumerate(insns):
            if not ins.is_helper_call or ins.imm not in _OUTPUT_HELPERS:
                continue
            map_reg, size_reg = _OUTPUT_HELPERS[ins.imm]
            mp = _reaching(insns, targets, i, map_reg)
            if mp is None or not mp.is_load_map or mp.reference not in spec.maps:
                continue
            size = _reaching(insns, targets, i, size_reg)
            const = size.imm if size is not None and size.code in (0xB7, 0xB4) else None  # mov dst, imm
            out.setdefault(mp.reference, set()).add(const)
    return out


def _jump_targets(insns: Sequence) -> set[int]:  # type: ignore[type-arg]
    """Indexes of the instructions some jump lands on."""
    offsets = insns.offsets()  # type: ignore[attr-defined]
    index = {slot: i for i, slot in enumerate(offsets)}
    symbols = insns.symbol_offsets()  # type: ignore[attr-defined]
    out = set()
    for i, ins in enumerate(insns):
        if ins.is_jump and not ins.is_call and not ins.is_exit:
            slot = symbols.get(ins.reference) if ins.reference else offsets[i] + 1 + ins.off
            if slot in index:
                out.add(index[slot])
    return out


def _reaching(insns: list, targets: set[int], at: int, reg: int):  # type: ignore[no-untyped-def,type-arg]
    """The instruction that last set ``reg`` before ``at`` in the same straight-line block, else None."""
    for j in range(at - 1, -1, -1):
        ins = insns[j]
        if ins.is_jump or ins.is_call or ins.is_exit:
            return None
        cls = ins.code & 7
        if ins.dst == reg and cls in (0, 1, 4, 7):  # ld, ldx, alu, alu64 write dst
            return ins
        if j in targets:
            return None
    return None


def _own_structs(spec: ObjectSpec) -> list[Type]:
    """Named structs of the object's BTF that are not kernel types (reached from CO-RE relocations or from the
    context arguments of programs)."""
    btf = spec.btf
    assert btf is not None
    roots: set[int] = set()
    for prog in (*spec.programs.values(), *spec.functions.values()):
        for ins in prog.instructions:
            if ins.core is not None:
                roots.add(ins.core.type_id)
    for name in spec.programs:
        for f in btf.find(name, abi.BTF_KIND_FUNC):
            params = getattr(f.type, "params", [])
            if params:
                roots.add(params[0].type_id)
    kernel: set[int] = set()
    todo = list(roots)
    while todo:
        tid = todo.pop()
        if tid and tid not in kernel:
            kernel.add(tid)
            todo.extend(btf[tid].refs())
    return [t for t in btf.types(abi.BTF_KIND_STRUCT) if t.name and t.id not in kernel]


# --- the skeleton module ---------------------------------------------------------------------------------------


class _SkeletonWriter:
    def __init__(self, data: bytes, spec: ObjectSpec, class_name_: str, records: Mapping[str, str] | None):
        self.data, self.spec, self.cls = data, spec, class_name_
        self.btf: BTF | None = spec.btf
        self.sections = sorted({v.section for v in spec.variables.values() if v.map in spec.maps},
                               key=_section_order)
        reserved = {self.cls, f"{self.cls}Progs", f"{self.cls}Maps", "Program", "Map",
                    *(self._section_class(s) for s in self.sections)}
        self.types = RecordWriter(self.btf, reserved) if self.btf is not None else None
        self.rings = ring_records(spec, records)
        self.mod = _Module()

    def _section_class(self, section: str) -> str:
        return self.cls + class_name(section_attr(section))

    def _annotation(self, type_id: int, hint: str, key: str = "") -> str:
        if self.types is None or not type_id:
            return "bytes"
        return self.types.add(type_id, hint, key)

    # --- pieces ----------------------------------------------------------------------------------------------

    def programs(self) -> list[str]:
        spec = self.spec
        out = [f"class {self.cls}Progs(_rt.Programs):",
               f'    """The programs of {spec.name} (once loaded; a program not loaded raises BPFError)."""', ""]
        for attr, p in zip(py_names(list(spec.programs)), spec.programs.values()):
            out.append(f'    {attr}: Program  # SEC("{p.section}"): {p.type_name}'
                       + ("" if p.autoload else " (not loaded by default)"))
        if not spec.programs:
            out.append("    pass")
        return out

    def maps(self) -> list[str]:
        spec = self.spec
        out = [f"class {self.cls}Maps(_rt.Maps):", f'    """The maps of {spec.name} (once loaded)."""', ""]
        maps = list(spec.maps.values())
        names = [section_attr(m.section) if m.internal else m.name for m in maps]
        for attr, m in zip(py_names(names), maps):
            ann, doc = self._map(m)
            out.append(_comment_line(f"    {attr}: {ann}", doc))
        if not maps:
            out.append("    pass")
        return out

    def _map(self, m: MapSpec) -> tuple[str, str]:
        """(annotation, comment) of one map."""
        kind = m.type_name
        if m.internal:
            return "Map", f"{kind} {m.name}: the {m.section} section (see its variables)"
        if m.type in _BUFFER_MAPS:
            ring = self.rings[m.name]
            wrapper = "RingBufferMap" if m.type == abi.BPF_MAP_TYPE_RINGBUF else "PerfBufferMap"
            ann = self._annotation(ring.type_id, class_name(m.name) + "Record") if ring.type_id else "bytes"
            what = c_decl(self.btf, ring.type_id) if ring.type_id and self.btf is not None else "bytes"
            if not ring.type_id:
                self.mod.notes.append(f"map {m.name!r}: records are bytes: {ring.why}")
            return f"_rt.{wrapper}[{ann}]", f"{kind}: records {what} ({ring.why})"
        if m.type not in ELEMENT_MAP_TYPES | QUEUE_MAP_TYPES:
            return "Map", f"{kind}: untyped (keys/values are fds, ids or kernel objects)"
        hint = class_name(m.name)
        value = self._annotation(m.value_type, hint + "Value")
        vdecl = c_decl(self.btf, m.value_type) if m.value_type and self.btf is not None else f"{m.value_size} bytes"
        if m.type in QUEUE_MAP_TYPES:
            self._note_untyped(m, value_only=True)
            return f"_rt.TypedQueue[{value}]", f"{kind} of {vdecl}, {m.max_entries} entries"
        if m.key_type:
            key = self._annotation(m.key_type, hint + "Key")
            kdecl = c_decl(self.btf, m.key_type) if self.btf is not None else ""
        else:
            key = "int" if m.type in _ARRAY_KEYED and m.key_size == 4 else \
                "typing.Any" if m.type == abi.BPF_MAP_TYPE_LPM_TRIE else "bytes"
            kdecl = f"{m.key_size} bytes"
        self._note_untyped(m)
        if m.type in PERCPU_MAP_TYPES:
            value, vdecl = f"list[{value}]", f"{vdecl} per CPU"
        return f"_rt.TypedMap[{key}, {value}]", f"{kind}: {kdecl} -> {vdecl}, {m.max_entries} entries"

    def _note_untyped(self, m: MapSpec, value_only: bool = False) -> None:
        missing = [side for side, tid in (("key", m.key_type), ("value", m.value_type))
                   if not tid and not (value_only and side == "key")]
        if missing:
            self.mod.notes.append(f"map {m.name!r}: no BTF {' or '.join(missing)} type: {' and '.join(missing)} "
                                  "stay bytes")

    def section(self, section: str) -> list[str]:
        spec = self.spec
        variables = [v for v in spec.variables.values() if v.section == section and v.map in spec.maps]
        ro = section.startswith(".rodata")
        what = "constants: set them before load(), read-only after" if ro else \
            "globals: the initial values before load(), the live values (through the map's mmap) after"
        out = [f"class {self._section_class(section)}(_rt.Section):", f'    """{section} {what}."""', ""]
        shown = sorted((v for v in variables if v.name.isidentifier()), key=lambda v: (v.offset, v.name))
        for v in variables:
            if v not in shown:
                self.mod.notes.append(f"global {v.name!r} ({section}): not a Python name (compiler-generated): "
                                      "not exposed")
        if spec.btf is None and shown:
            self.mod.notes.append(f"{section}: no BTF: globals are bytes")
        for attr, v in zip(py_names([v.name for v in shown]), shown):
            ann = self._annotation(v.type_id, class_name(v.name), f"var {v.name}")
            decl = c_decl(spec.btf, v.type_id, v.name) if spec.btf is not None and v.type_id else v.name
            out.append(f"    #: offset {v.offset}, {v.size} bytes: {decl}")
            out.append(f'    {attr} = _rt.Var[{ann}]("{v.name}")')
        if not shown:
            out.append("    pass")
        return out

    def skeleton(self) -> list[str]:
        spec = self.spec
        out = [f"class {self.cls}(_rt.Skeleton):",
               f'    """{spec.name}: edit ``spec`` and section globals, then ``load()``, ``attach()``, use ``progs``/'
               f'``maps``."""', "",
               f'    OBJECT_NAME = "{spec.name}"']
        if self.types is not None:
            entries = ", ".join(f"{tid}: {name}" for tid, name in sorted(self.types.names.items()))
            out += _wrapped("    RECORDS: typing.ClassVar[dict[int, typing.Callable[..., typing.Any]]] = "
                            f"{{{entries}}}")
        rings = ", ".join(f'"{n}": {r.type_id}' for n, r in self.rings.items() if r.type_id)
        if rings:
            out.append(f"    RING_RECORDS: typing.ClassVar[dict[str, int]] = {{{rings}}}")
        out += ["", "    @property", f"    def progs(self) -> {self.cls}Progs:",
                '        """The loaded programs."""', f"        return self._live({self.cls}Progs)",
                "", "    @property", f"    def maps(self) -> {self.cls}Maps:",
                '        """The maps, typed."""', f"        return self._live({self.cls}Maps)"]
        for s in self.sections:
            cls = self._section_class(s)
            out += ["", "    @property", f"    def {section_attr(s)}(self) -> {cls}:",
                    f'        """The globals of {s}."""', f"        return self._group({cls})"]
        return out

    # --- whole module -------------------------------------------------------------------------------------------

    def source(self, origin: str) -> str:
        progs, maps = self.programs(), self.maps()
        sections = [line for s in self.sections for line in ["", "", *self.section(s)]]
        skel = self.skeleton()
        if self.btf is None:
            self.mod.notes.insert(0, "the object has no BTF: map keys/values, globals and records are bytes")
        spec = self.spec
        doc = [f'"""Typed skeleton of {origin}, generated by ``pybpf gen skeleton``: do not edit.', "",
               f"    with {self.cls}() as skel:",
               *([f"        skel.{section_attr(s)}.<global> = ...   # before load" for s in self.sections[:1]]),
               "        skel.load()", "        skel.attach()", "        ...  # skel.progs, skel.maps, globals live", ""]
        doc += [f"Programs: {', '.join(spec.programs) or 'none'}.", f"Maps: {', '.join(spec.maps) or 'none'}."]
        if self.mod.notes:
            doc += ["", "Not typed:", *(f"* {n}" for n in self.mod.notes)]
        body = self.types.lines() if self.types is not None else []
        for block in (progs, maps):
            body += ["", "", *block]
        body += [*sections, "", "", *skel, "", ""]
        text = "\n".join(body)
        lines = [*_wrap_doc(doc), '"""', "from __future__ import annotations", ""]
        lines += ["import typing", ""] if "typing." in text else []
        lines.append("from pybpf.gen import runtime as _rt")
        lines += ["from pybpf.maps.map import Map"] if ": Map" in text else []
        lines += ["from pybpf.program import Program"] if ": Program" in text else []
        lines += body
        lines.append(f"{self.cls}.OBJECT = (  # {spec.name}: {len(self.data)} bytes, zlib, base64")
        blob = encode_object(self.data)
        lines += [f'    "{blob[i:i + 100]}"' for i in range(0, len(blob), 100)]
        lines.append(")")
        return "\n".join(lines) + "\n"


def _section_order(section: str) -> tuple[int, str]:
    for i, prefix in enumerate((".rodata", ".data", ".bss", ".kconfig")):
        if section == prefix:
            return i, ""
    return 9, section


def _comment_line(code: str, comment: str) -> str:
    line = f"{code}  # {comment}"
    return line if len(line) <= _LINE else _split_comment(code, comment)


def _split_comment(code: str, comment: str) -> str:
    """``code`` preceded by its comment (as ``#:`` lines) when the line would be too long."""
    indent = code[:len(code) - len(code.lstrip())]
    return "\n".join([*_wrapped(f"{indent}#: {comment}", f"{indent}#: "), code])


def _wrapped(line: str, cont: str = "        ") -> list[str]:
    """``line`` broken at spaces to fit the line length (continuations start with ``cont``)."""
    out: list[str] = []
    while len(line) > _LINE and " " in line[len(cont):_LINE]:
        cut = line.rindex(" ", len(cont), _LINE)
        out.append(line[:cut])
        line = cont + line[cut + 1:]
    return [*out, line]


def _wrap_doc(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        indent = "  " if line.startswith("* ") else ""
        out += _wrapped(line, indent)
    return out


def generate_skeleton(path: str, name: str | None = None, records: Mapping[str, str] | None = None) -> str:
    """The skeleton module for the object at ``path`` (class ``name``, by default from the object's name;
    ``records``: ring/perf buffer map -> C type of its records)."""
    data, spec = read_object(path)
    cls = name or class_name(spec.name)
    if not cls.isidentifier():
        raise BTFError(f"class name {cls!r} is not a Python identifier")
    return _SkeletonWriter(data, spec, cls, records).source(os.path.basename(path))


# --- record types alone ------------------------------------------------------------------------------------------


def generate_types(path: str, names: Sequence[str] = (), records: Mapping[str, str] | None = None) -> str:
    """A module of record types from an object or a raw BTF file (e.g. /sys/kernel/btf/vmlinux): the types
    ``names`` (C names, ``task_struct`` or ``struct task_struct``) and what they hold, or by default what a
    skeleton would type (an object) or every named struct, union and enum (raw BTF)."""
    from ..btf import BTF

    with open(path, "rb") as f:
        magic = f.read(4)
    spec = None
    if magic == b"\x7fELF":
        _, spec = read_object(path)
        if spec.btf is None:
            raise BTFError(f"{path}: the object has no BTF: there are no types to generate")
        btf = spec.btf
    else:
        btf = BTF.load(path)
    writer = RecordWriter(btf, ("TYPES",))
    if names:
        for name in names:
            kind, _, bare = name.strip().rpartition(" ")
            found = [t for t in btf.find(bare) if t.kind in _RECORD_KINDS + (abi.BTF_KIND_TYPEDEF,)]
            if kind:
                found = [t for t in found if _kind_word(t) == kind]
            if not found:
                raise BTFError(f"{path}: no struct, union, enum or typedef {name!r}")
            for t in found:
                writer.add(t.id, t.name)
    elif spec is not None:
        sk = _SkeletonWriter(b"", spec, "_", records)
        sk.types = writer
        sk.maps()
        for s in sk.sections:
            sk.section(s)
    else:
        for t in btf:
            if t.kind in _RECORD_KINDS and t.name:
                writer.add(t.id, t.name)
    entries = [f'    "{writer.keys[tid]}": {cls},' for tid, cls in writer.names.items()]
    body = writer.lines()
    lines = [f'"""Record types of {os.path.basename(path)}, generated by ``pybpf gen types``: do not edit.', "",
             "Decode with pybpf's BTF codecs (pybpf.maps.btfcodec, pybpf.gen.runtime):",
             "``btf_codec(btf, type_id, records=records_for(btf, TYPES))``.", '"""',
             "from __future__ import annotations", "", "import typing",
             *(["", "from pybpf.gen import runtime as _rt"] if any("(_rt." in line for line in body) else []),
             *body, "", "",
             "#: C type (``struct name``, or a path from a named type for anonymous ones) -> class",
             "TYPES: dict[str, typing.Callable[..., typing.Any]] = {", *entries, "}"]
    return "\n".join(lines) + "\n"


def _kind_word(t: Type) -> str:
    return {abi.BTF_KIND_UNION: "union", abi.BTF_KIND_ENUM: "enum", abi.BTF_KIND_ENUM64: "enum",
            abi.BTF_KIND_TYPEDEF: "typedef"}.get(t.kind, "struct")
