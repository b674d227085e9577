"""BTF types as small classes, one per kind, each knowing its own wire layout.

Every type has ``kind`` (a ``BTF_KIND_*`` value from :mod:`pybpf.sys.abi`), ``name`` (``""`` when anonymous),
``id`` (0 until it belongs to a :class:`~pybpf.btf.BTF`) and ``btf`` (its owner, or ``None``).  References to
other types are ids (``type_id``, ``members[i].type_id``...); ``t.type`` resolves ``type_id`` through the owner.
Builders may pass a :class:`Type` wherever an id is expected: its ``id`` is taken.

The layout of each kind (the words after the 12-byte ``struct btf_type`` header) lives in ``_decode`` and
``_encode`` of its class, so reading and writing can never disagree.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

from ..errors import BTFError
from ..sys import abi

if TYPE_CHECKING:
    from .btf import BTF

__all__ = [
    "Type", "Void", "Int", "Ptr", "Array", "Member", "Struct", "Union", "EnumValue", "Enum", "Enum64", "Fwd",
    "Typedef", "Volatile", "Const", "Restrict", "Func", "Param", "FuncProto", "Var", "VarSecinfo", "Datasec",
    "Float", "DeclTag", "TypeTag", "KIND_NAMES", "TYPE_CLASSES",
]

GetStr = Callable[[int], str]
AddStr = Callable[[str, int], int]

KIND_NAMES = {
    abi.BTF_KIND_UNKN: "UNKN", abi.BTF_KIND_INT: "INT", abi.BTF_KIND_PTR: "PTR", abi.BTF_KIND_ARRAY: "ARRAY",
    abi.BTF_KIND_STRUCT: "STRUCT", abi.BTF_KIND_UNION: "UNION", abi.BTF_KIND_ENUM: "ENUM",
    abi.BTF_KIND_FWD: "FWD", abi.BTF_KIND_TYPEDEF: "TYPEDEF", abi.BTF_KIND_VOLATILE: "VOLATILE",
    abi.BTF_KIND_CONST: "CONST", abi.BTF_KIND_RESTRICT: "RESTRICT", abi.BTF_KIND_FUNC: "FUNC",
    abi.BTF_KIND_FUNC_PROTO: "FUNC_PROTO", abi.BTF_KIND_VAR: "VAR", abi.BTF_KIND_DATASEC: "DATASEC",
    abi.BTF_KIND_FLOAT: "FLOAT", abi.BTF_KIND_DECL_TAG: "DECL_TAG", abi.BTF_KIND_TYPE_TAG: "TYPE_TAG",
    abi.BTF_KIND_ENUM64: "ENUM64",
}

_U32 = 0xFFFFFFFF


def _id(ref: int | Type) -> int:
    return ref.id if isinstance(ref, Type) else int(ref)


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _check_u32(what: str, v: int) -> int:
    if not 0 <= v <= _U32:
        raise BTFError(f"{what} {v} does not fit in 32 bits")
    return v


class Type:
    """Base of all BTF types: ``kind``, ``name``, ``id`` and the owning ``btf``."""

    __slots__ = ("id", "name", "btf", "name_off")
    kind: ClassVar[int] = abi.BTF_KIND_UNKN
    #: words after the 12-byte header, fixed part and per vlen element (mirrors the wire format)
    _fixed: ClassVar[int] = 0
    _per_elem: ClassVar[int] = 0

    def __init__(self, name: str = ""):
        self.name = name
        self.id = 0
        self.btf: BTF | None = None
        self.name_off = -1  # offset the name was read from (kept for byte-exact rewrites), -1 if none

    @property
    def kind_name(self) -> str:
        """The kind as in the kernel's enum, without prefix (``"STRUCT"``)."""
        return KIND_NAMES[self.kind]

    def refs(self) -> list[int]:
        """Ids of the types this type refers to (for validation and ordering)."""
        return []


    def _head(self) -> tuple[int, int, int]:
        """(vlen, kflag, size_or_type) of the header word triple."""
        raise NotImplementedError  # pragma: no cover - every concrete kind overrides it

    def _tail(self, add: AddStr) -> list[int]:
        """Words after the header."""
        return []

    def _encode(self, add: AddStr) -> list[int]:
        """The whole record as 32-bit words, names interned through ``add(name, hint_offset)``."""
        vlen, kflag, st = self._head()
        if vlen > 0xFFFFFF:
            raise BTFError(f"[{self.id}] {self.kind_name} {self.name!r}: vlen {vlen} is too large")
        info = (kflag << 31) | (self.kind << 24) | vlen
        return [add(self.name, self.name_off), info, _check_u32("size/type", st), *self._tail(add)]

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        """Build an instance from header fields and the words ``w[i:]`` after the header."""
        raise NotImplementedError  # pragma: no cover - every concrete kind overrides it

    @property
    def type(self) -> Type:
        """The type ``type_id`` refers to (for kinds that have one)."""
        if self.btf is None:
            raise BTFError(f"{self!r} does not belong to a BTF: cannot resolve its type")
        return self.btf[self.type_id]  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = " ".join(f"{k}=[{len(v)}]" if isinstance(v, list) else f"{k}={v!r}"
                          for k, v in ((k, getattr(self, k)) for k in self._repr_fields()))
        return f"<{self.kind_name} [{self.id}] {self.name!r}{' ' + fields if fields else ''}>"

    def _repr_fields(self) -> Iterator[str]:
        for cls in type(self).__mro__:
            for k in getattr(cls, "__slots__", ()):
                if k not in ("id", "name", "btf", "name_off") and not k.startswith("_"):
                    yield k

    def _same(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in ("name", *self._repr_fields()))


class Void(Type):
    """Type id 0: ``void``."""

    __slots__ = ()

    def _head(self) -> tuple[int, int, int]:
        raise BTFError("void (type id 0) cannot be encoded")


class Int(Type):
    """An integer: ``size`` bytes, ``encoding`` (``BTF_INT_SIGNED``/``CHAR``/``BOOL`` bits), ``bits``, ``offset``."""

    __slots__ = ("size", "encoding", "offset", "bits")
    kind = abi.BTF_KIND_INT
    _fixed = 1

    def __init__(self, name: str, size: int, encoding: int = 0, bits: int | None = None, offset: int = 0):
        super().__init__(name)
        self.size, self.encoding, self.offset = size, encoding, offset
        self.bits = size * 8 if bits is None else bits

    @property
    def signed(self) -> bool:
        """Whether the BTF_INT_SIGNED encoding bit is set."""
        return bool(self.encoding & abi.BTF_INT_SIGNED)

    def _head(self) -> tuple[int, int, int]:
        return 0, 0, self.size

    def _tail(self, add: AddStr) -> list[int]:
        return [((self.encoding & 0xF) << 24) | ((self.offset & 0xFF) << 16) | (self.bits & 0xFF)]

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        v = w[i]
        return cls(name, st, (v >> 24) & 0xF, v & 0xFF, (v >> 16) & 0xFF)


class _RefType(Type):
    """A kind whose only payload is ``type_id`` in the header (PTR, TYPEDEF, modifiers, TYPE_TAG)."""

    __slots__ = ("type_id",)

    def __init__(self, type: int | Type, name: str = ""):  # noqa: A002 - mirrors the C field name
        super().__init__(name)
        self.type_id = _id(type)

    def refs(self) -> list[int]:
        return [self.type_id]

    def _head(self) -> tuple[int, int, int]:
        return 0, 0, self.type_id

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(st, name)


class Ptr(_RefType):
    """A pointer to ``type_id``."""

    __slots__ = ()
    kind = abi.BTF_KIND_PTR


class Typedef(_RefType):
    """``typedef <type_id> name``."""

    __slots__ = ()
    kind = abi.BTF_KIND_TYPEDEF

    def __init__(self, name: str, type: int | Type):  # noqa: A002
        super().__init__(type, name)

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st)


class Volatile(_RefType):
    """``volatile <type_id>``."""

    __slots__ = ()
    kind = abi.BTF_KIND_VOLATILE


class Const(_RefType):
    """``const <type_id>``."""

    __slots__ = ()
    kind = abi.BTF_KIND_CONST


class Restrict(_RefType):
    """``restrict <type_id>``."""

    __slots__ = ()
    kind = abi.BTF_KIND_RESTRICT


class TypeTag(_RefType):
    """``__attribute__((btf_type_tag(name)))`` on ``type_id``; ``kflag`` marks a plain attribute."""

    __slots__ = ("kflag",)
    kind = abi.BTF_KIND_TYPE_TAG

    def __init__(self, name: str, type: int | Type, kflag: int = 0):  # noqa: A002
        super().__init__(type, name)
        self.kflag = kflag

    def _head(self) -> tuple[int, int, int]:
        return 0, self.kflag, self.type_id

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st, info >> 31)


class Array(Type):
    """``type_id[nelems]`` indexed by ``index_type_id``."""

    __slots__ = ("type_id", "index_type_id", "nelems")
    kind = abi.BTF_KIND_ARRAY
    _fixed = 3

    def __init__(self, type: int | Type, index_type: int | Type, nelems: int):  # noqa: A002
        super().__init__("")
        self.type_id, self.index_type_id, self.nelems = _id(type), _id(index_type), nelems

    def refs(self) -> list[int]:
        return [self.type_id, self.index_type_id]

    def _head(self) -> tuple[int, int, int]:
        return 0, 0, 0

    def _tail(self, add: AddStr) -> list[int]:
        return [self.type_id, self.index_type_id, _check_u32("array nelems", self.nelems)]

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        t = cls(w[i], w[i + 1], w[i + 2])
        t.name = name
        return t


class Member:
    """One struct/union member: ``name``, ``type_id``, ``bit_offset`` and ``bitfield_size`` (0 if none)."""

    __slots__ = ("name", "type_id", "bit_offset", "bitfield_size", "name_off")

    def __init__(self, name: str, type: int | Type, bit_offset: int = 0, bitfield_size: int = 0):  # noqa: A002
        self.name, self.type_id, self.bit_offset, self.bitfield_size = name, _id(type), bit_offset, bitfield_size
        self.name_off = -1

    @property
    def byte_offset(self) -> int:
        """``bit_offset // 8``."""
        return self.bit_offset // 8

    def __repr__(self) -> str:
        bf = f":{self.bitfield_size}" if self.bitfield_size else ""
        return f"Member({self.name!r}, type_id={self.type_id}, bit_offset={self.bit_offset}{bf})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Member) and (self.name, self.type_id, self.bit_offset, self.bitfield_size) == (
            other.name, other.type_id, other.bit_offset, other.bitfield_size)

    __hash__ = None  # type: ignore[assignment]


class _Composite(Type):
    """STRUCT and UNION: ``size`` bytes and ``members``; ``kflag`` set means offsets carry bitfield sizes."""

    __slots__ = ("size", "members", "kflag")
    _per_elem = 3

    def __init__(self, name: str, size: int, members: list[Member] | None = None, kflag: int | None = None):
        super().__init__(name)
        self.size = size
        self.members = list(members or ())
        self.kflag = int(any(m.bitfield_size for m in self.members)) if kflag is None else kflag

    def member(self, name: str) -> Member:
        """The member called ``name`` (direct members only); BTFError if there is none."""
        for m in self.members:
            if m.name == name:
                return m
        raise BTFError(f"{self.kind_name.lower()} {self.name or '<anon>'} has no member {name!r}")

    def refs(self) -> list[int]:
        return [m.type_id for m in self.members]

    def _head(self) -> tuple[int, int, int]:
        return len(self.members), self.kflag, self.size

    def _tail(self, add: AddStr) -> list[int]:
        out: list[int] = []
        for m in self.members:
            if self.kflag:
                if m.bit_offset >= 1 << 24 or m.bitfield_size > 255:
                    raise BTFError(f"[{self.id}] member {m.name!r}: bit offset/size too large for kflag encoding")
                off = (m.bitfield_size << 24) | m.bit_offset
            elif m.bitfield_size:
                raise BTFError(f"[{self.id}] member {m.name!r} is a bitfield but the kind flag is not set")
            else:
                off = m.bit_offset
            out += (add(m.name, m.name_off), m.type_id, _check_u32("member offset", off))
        return out

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        kflag = info >> 31
        members = []
        for j in range(i, i + 3 * (info & 0xFFFFFF), 3):
            noff, off = w[j], w[j + 2]
            m = Member(get(noff), w[j + 1], off & 0xFFFFFF if kflag else off, off >> 24 if kflag else 0)
            m.name_off = noff
            members.append(m)
        return cls(name, st, members, kflag)


class Struct(_Composite):
    """``struct name { members }`` of ``size`` bytes."""

    __slots__ = ()
    kind = abi.BTF_KIND_STRUCT


class Union(_Composite):
    """``union name { members }`` of ``size`` bytes."""

    __slots__ = ()
    kind = abi.BTF_KIND_UNION


class EnumValue:
    """One enumerator: ``name`` and ``value`` (signed when the enum is signed)."""

    __slots__ = ("name", "value", "name_off")

    def __init__(self, name: str, value: int):
        self.name, self.value, self.name_off = name, value, -1

    def __repr__(self) -> str:
        return f"EnumValue({self.name!r}, {self.value})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnumValue) and (self.name, self.value) == (other.name, other.value)

    __hash__ = None  # type: ignore[assignment]


class _AnyEnum(Type):
    """ENUM and ENUM64: ``size`` bytes, ``values`` and ``signed`` (the kind flag)."""

    __slots__ = ("size", "values", "signed")
    _bits: ClassVar[int] = 32

    def __init__(self, name: str, size: int = 4, values: list[EnumValue] | None = None, signed: bool | None = None):
        super().__init__(name)
        self.size = size
        self.values = list(values or ())
        self.signed = any(v.value < 0 for v in self.values) if signed is None else bool(signed)

    def _head(self) -> tuple[int, int, int]:
        return len(self.values), int(self.signed), self.size

    def _raw(self, v: EnumValue) -> int:
        lo, hi = (-(1 << (self._bits - 1)), (1 << self._bits) - 1)
        if not lo <= v.value <= hi:
            raise BTFError(f"[{self.id}] enumerator {v.name!r} = {v.value} does not fit in {self._bits} bits")
        return v.value & ((1 << self._bits) - 1)


class Enum(_AnyEnum):
    """A 32-bit ``enum``."""

    __slots__ = ()
    kind = abi.BTF_KIND_ENUM
    _per_elem = 2

    def _tail(self, add: AddStr) -> list[int]:
        out: list[int] = []
        for v in self.values:
            out += (add(v.name, v.name_off), self._raw(v))
        return out

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        signed = info >> 31
        values = []
        for j in range(i, i + 2 * (info & 0xFFFFFF), 2):
            v = EnumValue(get(w[j]), _s32(w[j + 1]) if signed else w[j + 1])
            v.name_off = w[j]
            values.append(v)
        return cls(name, st, values, bool(signed))


class Enum64(_AnyEnum):
    """An ``enum`` with 64-bit values (ENUM64)."""

    __slots__ = ()
    kind = abi.BTF_KIND_ENUM64
    _per_elem = 3
    _bits = 64

    def __init__(self, name: str, size: int = 8, values: list[EnumValue] | None = None, signed: bool | None = None):
        super().__init__(name, size, values, signed)

    def _tail(self, add: AddStr) -> list[int]:
        out: list[int] = []
        for v in self.values:
            raw = self._raw(v)
            out += (add(v.name, v.name_off), raw & _U32, raw >> 32)
        return out

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        signed = info >> 31
        values = []
        for j in range(i, i + 3 * (info & 0xFFFFFF), 3):
            raw = w[j + 1] | (w[j + 2] << 32)
            v = EnumValue(get(w[j]), raw - (1 << 64) if signed and raw >> 63 else raw)
            v.name_off = w[j]
            values.append(v)
        return cls(name, st, values, bool(signed))


class Fwd(Type):
    """A forward declaration: ``struct name;`` or, if ``is_union``, ``union name;``."""

    __slots__ = ("is_union",)
    kind = abi.BTF_KIND_FWD

    def __init__(self, name: str, is_union: bool = False):
        super().__init__(name)
        self.is_union = bool(is_union)

    def _head(self) -> tuple[int, int, int]:
        return 0, int(self.is_union), 0

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, bool(info >> 31))


class Func(_RefType):
    """A function ``name`` of prototype ``type_id`` with ``linkage`` (``BTF_FUNC_STATIC``/``GLOBAL``/``EXTERN``)."""

    __slots__ = ("linkage",)
    kind = abi.BTF_KIND_FUNC

    def __init__(self, name: str, type: int | Type, linkage: int = abi.BTF_FUNC_STATIC):  # noqa: A002
        super().__init__(type, name)
        self.linkage = linkage

    def _head(self) -> tuple[int, int, int]:
        return self.linkage, 0, self.type_id

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st, info & 0xFFFFFF)


class Param:
    """One function parameter: ``name`` (may be empty) and ``type_id`` (0 for a trailing ``...``)."""

    __slots__ = ("name", "type_id", "name_off")

    def __init__(self, name: str, type: int | Type):  # noqa: A002
        self.name, self.type_id, self.name_off = name, _id(type), -1

    def __repr__(self) -> str:
        return f"Param({self.name!r}, type_id={self.type_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Param) and (self.name, self.type_id) == (other.name, other.type_id)

    __hash__ = None  # type: ignore[assignment]


class FuncProto(Type):
    """A function prototype: return type ``type_id`` (0 = void) and ``params``."""

    __slots__ = ("type_id", "params")
    kind = abi.BTF_KIND_FUNC_PROTO
    _per_elem = 2

    def __init__(self, type: int | Type, params: list[Param] | None = None):  # noqa: A002
        super().__init__("")
        self.type_id = _id(type)
        self.params = list(params or ())

    def refs(self) -> list[int]:
        return [self.type_id, *(p.type_id for p in self.params)]

    def _head(self) -> tuple[int, int, int]:
        return len(self.params), 0, self.type_id

    def _tail(self, add: AddStr) -> list[int]:
        out: list[int] = []
        for p in self.params:
            out += (add(p.name, p.name_off), p.type_id)
        return out

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        params = []
        for j in range(i, i + 2 * (info & 0xFFFFFF), 2):
            p = Param(get(w[j]), w[j + 1])
            p.name_off = w[j]
            params.append(p)
        t = cls(st, params)
        t.name = name
        return t


class Var(_RefType):
    """A variable ``name`` of type ``type_id`` with ``linkage`` (``BTF_VAR_STATIC``/``GLOBAL_ALLOCATED``/...)."""

    __slots__ = ("linkage",)
    kind = abi.BTF_KIND_VAR
    _fixed = 1

    def __init__(self, name: str, type: int | Type, linkage: int = abi.BTF_VAR_GLOBAL_ALLOCATED):  # noqa: A002
        super().__init__(type, name)
        self.linkage = linkage

    def _tail(self, add: AddStr) -> list[int]:
        return [self.linkage]

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st, w[i])


class VarSecinfo:
    """One variable of a DATASEC: ``type_id`` (a VAR or FUNC), ``offset`` and ``size`` in bytes."""

    __slots__ = ("type_id", "offset", "size")

    def __init__(self, type: int | Type, offset: int, size: int):  # noqa: A002
        self.type_id, self.offset, self.size = _id(type), offset, size

    def __repr__(self) -> str:
        return f"VarSecinfo(type_id={self.type_id}, offset={self.offset}, size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VarSecinfo) and (self.type_id, self.offset, self.size) == (
            other.type_id, other.offset, other.size)

    __hash__ = None  # type: ignore[assignment]


class Datasec(Type):
    """An ELF data section ``name`` of ``size`` bytes holding ``vars``."""

    __slots__ = ("size", "vars")
    kind = abi.BTF_KIND_DATASEC
    _per_elem = 3

    def __init__(self, name: str, size: int = 0, vars: list[VarSecinfo] | None = None):  # noqa: A002
        super().__init__(name)
        self.size = size
        self.vars = list(vars or ())

    def refs(self) -> list[int]:
        return [v.type_id for v in self.vars]

    def _head(self) -> tuple[int, int, int]:
        return len(self.vars), 0, self.size

    def _tail(self, add: AddStr) -> list[int]:
        out: list[int] = []
        for v in self.vars:
            out += (v.type_id, _check_u32("var offset", v.offset), _check_u32("var size", v.size))
        return out

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st, [VarSecinfo(w[j], w[j + 1], w[j + 2]) for j in range(i, i + 3 * (info & 0xFFFFFF), 3)])


class Float(Type):
    """A floating-point type of ``size`` bytes."""

    __slots__ = ("size",)
    kind = abi.BTF_KIND_FLOAT

    def __init__(self, name: str, size: int):
        super().__init__(name)
        self.size = size

    def _head(self) -> tuple[int, int, int]:
        return 0, 0, self.size

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st)


class DeclTag(_RefType):
    """``btf_decl_tag(name)`` on ``type_id``; ``component_idx`` -1 for the type itself, else member/param index."""

    __slots__ = ("component_idx", "kflag")
    kind = abi.BTF_KIND_DECL_TAG
    _fixed = 1

    def __init__(self, name: str, type: int | Type, component_idx: int = -1, kflag: int = 0):  # noqa: A002
        super().__init__(type, name)
        self.component_idx, self.kflag = component_idx, kflag

    def _head(self) -> tuple[int, int, int]:
        return 0, self.kflag, self.type_id

    def _tail(self, add: AddStr) -> list[int]:
        return [self.component_idx & _U32]

    @classmethod
    def _decode(cls, name: str, info: int, st: int, w: Any, i: int, get: GetStr) -> Type:
        return cls(name, st, _s32(w[i]), info >> 31)


#: kind number -> class (index = kind)
TYPE_CLASSES: tuple[type[Type], ...] = (
    Void, Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict, Func, FuncProto, Var,
    Datasec, Float, DeclTag, TypeTag, Enum64,
)
assert all(c.kind == k for k, c in enumerate(TYPE_CLASSES[1:], 1))
