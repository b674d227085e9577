"""Codecs compiled from BTF (no kernel): hypothesis-generated types (nested structs and arrays, bitfields,
unions, char arrays, typedefs) round-trip values and bytes; clang's BTF and gcc's layout of the same C struct
are the oracle for offsets and bitfields."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.btf import (
    BTF, Array, Const, Enum, Enum64, EnumValue, Float, Int, Member, Ptr, Struct, Typedef, Union,
)
from pybpf.errors import CodecError
from pybpf.maps.btfcodec import btf_codec
from pybpf.sys import abi

# --- type descriptions and their BTF ------------------------------------------------------------------------

SCALARS = st.one_of(
    st.tuples(st.just("int"), st.sampled_from([1, 2, 4, 8, 16]), st.booleans()),
    st.just(("bool",)),
    st.tuples(st.just("float"), st.sampled_from([4, 8])),
    st.tuples(st.just("enum"), st.sampled_from([4, 8]), st.booleans()),
    st.just(("ptr",)),
    st.tuples(st.just("chars"), st.integers(1, 12)),
    st.tuples(st.just("bytes"), st.integers(1, 12)),
)


def _extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    bitfields = st.tuples(st.just("bits"), st.sampled_from([4, 8]),
                          st.lists(st.tuples(st.integers(1, 16), st.booleans()), min_size=1, max_size=4))
    return st.one_of(
        st.tuples(st.just("array"), inner, st.integers(1, 3)),
        st.tuples(st.just("struct"), st.lists(st.one_of(inner, bitfields), min_size=1, max_size=4)),
        st.tuples(st.just("union"), st.lists(inner, min_size=1, max_size=3)),
        st.tuples(st.just("typedef"), inner),
        st.tuples(st.just("const"), inner),
    )


TYPES = st.recursive(SCALARS, _extend, max_leaves=10)


class Builder:
    """Adds a type description to a BTF, laid out with C's natural alignment; returns (id, size, align)."""

    def __init__(self) -> None:
        self.btf = BTF()
        self.n = 0
        self.u8 = self.btf.add(Int("unsigned char", 1))
        self.char = self.btf.add(Int("char", 1, abi.BTF_INT_SIGNED))
        self.u32 = self.btf.add(Int("unsigned int", 4))

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def add(self, d: Any) -> tuple[int, int, int]:
        kind, b = d[0], self.btf
        if kind == "int":
            size = d[1]
            return b.add(Int(self.name("i"), size, abi.BTF_INT_SIGNED if d[2] else 0)), size, min(size, 8)
        if kind == "bool":
            return b.add(Int("_Bool", 1, abi.BTF_INT_BOOL)), 1, 1
        if kind == "float":
            return b.add(Float(self.name("f"), d[1])), d[1], d[1]
        if kind == "enum":
            size, signed = d[1], d[2]
            cls = Enum if size == 4 else Enum64
            return b.add(cls(self.name("e"), size, [EnumValue("A", -1 if signed else 1)], signed)), size, size
        if kind == "ptr":
            return b.add(Ptr(0)), 8, 8
        if kind in ("chars", "bytes"):
            elem = self.char if kind == "chars" else b.add(Typedef("u8", self.u8))
            return b.add(Array(elem, self.u32, d[1])), d[1], 1
        if kind == "array":
            tid, size, align = self.add(d[1])
            return b.add(Array(tid, self.u32, d[2])), size * d[2], align
        if kind in ("typedef", "const"):
            tid, size, align = self.add(d[1])
            return b.add(Typedef(self.name("t"), tid) if kind == "typedef" else Const(tid)), size, align
        if kind == "union":
            parts = [self.add(m) for m in d[1]]
            align = max(p[2] for p in parts)
            size = -(-max(p[1] for p in parts) // align) * align
            members = [Member(f"m{i}", p[0], 0) for i, p in enumerate(parts)]
            return b.add(Union(self.name("u"), size, members)), size, align
        members, off, align = [], 0, 1
        for i, m in enumerate(d[1]):
            if m[0] == "bits":
                unit, fields = m[1], m[2]
                off = -(-off // unit) * unit
                bit, used = off * 8, 0
                for j, (width, signed) in enumerate(fields):
                    width = min(width, unit * 8 - used)
                    if width <= 0:
                        break
                    it = b.add(Int(self.name("bi"), unit, abi.BTF_INT_SIGNED if signed else 0))
                    members.append(Member(f"b{i}_{j}", it, bit + used, width))
                    used += width
                off += unit
                align = max(align, unit)
                continue
            tid, size, a = self.add(m)
            off = -(-off // a) * a
            members.append(Member(f"m{i}", tid, off * 8))
            off += size
            align = max(align, a)
        size = -(-off // align) * align
        return b.add(Struct(self.name("s"), size, members, kflag=1)), size, align


def values_for(btf: BTF, tid: int) -> st.SearchStrategy[Any]:
    """Python values of a (union-free) type, shaped as the codec decodes them."""
    t = btf[tid]
    while t.kind in (abi.BTF_KIND_TYPEDEF, abi.BTF_KIND_CONST):
        t = t.type
    k = t.kind
    if k == abi.BTF_KIND_INT:
        if t.encoding & abi.BTF_INT_BOOL:
            return st.booleans()
        bits = 8 * t.size
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t.signed else st.integers(0, (1 << bits) - 1)
    if k in (abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64):
        bits = 8 * t.size
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t.signed else st.integers(0, (1 << bits) - 1)
    if k == abi.BTF_KIND_FLOAT:
        return st.floats(width=32 if t.size == 4 else 64, allow_nan=False)
    if k == abi.BTF_KIND_PTR:
        return st.integers(0, (1 << 64) - 1)
    if k == abi.BTF_KIND_ARRAY:
        elem, flat = t.type, btf.resolve(t.type)
        if flat.kind == abi.BTF_KIND_INT and flat.size == 1 and not flat.encoding & abi.BTF_INT_BOOL:
            if elem.name == "char":  # char arrays are text, other one-byte integer arrays bytes
                text = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
                return st.text(text, max_size=t.nelems).filter(lambda s: len(s.encode()) <= t.nelems)
            return st.binary(min_size=t.nelems, max_size=t.nelems)
        return st.lists(values_for(btf, t.type_id), min_size=t.nelems, max_size=t.nelems)
    assert k == abi.BTF_KIND_STRUCT
    parts = []
    for m in t.members:
        if m.bitfield_size:
            bits, signed = m.bitfield_size, btf[m.type_id].signed
            parts.append(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed
                         else st.integers(0, (1 << bits) - 1))
        else:
            parts.append(values_for(btf, m.type_id))
    return st.tuples(*parts)


def _has_union(d: Any) -> bool:
    if isinstance(d, list):
        return any(_has_union(x) for x in d)
    return isinstance(d, tuple) and (d[0] == "union" or any(_has_union(x) for x in d[1:]))


# --- properties ------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TYPES, st.data())
def test_bytes_normalise_idempotently(desc: Any, data: st.DataObject) -> None:
    """Any bytes decode without error; encoding the value gives bytes that decode to the same value."""
    b = Builder()
    tid, size, _ = b.add(desc)
    codec = btf_codec(b.btf, tid, size)
    raw = data.draw(st.binary(min_size=size, max_size=size))
    once = codec.encode(codec.decode(raw))
    assert len(once) == size and codec.encode(codec.decode(once)) == once


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TYPES.filter(lambda d: not _has_union(d)), st.data())
def test_values_round_trip(desc: Any, data: st.DataObject) -> None:
    b = Builder()
    tid, size, _ = b.add(desc)
    codec = btf_codec(b.btf, tid, size)
    value = data.draw(values_for(b.btf, tid))
    got = codec.decode(codec.encode(value))
    assert got == value or (isinstance(value, float) and struct.pack("d", got) == struct.pack("d", value))


def test_records_dicts_unions_and_errors() -> None:
    b = Builder()
    tid, size, _ = b.add(("struct", [("int", 4, False), ("chars", 8),
                                     ("union", [("int", 2, False), ("int", 8, True)]),
                                     ("bits", 4, [(3, True), (5, False)])]))
    codec = btf_codec(b.btf, tid, size)
    rec = codec.decode(codec.encode({"m0": 7, "m1": "hi", "m2": {"m1": -2}, "b3_0": -3}))
    assert (rec.m0, rec.m1, rec.m2.m1, rec.m2.m0, rec.b3_0, rec.b3_1) == (7, "hi", -2, 0xFFFE, -3, 0)
    assert codec.decode(codec.encode(rec)) == rec
    assert codec.decode(codec.encode(rec._replace(m2=rec.m2._replace(m1=None, m0=5)))).m2.m0 == 5
    with pytest.raises(CodecError, match="no member 'nope'"):
        codec.encode({"nope": 1})
    with pytest.raises(CodecError, match="longer than"):
        codec.encode({"m1": "far too long"})
    with pytest.raises((CodecError, struct.error)):
        codec.encode({"m0": -1})
    with pytest.raises(CodecError, match="is 1 bytes but the map wants 2|bytes but the map wants"):
        btf_codec(b.btf, b.u8, 2)
    scalar = btf_codec(b.btf, b.u32)
    assert scalar.cast == "I" and scalar.decode(b"\x01\0\0\0") == 1


# --- clang/gcc oracle -----------------------------------------------------------------------------------------

C_TYPES = r"""
struct inner { short s; unsigned char b[3]; };
union u { unsigned int a; unsigned long long b; struct inner in; };
enum color { RED = -1, GREEN = 7 };
struct ev {
    unsigned int pid;
    int ret : 5;
    unsigned int flags : 11;
    unsigned int rest : 16;
    char comm[16];
    struct inner pts[2];
    union u u;
    long long big;
    enum color color;
    unsigned char tail : 1;
    signed char neg : 7;
    double ratio;
    unsigned int grid[2][3];
};
"""
C_MAIN = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
    struct ev e; memset(&e, 0, sizeof e);
    e.pid = 4242; e.ret = -13; e.flags = 2000; e.rest = 65535;
    strcpy(e.comm, "python3");
    e.pts[0].s = -2; e.pts[0].b[0] = 1; e.pts[0].b[1] = 2; e.pts[0].b[2] = 3;
    e.pts[1].s = 30000; e.pts[1].b[2] = 255;
    e.u.b = 0x1122334455667788ULL; e.big = -5; e.color = RED; e.tail = 1; e.neg = -64; e.ratio = 0.25;
    for (int i = 0; i < 2; i++) for (int j = 0; j < 3; j++) e.grid[i][j] = i * 10 + j;
    fwrite(&e, sizeof e, 1, stdout);
    return 0;
}
"""


def test_clang_btf_matches_gcc_layout(tmp_path: Any) -> None:
    clang = shutil.which("clang-19") or shutil.which("clang")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not clang or not gcc:
        pytest.skip("needs clang (BTF) and a host C compiler (layout)")
    d = str(tmp_path)
    with open(os.path.join(d, "ev.c"), "w") as f:
        f.write(C_TYPES + "struct ev keep;\n")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write(C_TYPES + C_MAIN)
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-c", "ev.c", "-o", "ev.o"], cwd=d, check=True)
    subprocess.run([gcc, "-O0", "main.c", "-o", "main"], cwd=d, check=True)
    raw = subprocess.run([os.path.join(d, "main")], capture_output=True, check=True).stdout
    from elftools.elf.elffile import ELFFile

    with open(os.path.join(d, "ev.o"), "rb") as f:
        btf = BTF.parse(ELFFile(f).get_section_by_name(".BTF").data())
    ev = btf.find_one("ev", abi.BTF_KIND_STRUCT)
    codec = btf_codec(btf, ev.id, len(raw))
    e = codec.decode(raw)
    assert (e.pid, e.ret, e.flags, e.rest, e.comm) == (4242, -13, 2000, 65535, "python3")
    assert [(p.s, p.b) for p in e.pts] == [(-2, b"\x01\x02\x03"), (30000, b"\0\0\xff")]
    assert e.u.b == 0x1122334455667788 and e.u.a == 0x55667788
    assert e.u.in_ == (0x7788, b"\x66\x55\x44")  # the member named "in" (a Python keyword)
    assert (e.big, e.color, e.tail, e.neg, e.ratio) == (-5, -1, 1, -64, 0.25)
    assert e.grid == [[0, 1, 2], [10, 11, 12]]
    assert codec.encode(e) == raw
    assert codec.decode(codec.encode(e._asdict())) == e
