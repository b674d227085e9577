"""BTF types as Python source: a ``typing.NamedTuple`` per struct/union, a :class:`~pybpf.gen.runtime.BTFEnum`
(an ``IntEnum``) per enum, with each field's C declaration and offset in a comment.

The shapes are the ones :mod:`pybpf.maps.btfcodec` decodes into (``char`` arrays as ``str``, other byte arrays
as ``bytes``, other arrays as lists, pointers as ``int``...), and the field names are its
:func:`~pybpf.maps.btfcodec.field_names`, so a codec built with ``records=`` these classes fills them directly.
"""
from __future__ import annotations

import keyword
from typing import TYPE_CHECKING, Iterable

from ..maps.btfcodec import _char_array_kind, _resolve, field_names
from ..sys import abi

if TYPE_CHECKING:
    from ..btf import BTF
    from ..btf.types import Type

_COMPOSITE = (abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION)
_ENUMS = (abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64)
_MODIFIERS = {abi.BTF_KIND_CONST: "const", abi.BTF_KIND_VOLATILE: "volatile", abi.BTF_KIND_RESTRICT: "restrict"}
#: field names a NamedTuple (tuple methods) or an Enum (``name``) cannot use as they are
_TUPLE_RESERVED = frozenset(("count", "index"))
_ENUM_RESERVED = frozenset(("name", "value"))


def class_name(c_name: str) -> str:
    """A CamelCase Python class name for a C name: ``exec_event`` -> ``ExecEvent``."""
    out = "".join(p[:1].upper() + p[1:] for p in c_name.split("_") if p)
    if not out or not out.isidentifier():
        out = "T" + "".join(c if c.isalnum() else "_" for c in out)
    return out + "_" if keyword.iskeyword(out) else out


def record_fields(names: list[str], reserved: frozenset[str] = _TUPLE_RESERVED) -> list[str]:
    """The generated field names for C member (or enumerator) names: :func:`field_names`, then names the
    class cannot hold get a trailing ``_``."""
    return [n + "_" if n in reserved else n for n in field_names(names)]


def c_decl(btf: BTF, type_id: int, name: str = "") -> str:
    """A one-line C declaration of ``name`` with type ``type_id`` (anonymous structs as ``struct {...}``)."""
    suffix = ""
    quals: list[str] = []
    for _ in range(64):
        t = btf[type_id]
        k = t.kind
        if k in _MODIFIERS:
            quals.append(_MODIFIERS[k])
        elif k == abi.BTF_KIND_TYPE_TAG:
            pass
        elif k == abi.BTF_KIND_PTR:
            name = "*" + name
        elif k == abi.BTF_KIND_ARRAY:
            name = (f"({name})" if name.startswith("*") else name)
            suffix = f"[{t.nelems}]" + suffix
        else:
            break
        type_id = t.type_id
    base = _base_name(t)
    return " ".join([*dict.fromkeys(quals), base, name + suffix]).strip()


def _base_name(t: Type) -> str:
    k = t.kind
    if k == abi.BTF_KIND_UNKN:
        return "void"
    if k in _COMPOSITE or k in _ENUMS or k == abi.BTF_KIND_FWD:
        kw = "struct" if k == abi.BTF_KIND_STRUCT else "union" if k == abi.BTF_KIND_UNION else \
            "enum" if k in _ENUMS else "struct"
        return f"{kw} {t.name}" if t.name else f"{kw} {{...}}"
    if k == abi.BTF_KIND_FUNC_PROTO:
        return "<function>"
    return t.name or t.kind_name.lower()


def held_type(btf: BTF, type_id: int) -> tuple[Type, str]:
    """The type a value of ``type_id`` holds past modifiers, typedefs, variables and arrays, and the innermost
    typedef's name on the way ("" if none)."""
    t, typedef = btf[type_id], ""
    for _ in range(64):
        if t.kind in _MODIFIERS or t.kind in (abi.BTF_KIND_TYPEDEF, abi.BTF_KIND_TYPE_TAG, abi.BTF_KIND_VAR,
                                              abi.BTF_KIND_ARRAY):
            if t.kind == abi.BTF_KIND_TYPEDEF:
                typedef = t.name
            t = t.type
        else:
            break
    return t, typedef


def type_key(t: Type, path: str) -> str:
    """How generated modules name a type: ``struct exec_event`` for a named one, else its ``path`` from a named
    type (``struct event.u``, ``struct event.#2`` for an anonymous member)."""
    return _base_name(t) if t.name else path


def member_key(parent: str, member: str, index: int) -> str:
    """The :func:`type_key` path of member ``member`` (index ``index``) of the type keyed ``parent``."""
    return f"{parent}.{member or f'#{index}'}"


class RecordWriter:
    """Collects the struct, union and enum types reachable by value from some roots and writes their classes.

    ``reserved`` are names the rest of the module uses; record classes avoid them.  Class names are the C names
    in CamelCase (anonymous types: their parent's class name plus the member's, or the hint given); a clash
    appends the kind (``FooUnion``), then the type id."""

    def __init__(self, btf: BTF, reserved: Iterable[str] = ()):
        self.btf = btf
        self.names: dict[int, str] = {}     # type id -> class name
        self.keys: dict[int, str] = {}      # type id -> type_key()
        self.order: list[int] = []          # type ids, dependencies first
        self.taken = set(reserved)

    # --- collecting -----------------------------------------------------------------------------------------

    def add(self, type_id: int, hint: str, key: str = "") -> str:
        """Give classes to the types ``type_id`` holds by value; return its annotation.  ``hint`` names an
        anonymous top-level type (e.g. the variable holding it), ``key`` is its :func:`type_key` path."""
        t, typedef = held_type(self.btf, type_id)
        if t.kind in _COMPOSITE + _ENUMS and t.id not in self.names:
            self.names[t.id] = self._name(t, typedef or hint)
            key = self.keys[t.id] = type_key(t, key or hint)
            if t.kind in _COMPOSITE:
                members = t.members  # type: ignore[attr-defined]
                cls = self.names[t.id]
                for i, (m, field) in enumerate(zip(members, record_fields([m.name for m in members]))):
                    self.add(m.type_id, cls + class_name(field), member_key(key, m.name, i))
            self.order.append(t.id)
        return self.annotation(type_id)

    def _name(self, t: Type, hint: str) -> str:
        base = class_name(t.name or hint)
        for cand in (base, base + t.kind_name.capitalize().replace("64", ""), f"{base}{t.id}"):
            if cand not in self.taken:
                self.taken.add(cand)
                return cand
        raise AssertionError("type ids are unique")  # pragma: no cover

    # --- annotations --------------------------------------------------------------------------------------------

    def annotation(self, type_id: int, bitfield: bool = False) -> str:
        """The Python type the codec decodes BTF type ``type_id`` into."""
        btf = self.btf
        t = _resolve(btf, btf[type_id])
        k = t.kind
        if k == abi.BTF_KIND_INT:
            exact = t.bits == t.size * 8 and not t.offset  # type: ignore[attr-defined]
            boolean = t.encoding & abi.BTF_INT_BOOL and t.size == 1  # type: ignore[attr-defined]
            return "bool" if boolean and exact and not bitfield else "int"
        if k in _ENUMS or k in _COMPOSITE:
            return self.names.get(t.id, "int" if k in _ENUMS else "bytes")
        if k == abi.BTF_KIND_PTR:
            return "int"
        if k == abi.BTF_KIND_FLOAT:
            return "float" if t.size in (2, 4, 8) else "bytes"  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_ARRAY:
            text = _char_array_kind(btf, t.type) if t.nelems else None  # type: ignore[attr-defined]
            if text is not None:
                return text
            return f"list[{self.annotation(t.type_id)}]"  # type: ignore[attr-defined]
        return "bytes"

    # --- output -------------------------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        """The source of every collected class, dependencies first, two blank lines apart."""
        out: list[str] = []
        for tid in self.order:
            t = self.btf[tid]
            out += ["", ""]
            out += self._enum(t) if t.kind in _ENUMS else self._record(t)
        return out

    def _doc(self, t: Type) -> str:
        what = f"{_base_name(t)}" if t.name else f"{_base_name(t)} ({self.keys[t.id]})"
        return f'    """{what}: {self.btf.size_of(t)} bytes."""'

    def _record(self, t: Type) -> list[str]:
        members = t.members  # type: ignore[attr-defined]
        out = [f"class {self.names[t.id]}(typing.NamedTuple):", self._doc(t), ""]
        fields = record_fields([m.name for m in members])
        for m, field in zip(members, fields):
            mt = _resolve(self.btf, self.btf[m.type_id])
            bits = m.bitfield_size or (mt.bits if mt.kind == abi.BTF_KIND_INT and  # type: ignore[attr-defined]
                                       (mt.bits != mt.size * 8 or mt.offset) else 0)  # type: ignore[attr-defined]
            where = f"offset {m.bit_offset // 8}"
            if m.bitfield_size or m.bit_offset % 8:
                where += f", bit {m.bit_offset % 8}"
            decl = c_decl(self.btf, m.type_id, m.name) + (f":{m.bitfield_size}" if m.bitfield_size else "")
            out.append(f"    {field}: {self.annotation(m.type_id, bool(bits))}  # {where}: {decl}")
        if not members:
            out.append("    pass")
        return out

    def _enum(self, t: Type) -> list[str]:
        values = t.values  # type: ignore[attr-defined]
        out = [f"class {self.names[t.id]}(_rt.BTFEnum):", self._doc(t)]
        if values:
            out.append("")
        for v, name in zip(values, record_fields([v.name for v in values], _ENUM_RESERVED)):
            out.append(f"    {name} = {v.value}")
        return out
