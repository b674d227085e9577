"""Pure specs of an eBPF object: what an ELF object asks the kernel for, before anything is created.

:class:`ObjectSpec` (from :func:`pybpf.loader.ObjectFile`) holds :class:`ProgramSpec`, :class:`MapSpec` and
:class:`VariableSpec` records.  Specs are printable, comparable (``==``), copyable (:meth:`ObjectSpec.copy`) and
editable: set a ``.rodata`` constant with :meth:`ObjectSpec.set_global`, change ``maps[n].max_entries``, turn a
program's ``autoload`` off.  They never touch the kernel; :func:`pybpf.load` turns one into a live object.
"""
from __future__ import annotations

import copy as _copy
import struct
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
    "CPUMAP", "XSKMAP", "SOCKMAP", "SOCKHASH", "QUEUE", "STACK", "STRUCT_OPS"))
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


class Record:
    """Base of the loader's records (plain classes, not dataclasses: importing ``dataclasses`` and generating
    their methods would cost every ``pybpf.load`` start-up time).  ``==`` compares the attributes named in
    ``_compare`` between records of the same class; ``repr`` shows those in ``_shown``."""

    _compare: tuple[str, ...] = ()
    _shown: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._compare)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._shown)})"


class MapSpec(Record):
    """A map the object defines: BTF-defined (``.maps``), legacy (``SEC("maps")``) or internal global data.

    ``key_type``/``value_type`` are BTF type ids in the object's BTF (0 when absent).  ``data`` is the initial
    contents of a global-data map (one value), ``values`` the initial slots of a prog array or map-in-map
    (slot -> program or map name), ``inner`` the inner-map template of a map-in-map."""

    _compare = ("name", "type", "key_size", "value_size", "max_entries", "flags", "numa_node", "pinning",
                "map_extra", "key_type", "value_type", "inner", "values", "data", "section", "offset")
    _shown = tuple(f for f in _compare if f != "data")

    def __init__(self, name: str, type: int, key_size: int = 0, value_size: int = 0,  # noqa: A002
                 max_entries: int = 0, flags: int = 0, numa_node: int = 0, pinning: int = PIN_NONE,
                 map_extra: int = 0, key_type: int = 0, value_type: int = 0, inner: MapSpec | None = None,
                 values: dict[int, str] | None = None, data: bytes | None = None, section: str = "",
                 offset: int = 0):
        self.name = name
        self.type = type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.numa_node = numa_node
        self.pinning = pinning
        self.map_extra = map_extra
        self.key_type = key_type
        self.value_type = value_type
        self.inner = inner
        self.values: dict[int, str] = {} if values is None else values
        self.data = data
        self.section = section
        self.offset = offset  # where its definition starts in ``section`` (relocations point there)

    def copy(self) -> MapSpec:
        """A copy to edit independently (its values and inner map copied too)."""
        out = _copy.copy(self)
        out.values = dict(self.values)
        out.inner = self.inner.copy() if self.inner is not None else None
        return out

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


class VariableSpec(Record):
    """A global variable in a data section: where it lives in its map's value and its BTF type."""

    _compare = _shown = ("name", "section", "offset", "size", "type_id", "linkage", "map")

    def __init__(self, name: str, section: str, offset: int, size: int, type_id: int = 0,
                 linkage: int = abi.BTF_VAR_GLOBAL_ALLOCATED, map: str = ""):  # noqa: A002
        self.name = name
        self.section = section
        self.offset = offset
        self.size = size
        self.type_id = type_id  # BTF type of the variable (0 without BTF)
        self.linkage = linkage
        self.map = map  # name of the internal map holding it

    @property
    def readonly(self) -> bool:
        """Lives in ``.rodata*`` (a ``const volatile``): settable only before load."""
        return self.section.startswith(".rodata")


class ProgramSpec(Record):
    """One program (an entry point) or, with ``subprogram`` set, a ``.text`` function programs call.

    ``instructions`` keep references symbolic: map loads name their map, calls and callbacks name their
    function, externs their symbol; ``instructions[0].symbol`` is the program's own name.  ``type`` and
    ``expected_attach_type`` come from the SEC() name and may be changed before load."""

    _shown = ("name", "section", "type", "expected_attach_type", "flags", "attach_to", "license", "kern_version",
              "autoload", "subprogram")
    _compare = ("name", "section", "instructions", *_shown[2:], "section_index", "offset")

    def __init__(self, name: str, section: str, instructions: Instructions, type: int = 0,  # noqa: A002
                 expected_attach_type: int = 0, flags: int = 0, attach_to: str = "", license: str = "",
                 kern_version: int = 0, autoload: bool = True, subprogram: bool = False,
                 info: SectionInfo | None = None, section_index: int = 0, offset: int = 0):
        self.name = name
        self.section = section
        self.instructions = instructions
        self.type = type
        self.expected_attach_type = expected_attach_type
        self.flags = flags  # BPF_PROG_LOAD prog_flags (sleepable, xdp frags)
        self.attach_to = attach_to
        self.license = license
        self.kern_version = kern_version
        self.autoload = autoload
        self.subprogram = subprogram
        self.info = info
        self.section_index = section_index
        self.offset = offset  # first instruction's slot in its ELF section

    def copy(self) -> ProgramSpec:
        """A copy to edit independently: its instructions are copied (their CO-RE records are shared)."""
        out = _copy.copy(self)
        out.instructions = type(self.instructions)(ins.replace() for ins in self.instructions)
        return out

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


class Relocation(Record):
    """One ELF relocation as the loader understood it (for ``pybpf inspect``)."""

    _compare = _shown = ("section", "offset", "type", "symbol", "kind", "target")

    def __init__(self, section: str, offset: int, type: str, symbol: str, kind: str,  # noqa: A002
                 target: str = ""):
        self.section = section  # the section it applies to
        self.offset = offset  # byte offset there
        self.type = type  # R_BPF_*
        self.symbol = symbol
        self.kind = kind  # "map", "data", "call", "func", "extern", "values", "ignored"
        self.target = target  # the map / function / variable it resolved to


class ObjectSpec(Record):
    """Everything an ELF object defines, as pure data (see the module docstring)."""

    _shown = ("name", "license", "kern_version", "programs", "functions", "maps", "variables", "externs", "path")
    _compare = (*_shown[:-1], "relocations", "weak_externs", "kconfig")

    def __init__(self, name: str, license: str = "", kern_version: int | None = None,  # noqa: A002
                 programs: dict[str, ProgramSpec] | None = None, functions: dict[str, ProgramSpec] | None = None,
                 maps: dict[str, MapSpec] | None = None, variables: dict[str, VariableSpec] | None = None,
                 externs: dict[str, str] | None = None, relocations: list[Relocation] | None = None,
                 btf: BTF | None = None, btf_ext: BTFExt | None = None, path: str = "",
                 section_sizes: dict[str, int] | None = None, symbol_offsets: dict[str, int] | None = None,
                 hidden_symbols: set[str] | None = None, weak_externs: set[str] | None = None,
                 kconfig: list[Any] | None = None):
        self.name = name
        self.license = license
        self.kern_version = kern_version  # from a ``version`` section; None: the running kernel's at load
        self.programs: dict[str, ProgramSpec] = {} if programs is None else programs
        self.functions: dict[str, ProgramSpec] = {} if functions is None else functions  # .text subprograms
        self.maps: dict[str, MapSpec] = {} if maps is None else maps
        self.variables: dict[str, VariableSpec] = {} if variables is None else variables
        #: extern symbol -> its section (.kconfig, .ksyms)
        self.externs: dict[str, str] = {} if externs is None else externs
        self.relocations: list[Relocation] = [] if relocations is None else relocations
        self.btf = btf
        self.btf_ext = btf_ext
        self.path = path
        #: ELF facts libbpf uses to finalise the BTF: section sizes, offsets of global object symbols, and the
        #: STV_HIDDEN/INTERNAL globals
        self.section_sizes: dict[str, int] = {} if section_sizes is None else section_sizes
        self.symbol_offsets: dict[str, int] = {} if symbol_offsets is None else symbol_offsets
        self.hidden_symbols: set[str] = set() if hidden_symbols is None else hidden_symbols
        self.weak_externs: set[str] = set() if weak_externs is None else weak_externs
        self.kconfig: list[Any] = [] if kconfig is None else kconfig  # externs.KconfigVar, in .kconfig map order

    # ---- editing ---------------------------------------------------------------------------------------

    def copy(self) -> ObjectSpec:
        """A deep copy to edit independently (the parsed BTF, BTF.ext, CO-RE records and section infos are
        shared: never mutated).  Built record by record: ``copy.deepcopy`` took tens of milliseconds."""
        out = _copy.copy(self)
        out.programs = {n: p.copy() for n, p in self.programs.items()}
        out.functions = {n: p.copy() for n, p in self.functions.items()}
        out.maps = {n: m.copy() for n, m in self.maps.items()}
        out.variables = {n: _copy.copy(v) for n, v in self.variables.items()}
        out.externs = dict(self.externs)
        out.relocations = [_copy.copy(r) for r in self.relocations]
        out.section_sizes, out.symbol_offsets = dict(self.section_sizes), dict(self.symbol_offsets)
        out.hidden_symbols, out.weak_externs = set(self.hidden_symbols), set(self.weak_externs)
        out.kconfig = [_copy.copy(v) for v in self.kconfig]
        return out

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
