"""CO-RE (compile once, run everywhere) relocations: pure computation over a local and target BTF.

Behaves like libbpf (``relo_core.c``, candidate search in ``libbpf.c``): candidates are the target types whose
*essential* name (the name without a ``___flavor`` suffix) and kind match the local root type, looked up in
vmlinux first and in module BTFs only if vmlinux has none; each candidate is matched against the local access
spec; all matching candidates must agree, else the relocation is ambiguous (an error).  A relocation with no
match is not an error: its instruction gets *poisoned* (turned into ``call 0xbad2310``, which the verifier only
rejects if it is reachable).

The loader uses one :class:`Resolver` per object (candidate lists are cached and pruned per local type, as in
libbpf) and :func:`patch` per instruction::

    resolver = Resolver(obj_btf, kernel.targets())
    for relo in ext.core_relos[section]:
        result = resolver.resolve(relo)
        patch(insns_by_slot[relo.insn_idx], result)

Errors (malformed access strings, ambiguity, instructions that cannot take the value) raise
:class:`~pybpf.errors.LinkError`.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

from ..errors import BTFError, LinkError
from ..sys import abi
from .btf import BTF, MAX_CHAIN
from .ext import CoreRelo
from .types import KIND_NAMES, Enum, Int, Type, _AnyEnum, _Composite

__all__ = ["CoreResult", "Spec", "Accessor", "Resolver", "resolve", "patch", "describe", "essential_name",
           "fields_compat", "types_compat", "types_match", "RELO_KIND_NAMES", "POISON_IMM", "SPEC_MAX_LEN"]

#: ``imm`` of the helper call a poisoned instruction becomes (libbpf: 0xbad2310, "bad relo")
POISON_IMM = 0xBAD2310
#: most accessors an access string may have (libbpf's BPF_CORE_SPEC_MAX_LEN)
SPEC_MAX_LEN = 64
_LEVEL = 32  # recursion budget of the type compatibility/match checks, as libbpf

#: relocation kind -> libbpf's short name (used in messages and by ``pybpf inspect``)
RELO_KIND_NAMES = {
    abi.BPF_CORE_FIELD_BYTE_OFFSET: "byte_off", abi.BPF_CORE_FIELD_BYTE_SIZE: "byte_sz",
    abi.BPF_CORE_FIELD_EXISTS: "field_exists", abi.BPF_CORE_FIELD_SIGNED: "signed",
    abi.BPF_CORE_FIELD_LSHIFT_U64: "lshift_u64", abi.BPF_CORE_FIELD_RSHIFT_U64: "rshift_u64",
    abi.BPF_CORE_TYPE_ID_LOCAL: "local_type_id", abi.BPF_CORE_TYPE_ID_TARGET: "target_type_id",
    abi.BPF_CORE_TYPE_EXISTS: "type_exists", abi.BPF_CORE_TYPE_MATCHES: "type_matches",
    abi.BPF_CORE_TYPE_SIZE: "type_size", abi.BPF_CORE_ENUMVAL_EXISTS: "enumval_exists",
    abi.BPF_CORE_ENUMVAL_VALUE: "enumval_value",
}
_FIELD_KINDS = frozenset((abi.BPF_CORE_FIELD_BYTE_OFFSET, abi.BPF_CORE_FIELD_BYTE_SIZE, abi.BPF_CORE_FIELD_EXISTS,
                          abi.BPF_CORE_FIELD_SIGNED, abi.BPF_CORE_FIELD_LSHIFT_U64, abi.BPF_CORE_FIELD_RSHIFT_U64))
_TYPE_KINDS = frozenset((abi.BPF_CORE_TYPE_ID_LOCAL, abi.BPF_CORE_TYPE_ID_TARGET, abi.BPF_CORE_TYPE_EXISTS,
                         abi.BPF_CORE_TYPE_MATCHES, abi.BPF_CORE_TYPE_SIZE))
_ENUM_KINDS = frozenset((abi.BPF_CORE_ENUMVAL_EXISTS, abi.BPF_CORE_ENUMVAL_VALUE))
_ENUMS = frozenset((abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64))
_U64 = (1 << 64) - 1


class _Poison(Exception):
    """Internal: the relocated instruction must be poisoned (libbpf's -EUCLEAN)."""


# ---- names and compatibility ------------------------------------------------------------------------------


def essential_name(name: str) -> str:
    """``name`` without its last ``___flavor`` suffix (``task_struct___old`` -> ``task_struct``)."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1:i + 4] == "___" and name[i + 4] != "_":
            return name[:i + 1]
    return name


def _kind_compat(a: Type, b: Type) -> bool:
    return a.kind == b.kind or (a.kind in _ENUMS and b.kind in _ENUMS)


def _skip(btf: BTF, type_id: int) -> Type:
    try:
        return btf.resolve(type_id)
    except BTFError as e:
        raise LinkError(f"CO-RE: {e}") from None


def _size(btf: BTF, t: int | Type) -> int:
    try:
        return btf.size_of(t)
    except BTFError as e:
        raise LinkError(f"CO-RE: {e}") from None


def fields_compat(local: BTF, local_id: int, target: BTF, target_id: int) -> bool:
    """libbpf's ``bpf_core_fields_are_compat``: can a field of type ``local_id`` be relocated to ``target_id``?"""
    for _ in range(MAX_CHAIN):
        lt, tt = _skip(local, local_id), _skip(target, target_id)
        if isinstance(lt, _Composite) and isinstance(tt, _Composite):
            return True
        if not _kind_compat(lt, tt):
            return False
        k = lt.kind
        if k in (abi.BTF_KIND_PTR, abi.BTF_KIND_FLOAT):
            return True
        if k in (abi.BTF_KIND_FWD, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64):
            ln, tn = essential_name(lt.name), essential_name(tt.name)
            return not ln or not tn or ln == tn
        if k == abi.BTF_KIND_INT:
            return lt.offset == 0 and tt.offset == 0  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_ARRAY:
            local_id, target_id = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        return False
    raise LinkError(f"CO-RE: array chain of type [{local_id}] too deep")


def types_compat(local: BTF, local_id: int, target: BTF, target_id: int, level: int = _LEVEL) -> bool:
    """libbpf's ``bpf_core_types_are_compat`` (type-based relocations; names checked by the caller)."""
    if not _kind_compat(local[local_id], target[target_id]):
        return False
    for _ in range(32):
        lt, tt = _skip(local, local_id), _skip(target, target_id)
        if not _kind_compat(lt, tt):
            return False
        k = lt.kind
        if k in (abi.BTF_KIND_UNKN, abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION, abi.BTF_KIND_ENUM, abi.BTF_KIND_FWD,
                 abi.BTF_KIND_ENUM64):
            return True
        if k == abi.BTF_KIND_INT:
            return lt.offset == 0 and tt.offset == 0  # type: ignore[attr-defined]
        if k in (abi.BTF_KIND_PTR, abi.BTF_KIND_ARRAY):
            local_id, target_id = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        if k == abi.BTF_KIND_FUNC_PROTO:
            lp, tp = lt.params, tt.params  # type: ignore[attr-defined]
            if len(lp) != len(tp):
                return False
            for a, b in zip(lp, tp, strict=True):
                if level <= 0:
                    raise LinkError("CO-RE: function prototype nesting too deep")
                if not types_compat(local, _skip(local, a.type_id).id, target, _skip(target, b.type_id).id,
                                    level - 1):
                    return False
            local_id, target_id = _skip(local, lt.type_id).id, _skip(target, tt.type_id).id  # type: ignore
            continue
        return False
    raise LinkError(f"CO-RE: type chain of [{local_id}] too deep")


def _names_match(local_name: str, target_name: str) -> bool:
    if not target_name:
        return not local_name
    return essential_name(local_name) == essential_name(target_name)


def types_match(local: BTF, local_id: int, target: BTF, target_id: int, behind_ptr: bool = False,
                level: int = _LEVEL) -> bool:
    """libbpf's ``bpf_core_types_match`` (TYPE_MATCHES: a stricter, layout-level check)."""
    if level <= 0:
        raise LinkError("CO-RE: type match nesting too deep")
    for _ in range(32):
        lt, tt = _skip(local, local_id), _skip(target, target_id)
        if not _names_match(lt.name, tt.name):
            return False
        lk, tk = lt.kind, tt.kind
        if lk == abi.BTF_KIND_UNKN:
            return lk == tk
        if lk == abi.BTF_KIND_FWD:
            lf = lt.is_union  # type: ignore[attr-defined]
            if lk == tk:
                return lf == tt.is_union  # type: ignore[attr-defined]
            return behind_ptr and ((tk == abi.BTF_KIND_STRUCT and not lf) or (tk == abi.BTF_KIND_UNION and lf))
        if lk in _ENUMS:
            return tk in _ENUMS and _enums_match(lt, tt)  # type: ignore[arg-type]
        if lk in (abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION):
            if behind_ptr:
                if lk == tk:
                    return True
                return tk == abi.BTF_KIND_FWD and (lk == abi.BTF_KIND_UNION) == tt.is_union  # type: ignore
            return lk == tk and _composites_match(local, lt, target, tt, behind_ptr, level)  # type: ignore
        if lk == abi.BTF_KIND_INT:
            return (lk == tk and lt.size == tt.size  # type: ignore[attr-defined]
                    and lt.signed == tt.signed)  # type: ignore[attr-defined]
        if lk == abi.BTF_KIND_PTR:
            if lk != tk:
                return False
            behind_ptr = True
            local_id, target_id = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        if lk == abi.BTF_KIND_ARRAY:
            if lk != tk or lt.nelems != tt.nelems:  # type: ignore[attr-defined]
                return False
            local_id, target_id = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        if lk == abi.BTF_KIND_FUNC_PROTO:
            if lk != tk or len(lt.params) != len(tt.params):  # type: ignore[attr-defined]
                return False
            for a, b in zip(lt.params, tt.params, strict=True):  # type: ignore[attr-defined]
                if not types_match(local, a.type_id, target, b.type_id, behind_ptr, level - 1):
                    return False
            local_id, target_id = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        return False
    raise LinkError(f"CO-RE: type chain of [{local_id}] too deep")


def _enums_match(lt: _AnyEnum, tt: _AnyEnum) -> bool:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    return all(any(_names_match(v.name, w.name) for w in tt.values) for v in lt.values)


def _composites_match(local: BTF, lt: _Composite, target: BTF, tt: _Composite, behind_ptr: bool,
                      level: int) -> bool:
    if len(lt.members) > len(tt.members):
        return False
    for m in lt.members:
        if not any(_names_match(m.name, n.name) and types_match(local, m.type_id, target, n.type_id, behind_ptr,
                                                                level - 1) for n in tt.members):
            return False
    return True


# ---- access specs ----------------------------------------------------------------------------------------


class Accessor:
    """One high-level step of an access spec: a named member (``idx`` in struct ``type_id``) or, with ``name``
    None, an array index ``idx`` whose element type is ``type_id``."""

    __slots__ = ("type_id", "idx", "name")

    def __init__(self, type_id: int, idx: int, name: str | None):
        self.type_id, self.idx, self.name = type_id, idx, name

    def __repr__(self) -> str:
        return f"Accessor({self.type_id}, {self.idx}, {self.name!r})"


class Spec:
    """A relocation's access spec in one BTF: ``root_type_id``, the ``raw`` indexes (``0:1:2``), the
    high-level ``accessors`` and the resulting ``bit_offset``."""

    __slots__ = ("btf", "root_type_id", "kind", "raw", "accessors", "bit_offset")

    def __init__(self, btf: BTF, root_type_id: int, kind: int):
        self.btf, self.root_type_id, self.kind = btf, root_type_id, kind
        self.raw: list[int] = []
        self.accessors: list[Accessor] = []
        self.bit_offset = 0

    def _push_raw(self, idx: int) -> None:
        if len(self.raw) >= SPEC_MAX_LEN:
            raise LinkError(f"CO-RE: access spec deeper than {SPEC_MAX_LEN}")
        self.raw.append(idx)

    def format(self) -> str:
        """libbpf's rendering: ``<byte_off> [5] struct task_struct.pid (0:92 @ offset 1264)``."""
        t = self.btf[self.root_type_id]
        out = f"<{RELO_KIND_NAMES.get(self.kind, 'unknown')}> [{t.id}] {_kind_str(t)} {t.name or '<anon>'}"
        if self.kind in _TYPE_KINDS:
            return out
        if self.kind in _ENUM_KINDS:
            e = self.btf.resolve(self.root_type_id)
            v = e.values[self.raw[0]]  # type: ignore[attr-defined]
            return out + f"::{v.name} = {v.value}"
        for i, a in enumerate(self.accessors):
            if a.name:
                out += f".{a.name}"
            elif i > 0 or a.idx > 0:
                out += f"[{a.idx}]"
        byte, bit = divmod(self.bit_offset, 8)
        return out + f" ({':'.join(map(str, self.raw))} @ offset {byte}{f'.{bit}' if bit else ''})"

    __str__ = format


def _kind_str(t: Type) -> str:
    return "void" if t.kind == abi.BTF_KIND_UNKN else KIND_NAMES[t.kind].lower()


def _flex_array(btf: BTF, prev: Accessor | None, nelems: int) -> bool:
    """libbpf's ``is_flex_arr``: a zero-length array that is the last member of the struct it was reached by."""
    if prev is None or not prev.name or nelems > 0:
        return False
    return prev.idx == len(btf[prev.type_id].members) - 1  # type: ignore[attr-defined]


def parse_spec(btf: BTF, relo: CoreRelo) -> Spec:
    """Parse ``relo.access`` against ``btf`` (libbpf's ``bpf_core_parse_spec``); LinkError if invalid."""
    spec = Spec(btf, relo.type_id, relo.kind)
    s = relo.access
    if not s or s[0] == ":":
        raise LinkError(f"CO-RE: empty or malformed access string {s!r}")
    if relo.kind in _TYPE_KINDS:
        if s != "0":
            raise LinkError(f"CO-RE: type-based relocation with access string {s!r} (expected '0')")
        return spec
    parts = s.split(":")
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise LinkError(f"CO-RE: malformed access string {s!r}")
    raw = [int(p) for p in parts]
    if len(raw) > SPEC_MAX_LEN:
        raise LinkError(f"CO-RE: access string {s!r} deeper than {SPEC_MAX_LEN}")
    spec.raw = raw
    t = _skip(btf, relo.type_id)
    spec.accessors.append(Accessor(t.id, raw[0], None))
    if relo.kind in _ENUM_KINDS:
        if not isinstance(t, _AnyEnum) or len(raw) > 1 or raw[0] >= len(t.values):
            raise LinkError(f"CO-RE: enum access {s!r} does not name an enumerator of [{t.id}] {t.kind_name}")
        spec.accessors[0].name = t.values[raw[0]].name
        return spec
    if relo.kind not in _FIELD_KINDS:
        raise LinkError(f"CO-RE: unknown relocation kind {relo.kind}")
    spec.bit_offset = raw[0] * _size(btf, t) * 8
    cur = t.id
    for i in raw[1:]:
        t = _skip(btf, cur)
        if isinstance(t, _Composite):
            if i >= len(t.members):
                raise LinkError(f"CO-RE: access {s!r}: member #{i} past the end of [{t.id}] {t.name or '<anon>'}")
            m = t.members[i]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.accessors.append(Accessor(t.id, i, m.name))
            cur = m.type_id
        elif t.kind == abi.BTF_KIND_ARRAY:
            elem = _skip(btf, t.type_id)  # type: ignore[attr-defined]
            if not _flex_array(btf, spec.accessors[-1], t.nelems) and i >= t.nelems:  # type: ignore[attr-defined]
                raise LinkError(f"CO-RE: access {s!r}: index {i} past the end of array [{t.id}]")
            spec.accessors.append(Accessor(elem.id, i, None))
            cur = elem.id
            spec.bit_offset += i * _size(btf, elem) * 8
        else:
            raise LinkError(f"CO-RE: access {s!r} of [{relo.type_id}] reaches [{t.id}] of unexpected kind "
                            f"{_kind_str(t)}")
    return spec


def _match_member(local: BTF, lacc: Accessor, target: BTF, target_id: int, spec: Spec) -> tuple[int, int]:
    """Find ``lacc``'s member in ``target_id`` (searching anonymous members); (found?, next target id)."""
    tt = _skip(target, target_id)
    if not isinstance(tt, _Composite):
        return 0, 0
    lm = local[lacc.type_id].members[lacc.idx]  # type: ignore[attr-defined]
    for i, m in enumerate(tt.members):
        spec._push_raw(i)
        spec.bit_offset += m.bit_offset
        if not m.name:
            found, nxt = _match_member(local, lacc, target, m.type_id, spec)
            if found:
                return found, nxt
        elif m.name == lm.name:
            if fields_compat(local, lm.type_id, target, m.type_id):
                spec.accessors.append(Accessor(tt.id, i, m.name))
                return 1, m.type_id
            return 0, 0
        spec.bit_offset -= m.bit_offset
        spec.raw.pop()
    return 0, 0


def _spec_match(lspec: Spec, target: BTF, target_id: int) -> Spec | None:
    """Match the local spec against candidate ``target_id`` (libbpf's ``bpf_core_spec_match``)."""
    tspec = Spec(target, target_id, lspec.kind)
    local = lspec.btf
    if lspec.kind in _TYPE_KINDS:
        if lspec.kind == abi.BPF_CORE_TYPE_MATCHES:
            ok = types_match(local, lspec.root_type_id, target, target_id)
        else:
            ok = types_compat(local, lspec.root_type_id, target, target_id)
        return tspec if ok else None
    if lspec.kind in _ENUM_KINDS:
        tt = _skip(target, target_id)
        if not isinstance(tt, _AnyEnum):
            return None
        want = essential_name(lspec.accessors[0].name or "")
        for i, v in enumerate(tt.values):
            if essential_name(v.name) == want:
                tspec.accessors.append(Accessor(tt.id, i, v.name))
                tspec.raw.append(i)
                return tspec
        return None
    for n, lacc in enumerate(lspec.accessors):
        tt = _skip(target, target_id)
        target_id = tt.id
        if lacc.name:
            found, target_id = _match_member(local, lacc, target, target_id, tspec)
            if not found:
                return None
            continue
        if n > 0:
            if tt.kind != abi.BTF_KIND_ARRAY:
                return None
            if not _flex_array(target, tspec.accessors[-1], tt.nelems) and lacc.idx >= tt.nelems:  # type: ignore
                return None
            target_id = _skip(target, tt.type_id).id  # type: ignore[attr-defined]
        tspec._push_raw(lacc.idx)
        tspec.accessors.append(Accessor(target_id, lacc.idx, None))
        tspec.bit_offset += lacc.idx * _size(target, target_id) * 8
    return tspec


# ---- computing values -------------------------------------------------------------------------------------


class CoreResult:
    """What a relocation computes (libbpf's ``bpf_core_relo_res``).

    ``orig``: the value the compiler put in the instruction (checked when ``validate``); ``new``: the value for
    the target kernel; ``poison``: the instruction must become an invalid call (``fail_reason`` says why);
    ``orig_size``/``new_size``: memory access sizes for LDX/ST/STX (0 if not applicable), with
    ``fail_memsz_adjust`` set when changing the size would misread the field; ``local_spec``/``target_spec``
    and ``target_btf`` say what was matched.
    """

    __slots__ = ("orig", "new", "poison", "validate", "fail_memsz_adjust", "orig_size", "new_size",
                 "orig_type_id", "new_type_id", "fail_reason", "local_spec", "target_spec", "target_btf", "relo")

    def __init__(self, relo: CoreRelo, local_spec: Spec | None = None):
        self.relo = relo
        self.orig = self.new = 0
        self.poison = False
        self.validate = True
        self.fail_memsz_adjust = False
        self.orig_size = self.new_size = 0
        self.orig_type_id = self.new_type_id = 0
        self.fail_reason: str | None = None
        self.local_spec = local_spec
        self.target_spec: Spec | None = None
        self.target_btf: BTF | None = None

    def __repr__(self) -> str:
        if self.poison:
            return f"<CoreResult {RELO_KIND_NAMES.get(self.relo.kind)} poison: {self.fail_reason}>"
        return f"<CoreResult {RELO_KIND_NAMES.get(self.relo.kind)} {self.orig} -> {self.new}>"


def _elem_size(btf: BTF, type_id: int) -> int:
    """Size of ``type_id`` with (multi-dimensional) arrays stripped down to their element."""
    t = _skip(btf, type_id)
    for _ in range(MAX_CHAIN):
        if t.kind != abi.BTF_KIND_ARRAY:
            return _size(btf, t)
        t = _skip(btf, t.type_id)  # type: ignore[attr-defined]
    raise LinkError(f"CO-RE: array nesting of [{type_id}] too deep")


def _field_value(kind: int, spec: Spec | None, little: bool) -> tuple[int, int, int, bool]:
    """(value, memory size, field type id, validate) for a field relocation on ``spec``."""
    if kind == abi.BPF_CORE_FIELD_EXISTS:
        return int(spec is not None), 0, 0, True
    if spec is None:
        raise _Poison("no matching target field")
    btf = spec.btf
    acc = spec.accessors[-1]
    if not acc.name:  # array element access
        if kind == abi.BPF_CORE_FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, _elem_size(btf, acc.type_id), acc.type_id, True
        if kind == abi.BPF_CORE_FIELD_BYTE_SIZE:
            return _size(btf, acc.type_id), 0, 0, True
        raise LinkError(f"CO-RE: {RELO_KIND_NAMES[kind]} relocation cannot be applied to an array access")
    m = btf[acc.type_id].members[acc.idx]  # type: ignore[attr-defined]
    mt = _skip(btf, m.type_id)
    bit_off, bit_sz = spec.bit_offset, m.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = getattr(mt, "size", 0)
        if byte_sz <= 0:
            raise LinkError(f"CO-RE: bitfield {m.name!r} has a type without size")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise LinkError(f"CO-RE: bitfield {m.name!r} cannot be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _size(btf, mt)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    validate = not bitfield
    mem_sz, type_id = 0, 0
    if kind == abi.BPF_CORE_FIELD_BYTE_OFFSET:
        val = byte_off
        if not bitfield:
            mem_sz, type_id = _elem_size(btf, mt.id), mt.id
    elif kind == abi.BPF_CORE_FIELD_BYTE_SIZE:
        val = byte_sz
    elif kind == abi.BPF_CORE_FIELD_SIGNED:
        val = int((isinstance(mt, _AnyEnum) and mt.signed) or (mt.kind == abi.BTF_KIND_INT and mt.signed))  # type: ignore
        validate = True
    elif kind == abi.BPF_CORE_FIELD_LSHIFT_U64:
        val = 64 - (bit_off + bit_sz - byte_off * 8) if little else (8 - byte_sz) * 8 + (bit_off - byte_off * 8)
    else:  # RSHIFT_U64
        val = 64 - bit_sz
        validate = True
    return val, mem_sz, type_id, validate


def _type_value(kind: int, spec: Spec | None) -> int:
    if spec is None:
        return 0
    if kind == abi.BPF_CORE_TYPE_ID_TARGET:
        return spec.root_type_id
    if kind in (abi.BPF_CORE_TYPE_EXISTS, abi.BPF_CORE_TYPE_MATCHES):
        return 1
    return _size(spec.btf, spec.root_type_id)  # TYPE_SIZE


def _enum_value(kind: int, spec: Spec | None) -> int:
    if kind == abi.BPF_CORE_ENUMVAL_EXISTS:
        return int(spec is not None)
    if spec is None:
        raise _Poison("no matching target enumerator")
    acc = spec.accessors[0]
    t = spec.btf[acc.type_id]
    v = t.values[acc.idx].value  # type: ignore[attr-defined]
    if isinstance(t, Enum):  # libbpf reads the 32-bit value as signed and widens it to 64 bits
        v = (v & 0xFFFFFFFF) - (1 << 32) if v & 0x80000000 else v
    return v & _U64


def _calc(relo: CoreRelo, lspec: Spec, tspec: Spec | None) -> CoreResult:
    """libbpf's ``bpf_core_calc_relo`` for one candidate (or none)."""
    res = CoreResult(relo, lspec)
    res.target_spec = tspec
    res.target_btf = tspec.btf if tspec is not None else None
    kind = relo.kind
    try:
        if kind in _FIELD_KINDS:
            little = lspec.btf.byteorder == "little"
            res.orig, res.orig_size, res.orig_type_id, res.validate = _field_value(kind, lspec, little)
            res.new, res.new_size, res.new_type_id, _ = _field_value(kind, tspec, little)
            if res.orig_size != res.new_size:
                ot, nt = lspec.btf[res.orig_type_id], tspec.btf[res.new_type_id]  # type: ignore[union-attr]
                both_ptr = ot.kind == nt.kind == abi.BTF_KIND_PTR
                both_unsigned = (isinstance(ot, Int) and isinstance(nt, Int) and ot.encoding != abi.BTF_INT_SIGNED
                                 and nt.encoding != abi.BTF_INT_SIGNED)
                if not (both_ptr or both_unsigned):
                    res.fail_memsz_adjust = True
                    res.fail_reason = (f"field size changes from {res.orig_size} to {res.new_size} bytes and it "
                                       "is not an unsigned integer or pointer")
        elif kind in _TYPE_KINDS:
            res.orig, res.new = _type_value(kind, lspec), _type_value(kind, tspec)
            res.validate = kind != abi.BPF_CORE_TYPE_ID_TARGET
        elif kind in _ENUM_KINDS:
            res.orig, res.new = _enum_value(kind, lspec), _enum_value(kind, tspec)
        else:
            raise LinkError(f"CO-RE: unknown relocation kind {kind}")
    except _Poison as p:
        res.poison = True
        res.fail_reason = f"{p}: {lspec.format()}"
    return res


# ---- candidates and resolution ----------------------------------------------------------------------------


class Resolver:
    """Resolves an object's CO-RE relocations against ``targets`` (vmlinux first, then module BTFs, which are
    only consulted for a local type without candidates in vmlinux).  Keep one per object: like libbpf it
    caches each local type's candidates and narrows them to those that matched."""

    def __init__(self, local: BTF, targets: Sequence[BTF]):
        self.local = local
        self.targets = targets
        self._cands: dict[int, list[tuple[BTF, int]]] = {}

    def candidates(self, type_id: int) -> list[tuple[BTF, int]]:
        """(target BTF, type id) pairs whose kind and essential name match local type ``type_id``."""
        cands = self._cands.get(type_id)
        if cands is not None:
            return cands
        lt = self.local[type_id]
        ess = essential_name(lt.name)
        if not ess:
            raise LinkError(f"CO-RE: candidate search for anonymous type [{type_id}]")
        cands = []
        for n, target in enumerate(self.targets):
            if n == 1 and cands:
                break  # vmlinux had candidates: modules are not searched
            found = [t for t in target.find_prefixed(ess + "___") if essential_name(t.name) == ess]
            found += [t for t in target.find(ess) if t.id >= target.first_id]
            cands += [(target, t.id) for t in sorted(found, key=lambda t: t.id) if _kind_compat(t, lt)]
        self._cands[type_id] = cands
        return cands

    def resolve(self, relo: CoreRelo) -> CoreResult:
        """Compute one relocation (libbpf's ``bpf_core_calc_relo_insn``); LinkError when it cannot be done."""
        try:
            return self._resolve(relo)
        except BTFError as e:
            raise LinkError(f"CO-RE relocation at insn #{relo.insn_idx}: {e}") from None
        except LinkError as e:
            raise LinkError(f"CO-RE relocation at insn #{relo.insn_idx} ({RELO_KIND_NAMES.get(relo.kind)} "
                            f"[{relo.type_id}] {relo.access!r}): {e}") from None

    def _resolve(self, relo: CoreRelo) -> CoreResult:
        local = self.local
        if not 0 < relo.type_id < len(local):
            raise LinkError(f"local type id {relo.type_id} out of range")
        lt = local[relo.type_id]
        lspec = parse_spec(local, relo)
        if relo.kind == abi.BPF_CORE_TYPE_ID_LOCAL:
            res = CoreResult(relo, lspec)
            res.orig = res.new = relo.type_id
            res.validate = False
            return res
        if not lt.name:
            raise LinkError(f"{RELO_KIND_NAMES.get(relo.kind)} relocation on an anonymous type")
        cands = self.candidates(relo.type_id)
        best: CoreResult | None = None
        kept = []
        for target, tid in cands:
            tspec = _spec_match(lspec, target, tid)
            if tspec is None:
                continue
            res = _calc(relo, lspec, tspec)
            if best is None:
                best = res
            elif tspec.bit_offset != best.target_spec.bit_offset:  # type: ignore[union-attr]
                raise LinkError(f"field offset ambiguity: {tspec.format()} vs {best.target_spec}")
            elif res.poison != best.poison or res.new != best.new:
                raise LinkError(f"relocation decision ambiguity: {tspec.format()} gives {res.new}, "
                                f"{best.target_spec} gives {best.new}")
            kept.append((target, tid))
        if best is None:
            return _calc(relo, lspec, None)
        cands[:] = kept  # later relocations of this type only consider the candidates that matched
        return best


def resolve(local: BTF, relo: CoreRelo, targets: Sequence[BTF]) -> CoreResult:
    """Compute one relocation of ``local`` against ``targets`` (vmlinux first, then modules).  For a whole
    object use one :class:`Resolver`, which caches candidates across relocations as libbpf does."""
    return Resolver(local, targets).resolve(relo)


# ---- patching instructions --------------------------------------------------------------------------------


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _poison(insn: Any) -> None:
    insn.code = abi.BPF_JMP | abi.BPF_CALL
    insn.dst = insn.src = insn.off = 0
    insn.imm = POISON_IMM


def _poisoned(insn: Any) -> list[Any]:
    if insn.code == _LD_IMM64:  # both slots become calls, so the verifier sees no half instruction
        second = copy.copy(insn)
        _poison(insn)
        _poison(second)
        return [insn, second]
    _poison(insn)
    return [insn]


_SIZE_BYTES = {abi.BPF_DW: 8, abi.BPF_W: 4, abi.BPF_H: 2, abi.BPF_B: 1}
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}
_LD_IMM64 = abi.BPF_LD | abi.BPF_IMM | abi.BPF_DW


def patch(insn: Any, result: CoreResult) -> list[Any]:
    """Apply ``result`` to ``insn`` in place, as libbpf's ``bpf_core_patch_insn``: ALU/ALU64 ``imm``, LDX/ST/STX
    ``off`` (and the load/store size when the field's size changed), ld_imm64's 64-bit ``imm``; a poisoned
    result turns the instruction into ``call 0xbad2310``.  Returns the instructions that take ``insn``'s slots:
    ``[insn]``, or for a poisoned ld_imm64 two poisoned calls.  LinkError if the instruction cannot take it.

    ``insn`` is a :class:`pybpf.asm.Instruction` (anything with ``code``, ``dst``, ``src``, ``off``, ``imm``;
    ``imm`` of ld_imm64 being the whole 64-bit constant)."""
    where = f"CO-RE {RELO_KIND_NAMES.get(result.relo.kind)} relocation at insn #{result.relo.insn_idx}"
    cls = insn.code & 0x07
    if result.poison:
        return _poisoned(insn)
    orig, new = result.orig & _U64, result.new & _U64
    if cls in (abi.BPF_ALU, abi.BPF_ALU64):
        if insn.code & abi.BPF_X:
            raise LinkError(f"{where}: ALU instruction with a register source cannot be relocated")
        if result.validate and insn.imm & _U64 != orig:
            raise LinkError(f"{where}: unexpected ALU imm {insn.imm}, expected {orig} (-> {new})")
        insn.imm = _s32(new)
    elif cls in (abi.BPF_LDX, abi.BPF_ST, abi.BPF_STX):
        if result.validate and insn.off & _U64 != orig:
            raise LinkError(f"{where}: unexpected load/store offset {insn.off}, expected {orig} (-> {new})")
        if new > 0x7FFF:
            raise LinkError(f"{where}: offset {new} does not fit in an instruction's 16-bit offset")
        if result.fail_memsz_adjust:  # reading the field with another size would give a wrong value
            return _poisoned(insn)
        insn.off = new
        if result.new_size != result.orig_size:
            have = _SIZE_BYTES.get(insn.code & 0x18)
            if have != result.orig_size:
                raise LinkError(f"{where}: instruction accesses {have} bytes, expected {result.orig_size}")
            size = _BYTES_SIZE.get(result.new_size)
            if size is None:
                raise LinkError(f"{where}: field size {result.new_size} cannot be loaded or stored")
            insn.code = (insn.code & 0xE7) | size
    elif insn.code == _LD_IMM64:
        if insn.src or insn.off:
            raise LinkError(f"{where}: ld_imm64 has an unexpected form (src {insn.src}, off {insn.off})")
        if result.validate and insn.imm & _U64 != orig:
            raise LinkError(f"{where}: unexpected ld_imm64 value {insn.imm}, expected {orig} (-> {new})")
        insn.imm = new - (1 << 64) if new >> 63 else new
    else:
        raise LinkError(f"{where}: instruction code {insn.code:#04x} cannot be relocated")
    return [insn]


# ---- rendering ------------------------------------------------------------------------------------------


def describe(local: BTF, relo: CoreRelo, result: CoreResult | None = None) -> dict[str, Any]:
    """A relocation in human terms for ``pybpf inspect``: ``kind`` (libbpf's name), ``insn``, ``local``
    (``struct task_struct.pid (0:92 @ offset 1264)``) and, given a ``result``, ``target``, ``orig``, ``new``,
    ``poison``, ``reason`` and a one-line ``text``."""
    kind = RELO_KIND_NAMES.get(relo.kind, f"kind {relo.kind}")
    try:
        lspec = result.local_spec if result is not None and result.local_spec else parse_spec(local, relo)
        local_str = lspec.format().split("> ", 1)[1]
    except (LinkError, BTFError) as e:
        local_str = f"[{relo.type_id}] {relo.access!r} (invalid: {e})"
    out: dict[str, Any] = {"insn": relo.insn_idx, "kind": kind, "local": local_str, "access": relo.access}
    text = f"insn #{relo.insn_idx}: {kind} {local_str}"
    if result is not None:
        out.update(orig=result.orig, new=result.new, poison=result.poison, reason=result.fail_reason)
        if result.target_spec is not None:
            out["target"] = result.target_spec.format().split("> ", 1)[1]
        if result.poison:
            text += f" => poisoned ({result.fail_reason})"
        else:
            text += f" => {result.orig} -> {result.new}"
            if result.fail_memsz_adjust:
                text += f" (a load/store of it is poisoned: {result.fail_reason})"
    out["text"] = text
    return out
