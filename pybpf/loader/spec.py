"""Pure specs of an eBPF object: what an ELF object asks the kernel for, before anything is created.

:class:`ObjectSpec` (from :func:`pybpf.loader.ObjectFile`) holds :class:`ProgramSpec`, :class:`MapSpec` and
:class:`VariableSpec` records.  Specs are printable, comparable (``==``), copyable (:meth:`ObjectSpec.copy`) and
editable: set a ``.rodata`` constant with :meth:`ObjectSpec.set_global`, change ``maps[n].max_entries``, turn a
program's ``autoload`` off.  They never touch the kernel; :func:`pybpf.load` turns one into a live object.
"""
from __future__ import annotations

import copy as _copy
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import BPFError, LinkError
from ..sys import abi

if TYPE_CHECKING:
    from ..asm import Instructions
    from ..btf import BTF, BTFExt
    from .sections import SectionInfo

#: libbpf's ``pinning`` attribute values
PIN_NONE, PIN_BY_NAME = 0, 1

#: Map types whose BTF key/value ids libbpf never passes to the kernel.
NO_BTF_MAP_TYPES = frozenset(getattr(abi, "BPF_MAP_TYPE_" + n) for n in (
    "PERF_EVENT_ARRAY", "CGROUP_ARRAY", "STACK_TRACE", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP", "DEVMAP_HASH",
    "CPUMAP", "XSKMAP", "SOCKMAP", "SOCKHASH", "QUEUE", "STACK"))
MAP_IN_MAP_TYPES = frozenset((abi.BPF_MAP_TYPE_ARRAY_OF_MAPS, abi.BPF_MAP_TYPE_HASH_OF_MAPS))


def enum_name(enum: str, prefix: str, value: int) -> str:
    """``hash`` for map type 1 (``enum``/``prefix`` name the kernel enum), or the number if unknown."""
    for name in abi._ENUMS[enum]:
        if getattr(abi, name) == value and name.startswith(prefix):
            return name[len(prefix):].lower()
    return str(value)


class Line(NamedTuple):
    """Source position of an instruction (from ``.BTF.ext`` line_info): file, source text, line, column, and
    where the object's BTF strings hold the file name and text (-1 when made up, not read)."""

    file: str
    text: str
    line: int
    col: int
    file_off: int = -1
    text_off: int = -1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class MapSpec:
    """A map the object defines: BTF-defined (``.maps``), legacy (``SEC("maps")``) or internal global data.

    ``key_type``/``value_type`` are BTF type ids in the object's BTF (0 when absent).  ``data`` is the initial
    contents of a global-data map (one value), ``values`` the initial slots of a prog array or map-in-map
    (slot -> program or map name), ``inner`` the inner-map template of a map-in-map."""

    name: str
    type: int
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    numa_node: int = 0
    pinning: int = PIN_NONE
    map_extra: int = 0
    key_type: int = 0
    value_type: int = 0
    inner: MapSpec | None = None
    values: dict[int, str] = field(default_factory=dict)
    data: bytes | None = field(default=None, repr=False)
    section: str = ""
    offset: int = 0  # where its definition starts in ``section`` (relocations point there)

    @property
    def internal(self) -> bool:
        """A global-data map libbpf makes from ``.data``/``.rodata``/``.bss``/``.kconfig`` sections."""
        return self.section.startswith((".data", ".rodata", ".bss", ".kconfig"))

    @property
    def type_name(self) -> str:
        """``hash``, ``array``... (the kernel name without ``BPF_MAP_TYPE_``)."""
        return enum_name("bpf_map_type", "BPF_MAP_TYPE_", self.type)

    def to_dict(self, btf: BTF | None = None) -> dict[str, Any]:
        """A JSON-friendly summary (BTF type ids named through ``btf`` when given)."""
        out: dict[str, Any] = {
            "name": self.name, "type": self.type_name, "key_size": self.key_size, "value_size": self.value_size,
            "max_entries": self.max_entries, "flags": self.flags, "section": self.section}
        for attr in ("numa_node", "pinning", "map_extra"):
            if getattr(self, attr):
                out[attr] = getattr(self, attr)
        for attr in ("key_type", "value_type"):
            tid = getattr(self, attr)
            if tid:
                out[attr] = type_label(btf, tid)
        if self.inner is not None:
            out["inner"] = self.inner.to_dict(btf)
        if self.values:
            out["values"] = {str(k): v for k, v in sorted(self.values.items())}
        return out


@dataclass
class VariableSpec:
    """A global variable in a data section: where it lives in its map's value and its BTF type."""

    name: str
    section: str
    offset: int
    size: int
    type_id: int = 0  # BTF type of the variable (0 without BTF)
    linkage: int = abi.BTF_VAR_GLOBAL_ALLOCATED
    map: str = ""  # name of the internal map holding it

    @property
    def readonly(self) -> bool:
        """Lives in ``.rodata*`` (a ``const volatile``): settable only before load."""
        return self.section.startswith(".rodata")


@dataclass
class ProgramSpec:
    """One program (an entry point) or, with ``subprogram`` set, a ``.text`` function programs call.

    ``instructions`` keep references symbolic: map loads name their map, calls and callbacks name their
    function, externs their symbol; ``instructions[0].symbol`` is the program's own name.  ``type`` and
    ``expected_attach_type`` come from the SEC() name and may be changed before load."""

    name: str
    section: str
    instructions: Instructions = field(repr=False)
    type: int = 0
    expected_attach_type: int = 0
    flags: int = 0  # BPF_PROG_LOAD prog_flags (sleepable, xdp frags)
    attach_to: str = ""
    license: str = ""
    kern_version: int = 0
    autoload: bool = True
    subprogram: bool = False
    info: SectionInfo | None = field(default=None, repr=False, compare=False)
    section_index: int = field(default=0, repr=False)
    offset: int = field(default=0, repr=False)  # first instruction's slot in its ELF section

    @property
    def type_name(self) -> str:
        """``tracepoint``, ``xdp``... (the kernel name without ``BPF_PROG_TYPE_``), ``unspec`` when unknown."""
        return enum_name("bpf_prog_type", "BPF_PROG_TYPE_", self.type)

    @property
    def attach_type_name(self) -> str:
        """The expected attach type's kernel name (``BPF_XDP``), or ``""`` for none."""
        if not self.expected_attach_type:
            return ""
        return enum_name("bpf_attach_type", "", self.expected_attach_type).upper()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        out: dict[str, Any] = {"name": self.name, "section": self.section, "type": self.type_name,
                               "insns": self.instructions.slots, "license": self.license}
        if self.attach_type_name:
            out["expected_attach_type"] = self.attach_type_name
        if self.attach_to:
            out["attach_to"] = self.attach_to
        if not self.autoload:
            out["autoload"] = False
        calls = sorted({i.reference for i in self.instructions if i.reference and (i.is_pseudo_call or i.is_load_func)})
        if calls:
            out["calls"] = calls
        return out


@dataclass
class Relocation:
    """One ELF relocation as the loader understood it (for ``pybpf inspect``)."""

    section: str  # the section it applies to
    offset: int  # byte offset there
    type: str  # R_BPF_*
    symbol: str
    kind: str  # "map", "data", "call", "func", "extern", "values", "ignored"
    target: str = ""  # the map / function / variable it resolved to


@dataclass
class ObjectSpec:
    """Everything an ELF object defines, as pure data (see the module docstring)."""

    name: str
    license: str = ""
    kern_version: int | None = None  # from a ``version`` section; None: the running kernel's at load
    programs: dict[str, ProgramSpec] = field(default_factory=dict)
    functions: dict[str, ProgramSpec] = field(default_factory=dict)  # .text subprograms
    maps: dict[str, MapSpec] = field(default_factory=dict)
    variables: dict[str, VariableSpec] = field(default_factory=dict)
    externs: dict[str, str] = field(default_factory=dict)  # extern symbol -> its section (.kconfig, .ksyms)
    relocations: list[Relocation] = field(default_factory=list, repr=False)
    btf: BTF | None = field(default=None, repr=False, compare=False)
    btf_ext: BTFExt | None = field(default=None, repr=False, compare=False)
    path: str = field(default="", compare=False)
    #: ELF facts libbpf uses to finalise the BTF: section sizes, offsets of global object symbols
    section_sizes: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    symbol_offsets: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    hidden_symbols: set[str] = field(default_factory=set, repr=False, compare=False)  # STV_HIDDEN/INTERNAL globals
    weak_externs: set[str] = field(default_factory=set, repr=False)
    kconfig: list[Any] = field(default_factory=list, repr=False)  # externs.KconfigVar, in .kconfig map order

    # ---- editing ---------------------------------------------------------------------------------------

    def copy(self) -> ObjectSpec:
        """A deep copy to edit independently (the parsed BTF and CO-RE records are shared: never mutated)."""
        memo: dict[int, Any] = {id(self.btf): self.btf, id(self.btf_ext): self.btf_ext}
        for prog in (*self.programs.values(), *self.functions.values()):
            for ins in prog.instructions:
                if ins.core is not None:
                    memo[id(ins.core)] = ins.core
            if prog.info is not None:
                memo[id(prog.info)] = prog.info
        return _copy.deepcopy(self, memo)

    def variable(self, name: str) -> VariableSpec:
        """The global variable ``name``; LinkError listing the known ones when absent."""
        try:
            return self.variables[name]
        except KeyError:
            known = ", ".join(sorted(self.variables)) or "none"
            raise LinkError(f"{self.name}: no global variable {name!r} (globals: {known})") from None

    def set_global(self, name: str, value: float | bytes | str) -> None:
        """Set the initial value of the global ``name`` (a ``const volatile`` in ``.rodata``, or ``.data``/
        ``.bss``): an int/float (sized and signed by its BTF type) or bytes/str (zero-padded to its size)."""
        var = self.variable(name)
        m = self.maps.get(var.map)
        if m is None:
            raise LinkError(f"{self.name}: global {name!r} lives in {var.section}, which has no map")
        raw = encode_value(self.btf, var, value)
        data = bytearray(m.data if m.data is not None else bytes(m.value_size))
        data[var.offset:var.offset + var.size] = raw
        m.data = bytes(data)

    def _program_dict(self, name: str) -> dict[str, Any]:
        out = self.programs[name].to_dict()
        core = self.core_relocations(name)
        if core:
            out["core"] = core
        return out

    def core_relocations(self, program: str) -> list[str]:
        """The CO-RE relocations of a program or function, in words (``byte_off struct task_struct.pid ...``)."""
        prog = self.programs.get(program) or self.functions[program]
        relos = [ins.core for ins in prog.instructions if ins.core is not None]
        if not relos or self.btf is None:
            return []
        from ..btf.core import describe

        return [f"{d['kind']} {d['local']}" for d in (describe(self.btf, r) for r in relos)]

    def get_global(self, name: str) -> bytes:
        """The current initial bytes of the global ``name``."""
        var = self.variable(name)
        m = self.maps[var.map]
        data = m.data if m.data is not None else bytes(m.value_size)
        return data[var.offset:var.offset + var.size]

    # ---- output -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: what ``pybpf inspect --json`` prints."""
        return {
            "name": self.name, "path": self.path, "license": self.license, "kern_version": self.kern_version,
            "btf": self.btf is not None, "btf_ext": self.btf_ext is not None,
            "programs": [self._program_dict(p.name) for p in self.programs.values()],
            "functions": [p.to_dict() for p in self.functions.values()],
            "maps": [m.to_dict(self.btf) for m in self.maps.values()],
            "globals": [{"name": v.name, "section": v.section, "offset": v.offset, "size": v.size,
                         "type": type_label(self.btf, v.type_id) if v.type_id else "",
                         "value": self.get_global(v.name).hex() if v.map else ""}
                        for v in self.variables.values()],
            "externs": dict(self.externs),
            "relocations": [vars(r).copy() for r in self.relocations],
        }

    def __str__(self) -> str:
        from .format import format_spec

        return format_spec(self)


def type_label(btf: BTF | None, type_id: int) -> str:
    """A short C-like name of BTF type ``type_id`` (``struct event``, ``u32``), or ``[id]`` without BTF."""
    if btf is None or not type_id:
        return f"[{type_id}]" if type_id else ""
    try:
        t = btf[type_id]
    except BPFError:  # a bad id in a spec edited by hand: show the number
        return f"[{type_id}]"
    kind = t.kind_name.lower()
    name = t.name or "(anon)"
    if kind in ("struct", "union", "enum", "enum64", "fwd", "datasec"):
        return f"{'enum' if kind == 'enum64' else kind} {name}"
    if kind == "ptr":
        return type_label(btf, t.type_id) + " *"
    if kind == "array":
        return f"{type_label(btf, t.type_id)}[{t.nelems}]"
    if kind in ("const", "volatile", "restrict", "type_tag"):
        return f"{kind} {type_label(btf, t.type_id)}"
    return name


def encode_value(btf: BTF | None, var: VariableSpec, value: float | bytes | str) -> bytes:
    """``value`` as the bytes of global ``var`` (little-endian; signedness and floats from its BTF type)."""
    size = var.size
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) > size:
            raise LinkError(f"global {var.name!r} is {size} bytes; {len(raw)} bytes given")
        return raw.ljust(size, b"\0")
    kind, signed = _scalar_kind(btf, var.type_id)
    if isinstance(value, float) or kind == "float":
        if size not in (4, 8):
            raise LinkError(f"global {var.name!r} ({size} bytes) cannot hold a float")
        return struct.pack("<f" if size == 4 else "<d", value)
    if not isinstance(value, int):
        raise LinkError(f"global {var.name!r}: cannot store a {type(value).__name__}")
    try:
        return value.to_bytes(size, "little", signed=signed or value < 0)
    except OverflowError:
        raise LinkError(f"global {var.name!r} ({size} bytes, {'signed' if signed else 'unsigned'}) cannot hold "
                        f"{value}") from None


def _scalar_kind(btf: BTF | None, type_id: int) -> tuple[str, bool]:
    if btf is None or not type_id:
        return "int", False
    t = btf.resolve(type_id)
    kind = t.kind_name.lower()
    if kind == "int":
        return "int", bool(t.signed)
    if kind in ("enum", "enum64"):
        return "int", bool(getattr(t, "signed", False))
    return kind, False
