"""BTF as compilable C (like ``bpftool btf dump ... format c``, e.g. to make ``vmlinux.h``).

Types are emitted in dependency order: a struct, union or typedef is defined before anything that needs it
by value, and a forward declaration is emitted where only a pointer needs it.  Anonymous structs, unions and
enums are written inline where they are used.  Struct layouts are reproduced exactly: gaps the C layout rules
would not produce become unnamed bitfields, packed structs get ``__attribute__((packed))`` (detected as
libbpf does).  Types whose names clash get a ``___N`` suffix, as bpftool does.
"""
from __future__ import annotations

from typing import Iterator

from ..errors import BTFError
from ..sys import abi
from .btf import BTF, MAX_CHAIN
from .types import Array, Enum64, FuncProto, Fwd, Type, Typedef, _AnyEnum, _Composite

__all__ = ["format_c", "CDumper"]

_MODS = {abi.BTF_KIND_CONST: "const", abi.BTF_KIND_VOLATILE: "volatile", abi.BTF_KIND_RESTRICT: "restrict"}
_SKIPPED = (abi.BTF_KIND_FUNC, abi.BTF_KIND_VAR, abi.BTF_KIND_DATASEC, abi.BTF_KIND_DECL_TAG)
_TOP = (abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64, abi.BTF_KIND_FWD,
        abi.BTF_KIND_TYPEDEF)
_BUILTIN_TYPEDEFS = ("__builtin_va_list",)  # the compiler defines these itself
_PAD_TYPES = ((64, "long"), (32, "int"), (16, "short"), (8, "char"))
_MAX_PAD_BITS = 1 << 27  # 16 MiB of padding (2M "long: 64;" lines): beyond that the BTF is taken as malformed

HEADER = """#ifndef {guard}
#define {guard}

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

"""
FOOTER = """
#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* {guard} */
"""


class CDumper:
    """Turns the types of one BTF into C declarations (:meth:`lines`)."""

    def __init__(self, btf: BTF):
        self.btf = btf
        self._out: list[str] = []
        self._done: set[int] = set()       # structs/unions/enums/typedefs defined
        self._declared: set[str] = set()   # "struct foo" tags forward-declared or defined
        self._ordering: set[int] = set()
        self._names: dict[int, str] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._aligns: dict[int, int] = {}

    # ---- names ---------------------------------------------------------------------------------------

    def _unique(self, space: str, name: str) -> str:
        n = self._counts.get((space, name), 0) + 1
        self._counts[(space, name)] = n
        return name if n == 1 else f"{name}___{n}"

    def name(self, t: Type) -> str:
        """The C name of a named type, with a ``___N`` suffix if an earlier type took the same name."""
        got = self._names.get(t.id)
        if got is None:
            if isinstance(t, Fwd):  # the tag the definition (if any) will also use
                got = t.name
            else:
                got = self._unique("ident" if isinstance(t, Typedef) else "tag", t.name)
            self._names[t.id] = got
        return got

    def _tag(self, t: Type) -> str:
        if isinstance(t, Fwd):
            return f"{'union' if t.is_union else 'struct'} {self.name(t)}"
        kw = {abi.BTF_KIND_STRUCT: "struct", abi.BTF_KIND_UNION: "union"}.get(t.kind, "enum")
        return f"{kw} {self.name(t)}"

    # ---- ordering --------------------------------------------------------------------------------------

    def _order(self, type_id: int, through_ptr: bool) -> None:
        """Emit what ``type_id`` needs before it can be used (by value, or only behind a pointer)."""
        t = self.btf[type_id]
        k = t.kind
        if k == abi.BTF_KIND_PTR:
            return self._order(t.type_id, True)  # type: ignore[attr-defined]
        if k in _MODS or k == abi.BTF_KIND_TYPE_TAG:
            return self._order(t.type_id, through_ptr)  # type: ignore[attr-defined]
        if isinstance(t, _Composite) and t.name and (
                through_ptr or type_id in self._done or type_id in self._ordering):
            self._declare(t)
            return None
        if isinstance(t, Typedef) and (type_id in self._done or t.name in _BUILTIN_TYPEDEFS):
            if not through_ptr:  # defined earlier behind a pointer: what it names must be complete now
                self._order(t.type_id, False)
            return None
        if type_id in self._ordering:
            if isinstance(t, Typedef):  # a typedef used (behind a pointer) inside what it names
                target = self.btf.resolve(t.type_id, typedefs=False)
                if isinstance(target, (_Composite, Fwd)) and target.name:
                    self._declare(target)
                    self._define(t)
            return None
        self._ordering.add(type_id)
        try:
            if isinstance(t, Array):
                self._order(t.type_id, through_ptr)
            elif isinstance(t, FuncProto):
                for r in t.refs():
                    self._order(r, True)
            elif isinstance(t, _Composite):
                for m in t.members:
                    self._order(m.type_id, False)
                if t.name:
                    self._define(t)
            elif isinstance(t, _AnyEnum):
                if t.name and type_id not in self._done:
                    self._define(t)
            elif isinstance(t, Fwd):
                self._declare(t)
            elif isinstance(t, Typedef):
                self._order(t.type_id, through_ptr)
                if type_id not in self._done:
                    self._define(t)
        finally:
            self._ordering.discard(type_id)
        return None

    def _declare(self, t: Type) -> None:
        """A forward declaration of struct/union ``t`` unless its tag is already declared or defined."""
        tag = self._tag(t)
        if t.id not in self._done and tag not in self._declared:
            self._declared.add(tag)
            self._out.append(f"{tag};\n\n")

    def _define(self, t: Type) -> None:
        self._done.add(t.id)
        if isinstance(t, Typedef):
            self._out.append(f"typedef {self._decl(t.type_id, self.name(t), 0)};\n\n")
        else:
            self._declared.add(self._tag(t))
            self._out.append(f"{self._body(t, 0)};\n\n")

    # ---- declarations ----------------------------------------------------------------------------------

    def _decl(self, type_id: int, inner: str, indent: int) -> str:
        """A C declaration of ``inner`` (a name, possibly empty) with type ``type_id``."""
        quals: list[str] = []
        for _ in range(MAX_CHAIN):
            t = self.btf[type_id]
            k = t.kind
            if k in _MODS or k == abi.BTF_KIND_TYPE_TAG:
                target = self.btf.resolve(t, typedefs=False)
                if k in _MODS:
                    if target.kind == abi.BTF_KIND_PTR:
                        inner = f"{_MODS[k]} {inner}".rstrip()
                    elif target.kind != abi.BTF_KIND_FUNC_PROTO:
                        quals.append(_MODS[k])
                type_id = t.type_id  # type: ignore[attr-defined]
            elif k == abi.BTF_KIND_PTR:
                inner = f"*{inner}"
                type_id = t.type_id  # type: ignore[attr-defined]
            elif isinstance(t, Array):
                inner = f"({inner})" if inner.startswith("*") else inner
                inner = f"{inner}[{t.nelems}]"
                type_id = t.type_id
            elif isinstance(t, FuncProto):
                inner = f"({inner})" if inner.startswith("*") else inner
                params = [self._decl(p.type_id, "", indent) if p.type_id else "..." for p in t.params]
                inner = f"{inner}({', '.join(params) or 'void'})"
                type_id = t.type_id
            else:
                base = self._base(t, indent)
                quals = list(dict.fromkeys(reversed(quals)))  # outermost first, each once
                return " ".join([*quals, base, inner]) if inner else " ".join([*quals, base])
        raise BTFError(f"type [{type_id}]: declarator chain longer than {MAX_CHAIN}")

    def _base(self, t: Type, indent: int) -> str:
        if t.kind == abi.BTF_KIND_UNKN:
            return "void"
        if isinstance(t, (_Composite, _AnyEnum)):
            return self._tag(t) if t.name else self._body(t, indent)
        if isinstance(t, Fwd):
            return self._tag(t)
        if isinstance(t, Typedef):
            return self.name(t)
        if t.kind in _SKIPPED:
            raise BTFError(f"type [{t.id}] {t.kind_name} cannot be used as a C type")
        return t.name or "void"

    def _body(self, t: Type, indent: int) -> str:
        """``struct name { ... }`` / ``enum name { ... }`` (no trailing ``;``)."""
        head = f"{self._tag(t)} " if t.name else ("enum " if isinstance(t, _AnyEnum) else
                                                 "union " if t.kind == abi.BTF_KIND_UNION else "struct ")
        pad = "\t" * (indent + 1)
        if isinstance(t, _AnyEnum):
            if not t.values:
                return head.rstrip()
            lines = []
            for v in t.values:
                val = str(v.value)
                if isinstance(t, Enum64) or not -(1 << 31) <= v.value < (1 << 31):
                    val += "LL" if t.signed else "ULL"
                lines.append(f"{pad}{self._unique('ident', v.name)} = {val},\n")
            attr = " __attribute__((packed))" if t.size < 4 else ""
            return f"{head}{{\n{''.join(lines)}{chr(9) * indent}}}{attr}"
        assert isinstance(t, _Composite)
        packed = self._packed(t)
        lines = []
        cur = 0
        is_union = t.kind == abi.BTF_KIND_UNION
        for m in t.members:
            if m.bit_offset + (m.bitfield_size or 8 * self._size(m.type_id)) > 8 * t.size:
                raise BTFError(f"type [{t.id}] {t.kind_name} {t.name or '<anon>'}: member {m.name or '<anon>'!r} at "
                               f"bit {m.bit_offset} lies past the end of its {t.size} bytes")
            if not is_union:
                lines += self._padding(cur, m.bit_offset, m.type_id, m.bitfield_size, packed, pad)
            decl = self._decl(m.type_id, m.name, indent + 1)
            if m.bitfield_size:
                decl += f": {m.bitfield_size}"
            lines.append(f"{pad}{decl};\n")
            if not is_union:
                cur = m.bit_offset + (m.bitfield_size or 8 * self._size(m.type_id))
        if not is_union and t.members:
            align = 1 if packed else self._align(t)
            end = -(-cur // (8 * align)) * 8 * align
            if t.size * 8 > end:
                lines += self._fill(cur, t.size * 8, pad)
        attr = " __attribute__((packed))" if packed else ""
        return f"{head}{{\n{''.join(lines)}{chr(9) * indent}}}{attr}"

    def _size(self, type_id: int) -> int:
        try:
            return self.btf.size_of(type_id)
        except BTFError:
            return 0

    def _align(self, t: Type | int) -> int:
        try:
            return self.btf.align_of(t, self._aligns)
        except BTFError:
            return 1

    def _packed(self, t: _Composite) -> bool:
        """libbpf's packed detection: a member at an offset its alignment forbids, or a size that is not a
        multiple of the largest member alignment."""
        if not t.members:
            return False
        best = 1
        for m in t.members:
            a = self._align(m.type_id)
            best = max(best, a)
            if not m.bitfield_size and m.bit_offset % (8 * a):
                return True
        return t.size % best != 0

    def _padding(self, cur: int, off: int, type_id: int, bits: int, packed: bool, pad: str) -> list[str]:
        """Unnamed bitfields placing the next member at bit ``off`` if C's rules would put it elsewhere."""
        if bits:
            unit = 8 * max(1, self._size(type_id))
            natural = cur if packed or cur // unit == (cur + bits - 1) // unit else -(-cur // unit) * unit
        else:
            a = 1 if packed else self._align(type_id)
            natural = -(-cur // (8 * a)) * 8 * a
        return self._fill(cur, off, pad) if off > natural else []

    @staticmethod
    def _fill(cur: int, end: int, pad: str) -> list[str]:
        """Unnamed bitfields covering bits [cur, end) exactly."""
        if end - cur > _MAX_PAD_BITS:
            raise BTFError(f"{(end - cur) // 8} bytes of padding at bit {cur} of a struct: too large to write as C "
                           "(malformed BTF?)")
        out = []
        if cur % 8 and end > cur:
            n = min(8 - cur % 8, end - cur)
            out.append(f"{pad}char: {n};\n")
            cur += n
        for bits, name in reversed(_PAD_TYPES[1:]):  # climb to 64-bit alignment: char, short, int
            if cur % (2 * bits) and end - cur >= bits:
                out.append(f"{pad}{name}: {bits};\n")
                cur += bits
        for bits, name in _PAD_TYPES:
            while end - cur >= bits and not cur % bits:
                out.append(f"{pad}{name}: {bits};\n")
                cur += bits
        if end > cur:
            out.append(f"{pad}char: {end - cur};\n")
        return out

    # ---- whole dump ------------------------------------------------------------------------------------

    def _roots(self) -> Iterator[Type]:
        """Types to emit at top level: every named struct/union/enum/typedef/fwd, and anonymous enums no
        other type uses (they only define constants)."""
        used: set[int] = set()
        for t in self.btf:
            if isinstance(t, _AnyEnum) or t.kind in _SKIPPED:
                continue
            used.update(t.refs())
        for t in self.btf:
            if t.kind in _TOP and (t.name or (isinstance(t, _AnyEnum) and t.id not in used)):
                yield t

    def lines(self) -> Iterator[str]:
        """The C declarations, each ending with a blank line, in dependency order."""
        for t in self._roots():
            try:
                if t.name:
                    self._order(t.id, False)
                else:
                    self._out.append(f"{self._body(t, 0)};\n\n")
            except RecursionError:
                raise BTFError(f"type [{t.id}]: type graph nested too deeply to write as C") from None
            yield from self._out
            self._out.clear()


def format_c(btf: BTF, guard: str = "__VMLINUX_H__") -> str:
    """The whole C header for ``btf`` (include guard ``guard``; CO-RE ``preserve_access_index`` on records)."""
    body = "".join(CDumper(btf).lines())
    return HEADER.format(guard=guard) + body + FOOTER.format(guard=guard)
