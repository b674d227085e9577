"""Malformed BTF and BTF.ext raise BTFError saying what and where -- never IndexError, struct.error,
RecursionError or anything else -- whatever is done with them afterwards (iterate, dump, resolve, write)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.btf import BTF, BTFExt, CoreRelo, Member, Ptr, Struct, Typedef
from pybpf.btf.cdump import format_c
from pybpf.btf.core import Resolver
from pybpf.btf.dump import format_raw
from pybpf.errors import BTFError, LinkError
from test_btf_parse import every_kind

GOOD = every_kind().to_bytes()
HDR = 24


def exercise(data: bytes) -> None:
    """Everything a user might do with BTF bytes; only BTFError may escape."""
    try:
        btf = BTF.parse(data)
        btf.validate()
        list(format_raw(btf))
        format_c(btf)
        for t in btf:
            btf.resolve(t)
            try:
                btf.size_of(t)
                btf.align_of(t)
            except BTFError:
                pass
        BTF.parse(btf.to_bytes())
        btf.find("s")
    except BTFError as e:
        assert str(e)


def patched(fmt: str, off: int, *values: int) -> bytes:
    data = bytearray(GOOD)
    struct.pack_into(fmt, data, off, *values)
    return bytes(data)


@pytest.mark.parametrize("data,msg", [
    (b"", "too short"),
    (b"\x00\x00" + GOOD[2:], "bad BTF magic"),
    (GOOD[:HDR - 4], "header"),
    (patched("<I", 4, 1000), "header length"),
    (patched("<I", 12, 1 << 20), "type section"),          # type_len past the end
    (patched("<I", 20, 1 << 20), "string section"),        # str_len past the end
    (patched("<I", 12, 6), "aligned"),                      # type_len not a multiple of 4
    (patched("<I", HDR + 4, 0x1F << 24), "unknown kind"),   # first type's info
    (patched("<I", HDR + 4, (4 << 24) | 0xFFFF), "vlen"),  # absurd vlen
    (patched("<I", HDR, 1 << 23), "string offset"),         # name past the string section
    (patched("<I", HDR + 8, 4096), None),                   # INT size: odd but well-formed
])
def test_specific_corruptions(data: bytes, msg: str | None) -> None:
    if msg is None:
        exercise(data)
        return
    with pytest.raises(BTFError, match=msg):
        b = BTF.parse(data)
        for _ in b:
            pass


def test_type_id_out_of_range_names_the_type() -> None:
    b = BTF()
    b.add(Ptr(0))
    data = bytearray(b.to_bytes())
    struct.pack_into("<I", data, HDR + 8, 77)  # PTR -> [77]
    with pytest.raises(BTFError, match=r"type \[1\] PTR .* refers to type id 77"):
        BTF.parse(bytes(data))[1]


def test_cycles_are_errors_not_recursion() -> None:
    b = BTF()
    b.add(Typedef("a", 2))
    b.add(Typedef("b", 1))
    b.add(Struct("s", 4, [Member("x", 4)]))
    b.add(Struct("t", 4, [Member("y", 3)]))
    cyclic = BTF.parse(b.to_bytes())
    with pytest.raises(BTFError, match="cyclic"):
        cyclic.resolve(1)
    with pytest.raises(BTFError):
        cyclic.size_of(1)
    with pytest.raises(BTFError):
        cyclic.align_of(3)
    with pytest.raises(BTFError):
        cyclic.validate()
    exercise(cyclic.to_bytes())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(GOOD)))
def test_mutated_blobs_only_raise_btferror(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(GOOD)
    for pos, val in flips:
        data[pos] = val
    exercise(bytes(data))
    exercise(bytes(data[:cut]))


def _ext_sample() -> tuple[BTF, bytes]:
    btf = every_kind()
    ext = BTFExt()
    ext.core_relos["sec"] = [CoreRelo(8, 5, "0:1", 0), CoreRelo(16, 5, "0", 8)]
    data = ext.to_bytes(btf)
    return BTF.parse(btf.to_bytes()), data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4), st.integers(0, 200))
def test_mutated_ext_only_raises_btferror(flips: list[tuple[int, int]], cut: int) -> None:
    btf, good = _ext_sample()
    data = bytearray(good)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    for blob in (bytes(data), bytes(data[:cut])):
        try:
            ext = BTFExt.parse(blob, btf)
        except BTFError:
            continue
        resolver = Resolver(btf, [btf])
        for relos in ext.core_relos.values():
            for r in relos:
                try:
                    resolver.resolve(r)
                except LinkError:
                    pass


def test_ext_errors_say_where() -> None:
    btf, good = _ext_sample()
    with pytest.raises(BTFError, match="bad magic"):
        BTFExt.parse(b"\0\0" + good[2:], btf)
    with pytest.raises(BTFError, match="core_info"):
        BTFExt.parse(good[:-4], btf)
    bad = bytearray(good)
    struct.pack_into("<I", bad, 32, 3)  # record size 3
    with pytest.raises(BTFError, match="record size 3"):
        BTFExt.parse(bytes(bad), btf)
