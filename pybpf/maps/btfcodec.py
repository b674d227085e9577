"""Codecs compiled from BTF: map keys/values and ring records decoded into Python values and encoded back.

The decoded shapes: integers, enums and pointers as ``int``; floats as ``float``; ``char`` arrays as ``str``
(up to the first NUL); other one-byte arrays as ``bytes``; other arrays as lists; structs, unions and data
sections as named tuples (one class per BTF type; member names as :func:`field_names` makes them valid);
bitfields as ints.  Encoding takes the same shapes back, and also plain tuples/lists (positional) or dicts
(by member name; members left out are zero).  A union is encoded from its largest member that is not None.
``records`` lets a caller supply the classes (e.g. generated, typed ones): a tuple subclass per struct/union id,
and a callable per enum id wrapping its values (an ``IntEnum``).

Each type is compiled once into a Python function around one ``struct.Struct`` covering every non-overlapping
field (unions become nested codecs, bitfield runs one integer), so decoding a record is one ``unpack_from``
and one tuple build.  A type that is a single native scalar becomes a plain scalar codec (cast memoryview fast
path in maps).
"""
from __future__ import annotations

import keyword
import struct
from collections import namedtuple
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from ..errors import BTFError, CodecError
from ..sys import abi
from .codec import Codec, struct_codec

if TYPE_CHECKING:
    from ..btf import BTF
    from ..btf.types import Type

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I", (4, True): "i",
              (8, False): "Q", (8, True): "q"}
_FLOAT_CODES = {4: "f", 8: "d", 2: "e"}
_SKIP = frozenset((abi.BTF_KIND_TYPEDEF, abi.BTF_KIND_VOLATILE, abi.BTF_KIND_CONST, abi.BTF_KIND_RESTRICT,
                   abi.BTF_KIND_TYPE_TAG))


def btf_codec(btf: BTF, type_id: int | Type, size: int | None = None, *,
              records: Mapping[int, Callable[..., Any]] | None = None) -> Codec:
    """The codec of BTF type ``type_id`` (an id or a type of ``btf``); ``size`` checks it against the map.
    ``records`` maps type ids to the classes to decode into (structs/unions: tuple subclasses; enums: wrappers)."""
    try:
        t = _resolve(btf, btf[type_id] if isinstance(type_id, int) else type_id)
        codec = _Compiler(btf, records).codec(t)
    except BTFError as e:
        raise CodecError(f"cannot build a codec for BTF type {type_id}: {e}") from None
    if size is not None and codec.size != size:
        raise CodecError(f"BTF type {_describe(t)} is {codec.size} bytes but the map wants {size}")
    return codec


def _resolve(btf: BTF, t: Type) -> Type:
    for _ in range(256):
        if t.kind not in _SKIP and t.kind != abi.BTF_KIND_VAR:
            return t
        t = t.type  # type: ignore[attr-defined]
    raise BTFError(f"type [{t.id}]: modifier chain too long")


def _int_bits(t: Type) -> tuple[int, int]:
    """(bits, bit offset) of an INT narrower than its size or offset (an old-style bitfield), else (0, 0)."""
    if t.kind == abi.BTF_KIND_INT and (t.bits != t.size * 8 or t.offset):  # type: ignore[attr-defined]
        return t.bits, t.offset  # type: ignore[attr-defined]
    return 0, 0


def _describe(t: Type) -> str:
    return f"{t.kind_name.lower()} {t.name}".strip() if t.name else f"{t.kind_name.lower()} [{t.id}]"


def _char_array_kind(btf: BTF, elem: Type) -> str | None:
    """'str' for arrays of ``char``, 'bytes' for other one-byte integers, None otherwise."""
    t = elem
    for _ in range(256):  # modifiers only: a typedef'd u8 is a byte, a plain char is text
        if t.kind in (abi.BTF_KIND_VOLATILE, abi.BTF_KIND_CONST, abi.BTF_KIND_RESTRICT, abi.BTF_KIND_TYPE_TAG):
            t = t.type  # type: ignore[attr-defined]
            continue
        break
    r = _resolve(btf, t)
    if r.kind != abi.BTF_KIND_INT or r.size != 1 or r.encoding & abi.BTF_INT_BOOL:  # type: ignore[attr-defined]
        return None
    return "str" if t.kind == abi.BTF_KIND_INT and t.name == "char" else "bytes"


def field_names(names: list[str]) -> list[str]:
    """Record field names for C member names, valid for a named tuple: ``class`` -> ``class_``, ``__pad`` ->
    ``pad_``, an anonymous (or clashing) member at index i -> ``field<i>``."""
    out: list[str] = []
    for i, n in enumerate(names):
        if keyword.iskeyword(n) or n.startswith("_"):
            n = n.lstrip("_") + "_"
        if not n.isidentifier() or n == "_" or n in out:
            n = f"field{i}"
        out.append(n)
    return out


def decode_str(b: bytes) -> str:
    """A C string from a char array: the bytes before the first NUL (undecodable bytes kept as surrogates)."""
    return b.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _encode_text(x: Any, n: int) -> bytes:
    b = x.encode("utf-8", "surrogateescape") if isinstance(x, str) else bytes(x)
    if len(b) > n:
        raise CodecError(f"{x!r} is {len(b)} bytes, longer than the {n}-byte array")
    return b


def _seq(x: Any, n: int) -> Any:
    if isinstance(x, (list, tuple)) and len(x) == n:
        return x
    try:
        x = list(x)
    except TypeError:
        raise CodecError(f"expected a sequence of {n} items, got {x!r}") from None
    if len(x) > n:
        raise CodecError(f"{len(x)} items do not fit an array of {n}")
    raise CodecError(f"expected {n} items, got {len(x)}")


class _Compiler:
    """Compiles one top-level type into a flat struct format and generated pack/unpack functions."""

    def __init__(self, btf: BTF, records: Mapping[int, Callable[..., Any]] | None = None):
        self.btf = btf
        self.order = "<" if btf.byteorder == "little" else ">"
        self.records: dict[int, Any] = dict(records or {})
        self.sub: dict[int, Codec] = {}

    # --- entry ---------------------------------------------------------------------------------------------

    def codec(self, t: Type) -> Codec:
        scalar = self._scalar_code(t)
        if scalar is not None:
            codec = struct_codec(self.order + scalar if self.order != _native_order() else scalar)
            wrap = self.enum_class(t)
            if wrap is None:
                return codec
            unpack = codec.unpack_from
            return Codec(codec.size, codec.pack_into, lambda buf, off: wrap(unpack(buf, off)), _describe(t))
        if t.kind == abi.BTF_KIND_UNION:
            return self._union_codec(t)
        return _Flat(self, t).build()

    def size_of(self, t: Type) -> int:
        return self.btf.size_of(t)

    def _scalar_code(self, t: Type) -> str | None:
        k = t.kind
        if k in (abi.BTF_KIND_INT, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64):
            if _int_bits(t)[0]:
                return None
            if k == abi.BTF_KIND_INT and t.encoding & abi.BTF_INT_BOOL and t.size == 1:  # type: ignore[attr-defined]
                return "?"
            return _INT_CODES.get((t.size, bool(t.signed)))  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_FLOAT:
            return _FLOAT_CODES.get(t.size)  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_PTR:
            return "Q" if self.btf.ptr_size == 8 else "I"
        return None

    def record(self, t: Type, names: list[str]) -> Any:
        rec = self.records.get(t.id)
        if rec is None:
            base = t.name.lstrip(".") or f"anon_{t.kind_name.lower()}"
            typename = base if base.isidentifier() and not keyword.iskeyword(base) else f"{t.kind_name.lower()}_{t.id}"
            made: Any = namedtuple(typename, field_names(names))  # type: ignore[misc]
            self.records[t.id] = rec = made
        return rec

    def enum_class(self, t: Type) -> Callable[[int], Any] | None:
        """The caller's wrapper for the values of enum ``t`` (from ``records``), if any."""
        return self.records.get(t.id) if t.kind in (abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64) else None

    def _union_codec(self, t: Type) -> Codec:
        cached = self.sub.get(t.id)
        if cached is not None:
            return cached
        size = t.size  # type: ignore[attr-defined]
        members = t.members  # type: ignore[attr-defined]
        rec = self.record(t, [m.name for m in members])
        parts: list[tuple[int, Codec | None, int, int, bool]] = []  # (byte offset, codec, bit shift, bits, signed)
        for m in members:
            mt = _resolve(self.btf, self.btf[m.type_id])
            bits = m.bitfield_size or _int_bits(mt)[0]
            if bits:
                parts.append((m.bit_offset, None, 0, bits, bool(getattr(mt, "signed", False))))
            else:
                parts.append((m.byte_offset, self.codec(mt), 0, 0, False))
        sizes = [(c.size if c is not None else (o + bits + 7) // 8) for o, c, _, bits, _ in parts]
        new = tuple.__new__
        order: Literal["little", "big"] = "little" if self.order == "<" else "big"

        def unpack_from(buf: Any, off: int) -> Any:
            vals = []
            for o, c, _, bits, signed in parts:
                if c is not None:
                    vals.append(c.unpack_from(buf, off + o))
                else:
                    raw = int.from_bytes(bytes(memoryview(buf)[off:off + size]), order)
                    v = (raw >> o) & ((1 << bits) - 1)
                    if signed and v >> (bits - 1):
                        v -= 1 << bits
                    vals.append(v)
            return new(rec, vals)

        def pack_into(buf: Any, off: int, x: Any) -> None:
            if isinstance(x, (bytes, bytearray, memoryview)) and len(x) == size:
                memoryview(buf)[off:off + size] = bytes(x)
                return
            if isinstance(x, dict):
                unknown = set(x) - set(rec._fields)
                if unknown:
                    raise CodecError(f"union {t.name or '<anon>'} has no member {sorted(unknown)[0]!r}")
                x = tuple(x.get(n) for n in rec._fields)
            elif not isinstance(x, (tuple, list)) or len(x) != len(parts):
                raise CodecError(f"union {t.name or '<anon>'}: expected a {rec.__name__} record, a dict of "
                                 f"members or {size} bytes, got {x!r}")
            memoryview(buf)[off:off + size] = bytes(size)
            chosen = -1
            for i, v in enumerate(x):
                if v is not None and (chosen < 0 or sizes[i] > sizes[chosen]):
                    chosen = i
            if chosen < 0:
                return
            o, c, _, bits, _ = parts[chosen]
            if c is not None:
                c.pack_into(buf, off + o, x[chosen])
            else:
                raw = int.from_bytes(bytes(memoryview(buf)[off:off + size]), order)
                raw |= (x[chosen] & ((1 << bits) - 1)) << o
                memoryview(buf)[off:off + size] = raw.to_bytes(size, order)

        codec = Codec(size, pack_into, unpack_from, f"union {t.name or '<anon>'}")
        self.sub[t.id] = codec
        return codec


def _native_order() -> str:
    import sys

    return "<" if sys.byteorder == "little" else ">"


class _Flat:
    """Lays a struct/array/datasec out as one struct format of non-overlapping leaves and generates the
    functions that turn the unpacked tuple into nested values and back."""

    def __init__(self, comp: _Compiler, top: Type):
        self.c, self.top = comp, top
        self.fmt: list[str] = []
        self.pos = 0          # next free byte
        self.slot = 0         # next tuple index of unpack's result
        self.env: dict[str, Any] = {"_new": tuple.__new__, "_str": decode_str, "_text": _encode_text,
                                    "_seq": _seq, "_fb": int.from_bytes, "CodecError": CodecError}
        self.dec: list[str] = []   # statements before the return
        self.enc: list[str] = []   # statements before the pack call
        self.args: list[str] = []  # pack arguments, in leaf order
        self.tmp = 0

    def name(self, prefix: str, value: Any = None) -> str:
        self.tmp += 1
        n = f"{prefix}{self.tmp}"
        if value is not None:
            self.env[n] = value
        return n

    def leaf(self, code: str, size: int, offset: int, count: int = 1) -> int:
        if offset < self.pos:
            raise BTFError(f"{_describe(self.top)}: field at byte {offset} overlaps the previous one")
        if offset > self.pos:
            self.fmt.append(f"{offset - self.pos}x")
        self.fmt.append(code)
        self.pos = offset + size
        slot = self.slot
        self.slot += count
        return slot

    def build(self) -> Codec:
        top = self.top
        size = self.c.size_of(top)
        expr = self.value(top, 0, "x")
        if size > self.pos:
            self.fmt.append(f"{size - self.pos}x")
        s = struct.Struct(self.c.order + "".join(self.fmt))
        if s.size != size:
            raise BTFError(f"{_describe(top)}: laid out in {s.size} bytes, BTF says {size}")
        self.env["_unpack"], self.env["_pack"] = s.unpack_from, s.pack_into
        flat = self.flat_record(expr)
        if flat is not None:  # the record's fields are exactly the unpacked tuple: no regrouping
            expr = f"_new({flat}, _unpack(buf, off))"
        dec_body = "".join(f"    {line}\n" for line in self.dec)
        enc_body = "".join(f"    {line}\n" for line in self.enc)
        src = (f"def unpack_from(buf, off):\n    v = _unpack(buf, off)\n{dec_body}    return {expr}\n\n"
               f"def pack_into(buf, off, x):\n{enc_body}    _pack(buf, off, {', '.join(self.args)})\n")
        ns = dict(self.env)
        exec(compile(src, f"<btf codec {_describe(top)}>", "exec"), ns)  # noqa: S102 - generated from BTF
        codec = Codec(size, ns["pack_into"], ns["unpack_from"], _describe(top))
        if flat is not None:
            codec.flat = (s.unpack_from, self.env[flat])
        return codec

    def flat_record(self, expr: str) -> str | None:
        """The record class name when ``expr`` builds it straight from every unpacked slot in order."""
        if self.dec or not expr.startswith("_new(_R"):
            return None
        rt = expr[5:expr.index(",")]
        slots = ", ".join(f"v[{i}]" for i in range(self.slot))
        return rt if expr == f"_new({rt}, ({slots}{',' if self.slot == 1 else ''}))" else None

    # --- one value at a byte offset: returns the decode expression, appends the encode arguments -------------

    def value(self, t: Type, off: int, x: str) -> str:
        c, btf = self.c, self.c.btf
        t = _resolve(btf, t)
        code = c._scalar_code(t)
        k = t.kind
        if code is not None:
            slot = self.leaf(code, struct.calcsize(code), off)
            self.args.append(x)
            return self.wrap(t, f"v[{slot}]")
        if k == abi.BTF_KIND_INT:  # 128-bit integers and integers carrying their own bit offset
            return self.bitfields([(t.offset, t.bits, t.signed, x)], off, t.size)[0]  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_ARRAY:
            return self.array(t, off, x)
        if k in (abi.BTF_KIND_STRUCT, abi.BTF_KIND_DATASEC):
            return self.struct(t, off, x)
        if k == abi.BTF_KIND_UNION:
            sub = c._union_codec(t)
            return self.nested(sub, off, x)
        size = btf.size_of(t)  # floats of odd sizes and anything else with a size: raw bytes
        slot = self.leaf(f"{size}s", size, off)
        self.args.append(f"_text({x}, {size})")
        return f"v[{slot}]"

    def wrap(self, t: Type, expr: str) -> str:
        """``expr`` (an int) wrapped in the caller's enum class for ``t``, when one was given."""
        wrap = self.c.enum_class(t)
        return expr if wrap is None else f"{self.name('_E', wrap)}({expr})"

    def nested(self, sub: Codec, off: int, x: str) -> str:
        """A separately compiled codec (a union) stored as one bytes leaf."""
        slot = self.leaf(f"{sub.size}s", sub.size, off)
        dec, enc = self.name("_dec", sub.unpack_from), self.name("_enc", sub.encode)
        self.args.append(f"{enc}({x})")
        return f"{dec}(v[{slot}], 0)"

    def array(self, t: Type, off: int, x: str) -> str:
        btf = self.c.btf
        n, elem = t.nelems, t.type  # type: ignore[attr-defined]
        if n == 0:
            return "[]"
        text = _char_array_kind(btf, elem)
        if text is not None:
            slot = self.leaf(f"{n}s", n, off)
            self.args.append(f"_text({x}, {n})")
            return f"_str(v[{slot}])" if text == "str" else f"v[{slot}]"
        r = _resolve(btf, elem)
        code = self.c._scalar_code(r)
        if code is not None:
            esize = struct.calcsize(code)
            slot = self.leaf(f"{n}{code}", n * esize, off, n)
            self.args.append(f"*_seq({x}, {n})")
            wrap = self.c.enum_class(r)
            if wrap is not None:
                return f"list(map({self.name('_E', wrap)}, v[{slot}:{slot + n}]))"
            return f"list(v[{slot}:{slot + n}])"
        esize = btf.size_of(r)
        seq = self.name("_a")
        self.enc.append(f"{seq} = _seq({x}, {n})")
        items = [self.value(r, off + i * esize, f"{seq}[{i}]") for i in range(n)]
        return "[" + ", ".join(items) + "]"

    def struct(self, t: Type, off: int, x: str) -> str:
        btf = self.c.btf
        if t.kind == abi.BTF_KIND_DATASEC:
            members = [(btf[v.type_id].name, v.type_id, v.offset * 8, 0) for v in t.vars]  # type: ignore[attr-defined]
        else:
            members = [(m.name, m.type_id, m.bit_offset, m.bitfield_size)
                       for m in t.members]  # type: ignore[attr-defined]
        rec = self.c.record(t, [m[0] for m in members])
        norm = self.name("_norm", _normaliser(rec, t, [self.zero(btf[m[1]]) for m in members]))
        rt = self.name("_R", rec)
        var = self.name("_s")
        self.enc.append(f"{var} = {x} if type({x}) is {rt} else {norm}({x})")
        exprs: list[str] = [""] * len(members)
        order = sorted(range(len(members)), key=lambda i: members[i][2])
        run: list[tuple[int, int, int, bool, str]] = []  # pending bitfields: (index, bit offset, bits, signed, x)

        def flush() -> None:
            if not run:
                return
            lo = min(b for _, b, _, _, _ in run) // 8
            hi = (max(b + n for _, b, n, _, _ in run) + 7) // 8
            outs = self.bitfields([(b - lo * 8, n, s, xx) for _, b, n, s, xx in run], off + lo, hi - lo)
            for (i, _, _, _, _), e in zip(run, outs):
                exprs[i] = self.wrap(_resolve(btf, btf[members[i][1]]), e)
            run.clear()

        for i in order:
            name, tid, bit_off, bits = members[i]
            mt = _resolve(btf, btf[tid])
            if not bits:
                bits, own = _int_bits(mt)
                bit_off += own
            if bits:
                if run and bit_off // 8 >= (max(b + n for _, b, n, _, _ in run) + 7) // 8:
                    flush()
                run.append((i, bit_off, bits, bool(getattr(mt, "signed", False)), f"{var}[{i}]"))
                continue
            flush()
            if bit_off % 8:
                raise BTFError(f"{_describe(t)}: member {name!r} is not byte-aligned")
            exprs[i] = self.value(mt, off + bit_off // 8, f"{var}[{i}]")
        flush()
        return f"_new({rt}, ({', '.join(exprs)}{',' if len(exprs) == 1 else ''}))"

    def bitfields(self, fields: list[tuple[int, int, bool, str]], off: int, nbytes: int) -> list[str]:
        """Integers at bit offsets inside ``nbytes`` bytes at ``off``: one bytes leaf, shifts and masks."""
        little = self.c.order == "<"
        slot = self.leaf(f"{nbytes}s", nbytes, off)
        word = self.name("_w")
        self.dec.append(f"{word} = _fb(v[{slot}], {'little' if little else 'big'!r})")
        outs, parts = [], []
        for bit, bits, signed, x in fields:
            shift = bit if little else nbytes * 8 - bit - bits
            mask = (1 << bits) - 1
            e = f"(({word} >> {shift}) & {mask:#x})"
            if signed:
                sign = 1 << (bits - 1)
                e = f"(({e} ^ {sign:#x}) - {sign:#x})"
            outs.append(e)
            parts.append(f"(({x}) & {mask:#x}) << {shift}")
        self.args.append(f"({' | '.join(parts)}).to_bytes({nbytes}, {'little' if little else 'big'!r})")
        return outs

    # --- zero values (members left out of a dict) --------------------------------------------------------

    def zero(self, t: Type) -> Any:
        btf = self.c.btf
        t = _resolve(btf, t)
        k = t.kind
        if k in (abi.BTF_KIND_INT, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64, abi.BTF_KIND_PTR):
            if k == abi.BTF_KIND_INT and t.encoding & abi.BTF_INT_BOOL:  # type: ignore[attr-defined]
                return False
            return 0
        if k == abi.BTF_KIND_FLOAT:
            return 0.0
        if k == abi.BTF_KIND_ARRAY:
            text = _char_array_kind(btf, t.type)  # type: ignore[attr-defined]
            if text is not None:
                return "" if text == "str" else bytes(t.nelems)  # type: ignore[attr-defined]
            return [self.zero(t.type) for _ in range(t.nelems)]  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_STRUCT:
            rec = self.c.record(t, [m.name for m in t.members])  # type: ignore[attr-defined]
            return tuple.__new__(rec, [self.zero(btf[m.type_id]) for m in t.members])  # type: ignore[attr-defined]
        if k == abi.BTF_KIND_UNION:
            return None
        return bytes(btf.size_of(t))


def _normaliser(rec: Any, t: Type, zeros: list[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """Accept a record of another class, a tuple/list of the right length, or a dict by member name."""
    fields = rec._fields  # type: ignore[attr-defined]
    n = len(fields)
    index = {f: i for i, f in enumerate(fields)}

    def norm(x: Any) -> tuple[Any, ...]:
        if isinstance(x, (tuple, list)) and len(x) == n:
            return tuple(x)
        if isinstance(x, dict):
            out = list(zeros)
            for key, v in x.items():
                i = index.get(key)
                if i is None:
                    raise CodecError(f"{_describe(t)} has no member {key!r} (members: {', '.join(fields)})")
                out[i] = v
            return tuple(out)
        raise CodecError(f"{_describe(t)}: expected a {rec.__name__} record, a tuple of {n} items or a dict "
                         f"of members, got {x!r}")
    return norm
