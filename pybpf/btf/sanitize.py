"""Make an object's BTF loadable: fill in what the compiler leaves out, and rewrite kinds the kernel lacks.

* :func:`fixup_datasecs` (libbpf's ``btf_fixup_datasec``): DATASEC sizes and variable offsets come from the
  ELF section sizes and symbols; hidden globals become static; variables are sorted by offset.
* :func:`sanitize` (libbpf's ``bpf_object__sanitize_btf``): for each BTF feature the kernel lacks (probed by
  :mod:`pybpf.sys.probes`, passed in as :class:`Feature` flags) rewrite the kinds into accepted equivalents.
  The result's ``to_bytes()`` is what BPF_BTF_LOAD gets.
"""
from __future__ import annotations

import enum
from typing import Collection, Mapping

from ..errors import BTFError
from ..sys import abi
from .btf import BTF
from .types import Const, Datasec, DeclTag, Enum, Enum64, Float, Func, FuncProto, Int, Member, Struct, Type, \
    Typedef, TypeTag, Union, Var, EnumValue

__all__ = ["Feature", "sanitize", "fixup_datasecs"]


class Feature(enum.Flag):
    """BTF features a kernel may lack (each a libbpf ``FEAT_BTF_*``)."""

    NONE = 0
    FUNC = enum.auto()           #: FUNC and FUNC_PROTO (4.20)
    GLOBAL_FUNC = enum.auto()    #: BTF_FUNC_GLOBAL linkage (5.6)
    DATASEC = enum.auto()        #: VAR and DATASEC (5.2)
    QMARK_DATASEC = enum.auto()  #: DATASEC names starting with '?' (6.5)
    FLOAT = enum.auto()          #: FLOAT (5.13)
    DECL_TAG = enum.auto()       #: DECL_TAG (5.16)
    TYPE_TAG = enum.auto()       #: TYPE_TAG (5.17)
    ENUM64 = enum.auto()         #: ENUM64 and signed enums (6.0)
    ALL = FUNC | GLOBAL_FUNC | DATASEC | QMARK_DATASEC | FLOAT | DECL_TAG | TYPE_TAG | ENUM64


#: DATASECs whose layout the loader computes itself (externs): not fixed up from the ELF
EXTERN_SECTIONS = (".kconfig", ".ksyms")


def fixup_datasecs(btf: BTF, section_sizes: Mapping[str, int], symbols: Mapping[str, int],
                   hidden: Collection[str] = ()) -> None:
    """Fill in, in place, what clang leaves zero in DATASECs: a section's ``size`` from ``section_sizes`` (ELF
    section name -> size) and, then, each global variable's offset from ``symbols`` (name -> st_value); mark
    variables whose symbol is in ``hidden`` (STV_HIDDEN/INTERNAL) static; sort each DATASEC's variables by
    offset.  BTFError if a section or symbol the BTF names is missing."""
    for t in list(btf.types(abi.BTF_KIND_DATASEC)):
        assert isinstance(t, Datasec)
        if t.name not in EXTERN_SECTIONS:
            fix_offsets = False
            if t.size == 0:
                size = section_sizes.get(t.name, 0)
                if not size:
                    raise BTFError(f"DATASEC {t.name!r}: the ELF has no section of that name (or it is empty)")
                t.size, fix_offsets = size, True
            for v in t.vars:
                var = btf[v.type_id]
                if not isinstance(var, Var):
                    raise BTFError(f"DATASEC {t.name!r} holds [{v.type_id}] {var.kind_name}, not a VAR")
                if var.linkage in (abi.BTF_VAR_STATIC, abi.BTF_VAR_GLOBAL_EXTERN):
                    continue
                if var.name not in symbols:
                    raise BTFError(f"DATASEC {t.name!r}: no ELF symbol for variable {var.name!r}")
                if fix_offsets:
                    v.offset = symbols[var.name]
                if var.name in hidden:
                    var.linkage = abi.BTF_VAR_STATIC
        t.vars.sort(key=lambda v: v.offset)


def _int8(name: str) -> Int:
    return Int(name, 1, 0, 8)


def sanitize(btf: BTF, features: Feature) -> BTF:
    """A copy of ``btf`` the kernel with ``features`` accepts (the original is untouched).  What a missing
    feature changes, as libbpf does: VAR and DECL_TAG -> 1-byte INT; DATASEC -> STRUCT ('.'/'?' -> '_');
    '?'-prefixed DATASEC names -> '_'; FUNC_PROTO -> ENUM; FUNC -> TYPEDEF; global FUNC -> static; FLOAT ->
    anonymous empty STRUCT; TYPE_TAG -> CONST; ENUM loses its signedness and ENUM64 becomes a UNION of
    1-byte ``enum64_placeholder`` members."""
    out = btf.copy()
    F = Feature
    has = features.__contains__
    placeholder = 0
    for type_id in range(out.first_id, len(out)):
        t = out[type_id]
        new: Type | None = None
        if (not has(F.DATASEC) and isinstance(t, Var)) or (not has(F.DECL_TAG) and isinstance(t, DeclTag)):
            new = _int8(t.name)
        elif not has(F.DATASEC) and isinstance(t, Datasec):
            members = [Member(out[v.type_id].name, v.type_id, v.offset * 8) for v in t.vars]
            new = Struct(t.name.replace(".", "_").replace("?", "_"), t.size, members, 0)
        elif not has(F.QMARK_DATASEC) and isinstance(t, Datasec) and t.name.startswith("?"):
            t.name = "_" + t.name[1:]
        elif not has(F.FUNC) and isinstance(t, FuncProto):
            new = Enum(t.name, 4, [EnumValue(p.name, p.type_id) for p in t.params], False)
        elif not has(F.FUNC) and isinstance(t, Func):
            new = Typedef(t.name, t.type_id)
        elif not has(F.GLOBAL_FUNC) and isinstance(t, Func):
            t.linkage = abi.BTF_FUNC_STATIC
        elif not has(F.FLOAT) and isinstance(t, Float):
            new = Struct("", t.size, [], 0)
        elif not has(F.TYPE_TAG) and isinstance(t, TypeTag):
            new = Const(t.type_id)
        elif not has(F.ENUM64) and isinstance(t, Enum):
            t.signed = False
        elif not has(F.ENUM64) and isinstance(t, Enum64):
            if not placeholder:
                placeholder = out.add(_int8("enum64_placeholder"))
            new = Union(t.name, t.size, [Member(v.name, placeholder, 0) for v in t.values], 0)
        if new is not None:
            new.name_off = t.name_off if new.name == t.name else -1
            out.replace(type_id, new)
    return out
