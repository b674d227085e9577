"""Codecs turn map keys and values between Python objects and the bytes the kernel stores.

A codec is chosen once per map: raw bytes, a ``struct`` format (``"I"``, ``"<IQ"``), a ctypes type, or a
BTF-typed codec built from the map's BTF.  ``encode`` and ``decode`` are plain callables so the hot path
calls them directly.
"""
from __future__ import annotations

import ctypes
import struct
from typing import Any, Callable


class Codec:
    """Converts one key or value type: ``encode(obj) -> bytes`` and ``decode(bytes) -> obj``."""

    __slots__ = ("size", "encode", "decode", "description")

    def __init__(self, size: int, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any],
                 description: str = ""):
        self.size, self.encode, self.decode, self.description = size, encode, decode, description

    def __repr__(self) -> str:
        return f"<Codec {self.description or '?'} size={self.size}>"


def raw_codec(size: int) -> Codec:
    """Bytes in, bytes out; an int is accepted on input as a native-endian integer of ``size`` bytes."""

    def encode(obj: Any) -> bytes:
        if isinstance(obj, int) and not isinstance(obj, bool) and size in (1, 2, 4, 8):
            return obj.to_bytes(size, _BYTEORDER, signed=obj < 0)
        b = bytes(obj)
        if len(b) != size:
            raise ValueError(f"expected {size} bytes, got {len(b)}")
        return b

    return Codec(size, encode, bytes, f"bytes[{size}]")


def struct_codec(fmt: str, size: int | None = None) -> Codec:
    """A ``struct`` format; one-field formats decode to a scalar, others to a tuple."""
    s = struct.Struct(fmt)
    if size is not None and s.size != size:
        raise ValueError(f"struct format {fmt!r} is {s.size} bytes but the map wants {size}")
    if len(s.unpack(b"\0" * s.size)) == 1:
        unpack_from, pack = s.unpack, s.pack
        return Codec(s.size, pack, lambda b: unpack_from(b)[0], fmt)
    return Codec(s.size, lambda v: s.pack(*v), s.unpack, fmt)


def ctypes_codec(ctype: type, size: int | None = None) -> Codec:
    """A ctypes type (``ctypes.c_uint32`` or a ``ctypes.Structure`` subclass)."""
    n = ctypes.sizeof(ctype)
    if size is not None and n != size:
        raise ValueError(f"{ctype.__name__} is {n} bytes but the map wants {size}")
    simple = issubclass(ctype, ctypes._SimpleCData)  # type: ignore[attr-defined]

    def encode(obj: Any) -> bytes:
        if isinstance(obj, ctype):
            return bytes(obj)
        return bytes(ctype(obj)) if simple else bytes(obj)

    if simple:
        return Codec(n, encode, lambda b: ctype.from_buffer_copy(b).value, ctype.__name__)
    return Codec(n, encode, ctype.from_buffer_copy, ctype.__name__)


def codec_for(spec: Codec | str | type | None, size: int) -> Codec:
    """The codec for a user's choice: a Codec, a struct format, a ctypes type, or None (raw bytes)."""
    if spec is None:
        return raw_codec(size)
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, str):
        return struct_codec(spec, size)
    if isinstance(spec, type) and issubclass(spec, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union,  # type: ignore[attr-defined]
                                                    ctypes.Array)):
        return ctypes_codec(spec, size)
    raise TypeError(f"cannot convert map keys/values with {spec!r}: give a Codec, struct format or ctypes type")


_BYTEORDER: Any = "little" if struct.pack("=I", 1)[0] == 1 else "big"
