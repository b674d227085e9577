"""Codecs without BTF: struct formats, raw bytes, ctypes, file descriptors and LPM trie keys (no kernel)."""
from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpf.errors import CodecError
from pybpf.maps.codec import (
    Codec, LpmKey, codec_for, ctypes_codec, fd_codec, fileno_of, lpm_codec, lpm_key, raw_codec, struct_codec,
)


def test_scalar_format_is_castable() -> None:
    c = struct_codec("I", 4)
    assert c.cast == "I" and c.decode(c.encode(7)) == 7 and c.size == 4
    assert struct_codec("=Q").cast == "Q" and struct_codec("<i").cast in ("i", None)
    assert struct_codec(">I").cast is None or struct.pack(">I", 1) == struct.pack("I", 1)
    with pytest.raises(CodecError, match="8 bytes but the map wants 4"):
        struct_codec("Q", 4)
    with pytest.raises(CodecError, match="bad struct format"):
        struct_codec("Z")


def test_tuple_and_named_records() -> None:
    plain = struct_codec("=IQ")
    assert plain.decode(plain.encode((1, 2))) == (1, 2)
    named = struct_codec("=IQ", None, "pid ts")
    rec = named.decode(named.encode((5, 6)))
    assert rec.pid == 5 and rec.ts == 6 and rec == (5, 6) and type(rec).__name__ == "Record"
    assert named.flat is not None and named.flat[1] is type(rec)
    with pytest.raises(CodecError, match="3 fields"):
        struct_codec("=IQ", None, "a b c")


@given(st.lists(st.integers(0, 2 ** 32 - 1), max_size=50), st.sampled_from([4, 8, 16]))
def test_decode_array_with_strides(values: list[int], stride: int) -> None:
    c = struct_codec("I")
    buf = bytearray(len(values) * stride)
    for i, v in enumerate(values):
        c.pack_into(buf, i * stride, v)
    assert c.decode_array(buf, len(values), stride) == values
    named = struct_codec("=I", None, "x")
    assert [r.x for r in named.decode_array(buf, len(values), stride)] == values


def test_writer_and_reader_share_a_buffer() -> None:
    buf = bytearray(8)
    for c in (struct_codec("Q"), struct_codec("=II", None, "a b"), raw_codec(8)):
        put, get = c.writer(buf), c.reader(buf)
        value = {8: 1 << 40}.get(c.size) if c.cast else ((1, 2) if c.flat else b"abcdefgh")
        put(value)
        assert get() == value
    put = struct_codec("I").writer(bytearray(4))
    with pytest.raises((ValueError, TypeError)):
        put(-1)  # the map turns these into CodecError naming the map and side


def test_raw_bytes() -> None:
    c = raw_codec(4)
    assert c.decode(c.encode(b"abcd")) == b"abcd" and c.encode(1) == struct.pack("=I", 1)
    assert c.encode(-1) == b"\xff" * 4 and c.encode(bytearray(b"wxyz")) == b"wxyz"
    with pytest.raises(CodecError, match="expected 4 bytes, got 3"):
        c.encode(b"abc")
    with pytest.raises(CodecError, match="does not fit"):
        c.encode(1 << 40)
    with pytest.raises(CodecError):
        c.encode(object())
    assert raw_codec(3).decode_array(b"abcdefgh", 2, 4) == [b"abc", b"efg"]


def test_ctypes() -> None:
    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint64)]

    c = ctypes_codec(Pair, 16)
    got = c.decode(c.encode((3, 4)))
    assert (got.a, got.b) == (3, 4) and c.decode(c.encode(Pair(5, 6))).b == 6
    s = ctypes_codec(ctypes.c_int16)
    assert s.decode(s.encode(-2)) == -2
    with pytest.raises(CodecError, match="is 16 bytes but the map wants 8"):
        ctypes_codec(Pair, 8)
    assert codec_for(ctypes.c_uint8, 1).decode(b"\x07") == 7


def test_codec_for_choices() -> None:
    assert codec_for(None, 3).description == "bytes[3]" and codec_for("bytes", 3).size == 3
    assert codec_for(("=HH", "lo hi"), 4).decode(b"\x01\x00\x02\x00").hi == 2
    c = struct_codec("I")
    assert codec_for(c, 4) is c
    with pytest.raises(CodecError):
        codec_for(c, 8)
    with pytest.raises(CodecError, match="cannot convert"):
        codec_for(3.5, 4)


def test_fds() -> None:
    with socket.socket() as s:
        assert fileno_of(s) == s.fileno() and fileno_of(7) == 7

        class HasFd:
            fd = 9
        assert fileno_of(HasFd()) == 9
        assert fd_codec(4).encode(s) == struct.pack("=I", s.fileno()) and fd_codec(8).size == 8
    with pytest.raises(CodecError, match="file descriptor"):
        fileno_of("x")


def test_lpm_keys() -> None:
    c = lpm_codec(8)
    assert c.encode("10.1.0.0/16") == struct.pack("=I", 16) + bytes([10, 1, 0, 0])
    for form in ("10.1.0.0/16", ipaddress.ip_network("10.1.0.0/16"), (16, "10.1.0.0"),
                 (16, ipaddress.ip_address("10.1.0.0")), (16, 0x0A010000), (16, bytes([10, 1, 0, 0])),
                 LpmKey(16, bytes([10, 1, 0, 0]))):
        assert c.decode(c.encode(form)) == LpmKey(16, bytes([10, 1, 0, 0]))
    k = c.decode(c.encode("10.1.2.3"))  # an address is a full-length prefix
    assert k.prefixlen == 32 and str(k.network()) == "10.1.2.3/32" and repr(k) == "LpmKey(10.1.2.3/32)"
    assert lpm_key("10.1.2.3/8", 4).data == bytes([10, 0, 0, 0])  # host bits are cleared
    six = lpm_codec(20)
    assert six.decode(six.encode("2001:db8::/32")).network() == ipaddress.ip_network("2001:db8::/32")
    assert repr(lpm_codec(6).decode(struct.pack("=I", 9) + b"\x12\x34")) == "LpmKey(9, 1234)"
    for bad in ("not an address", "fe80::/10", (40, "10.0.0.0"), 3.0):
        with pytest.raises(CodecError):
            c.encode(bad)
    with pytest.raises(CodecError):
        lpm_codec(4)


def test_repr_and_encode_default() -> None:
    c = Codec(2, lambda b, o, v: struct.pack_into("=H", b, o, v), lambda b, o: struct.unpack_from("=H", b, o)[0],
              "u16")
    assert repr(c) == "<Codec u16 size=2>" and c.encode(258) == b"\x02\x01"
    assert c.decode_array(b"\x01\0\x02\0", 2) == [1, 2]
