"""Text and JSON listings of BTF types, in the raw form ``bpftool btf dump`` prints."""
from __future__ import annotations

from typing import Any, Iterator

from ..sys import abi
from .btf import BTF
from .types import (Array, Datasec, DeclTag, Enum64, Float, Func, FuncProto, Fwd, Int, Type, TypeTag, Var,
                    _AnyEnum, _Composite, _RefType)

__all__ = ["format_raw", "raw_lines", "to_dict"]

_INT_ENC = {0: "(none)", abi.BTF_INT_SIGNED: "SIGNED", abi.BTF_INT_CHAR: "CHAR", abi.BTF_INT_BOOL: "BOOL"}
_LINKAGE = {abi.BTF_FUNC_STATIC: "static", abi.BTF_FUNC_GLOBAL: "global", abi.BTF_FUNC_EXTERN: "extern"}
_VAR_LINKAGE = {abi.BTF_VAR_STATIC: "static", abi.BTF_VAR_GLOBAL_ALLOCATED: "global",
                abi.BTF_VAR_GLOBAL_EXTERN: "extern"}


def _q(name: str) -> str:
    return f"'{name or '(anon)'}'"


def raw_lines(btf: BTF, t: Type) -> list[str]:
    """One type as bpftool's raw dump prints it (first line, then one tab-indented line per element)."""
    head = f"[{t.id}] {t.kind_name} {_q(t.name)}"
    more: list[str] = []
    if isinstance(t, Int):
        head += (f" size={t.size} bits_offset={t.offset} nr_bits={t.bits} "
                 f"encoding={_INT_ENC.get(t.encoding, '(unknown)')}")
    elif isinstance(t, Array):
        head += f" type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}"
    elif isinstance(t, _Composite):
        head += f" size={t.size} vlen={len(t.members)}"
        more = [f"\t{_q(m.name)} type_id={m.type_id} bits_offset={m.bit_offset}"
                + (f" bitfield_size={m.bitfield_size}" if m.bitfield_size else "") for m in t.members]
    elif isinstance(t, _AnyEnum):
        head += f" encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} vlen={len(t.values)}"
        sfx = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        more = [f"\t{_q(v.name)} val={v.value}{sfx}" for v in t.values]
    elif isinstance(t, Fwd):
        head += f" fwd_kind={'union' if t.is_union else 'struct'}"
    elif isinstance(t, Func):
        head += f" type_id={t.type_id} linkage={_LINKAGE.get(t.linkage, t.linkage)}"
    elif isinstance(t, FuncProto):
        head += f" ret_type_id={t.type_id} vlen={len(t.params)}"
        more = [f"\t{_q(p.name)} type_id={p.type_id}" for p in t.params]
    elif isinstance(t, Var):
        head += f" type_id={t.type_id}, linkage={_VAR_LINKAGE.get(t.linkage, t.linkage)}"
    elif isinstance(t, Datasec):
        head += f" size={t.size} vlen={len(t.vars)}"
        for v in t.vars:
            vt = btf[v.type_id]
            more.append(f"\ttype_id={v.type_id} offset={v.offset} size={v.size} ({vt.kind_name} {_q(vt.name)})")
    elif isinstance(t, Float):
        head += f" size={t.size}"
    elif isinstance(t, DeclTag):
        head += f" type_id={t.type_id} component_idx={t.component_idx}"
    elif isinstance(t, (TypeTag, _RefType)):
        head += f" type_id={t.type_id}"
    return [head, *more]


def format_raw(btf: BTF) -> Iterator[str]:
    """Every own type of ``btf``, in id order, as lines of bpftool's raw format."""
    for t in btf:
        yield from raw_lines(btf, t)


def to_dict(t: Type) -> dict[str, Any]:
    """One type as a JSON-ready dict (``id``, ``kind``, ``name`` and the kind's fields)."""
    out: dict[str, Any] = {"id": t.id, "kind": t.kind_name, "name": t.name}
    for k in t._repr_fields():
        v = getattr(t, k)
        if isinstance(v, list):
            v = [{s: getattr(e, s) for s in type(e).__slots__ if s not in ("name_off", "extra")} for e in v]
        out[k] = v
    return out
