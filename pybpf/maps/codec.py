"""Codecs turn map keys, map values and ring records between Python objects and the kernel's bytes.

A codec is chosen once per map (or reader): raw bytes, a ``struct`` format (``"I"``, ``"<IQ"``, optionally with
field names for a named tuple), a ctypes type, a file-descriptor codec for maps holding fds, an LPM trie key, or
a codec compiled from BTF (:mod:`pybpf.maps.btfcodec`).  Every codec offers the same plain callables so hot
paths bind them once: ``pack_into(buf, offset, obj)``, ``unpack_from(buf, offset)``, ``encode(obj)``,
``decode(buf)`` and ``decode_array(buf, count, stride)``; :meth:`Codec.writer`/:meth:`Codec.reader` return the
fastest closure over one fixed buffer (a cast ``memoryview`` for native scalars).
"""
from __future__ import annotations

import functools
import struct
from collections import namedtuple
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import CodecError

if TYPE_CHECKING:
    import ipaddress

_BYTEORDER: Any = "little" if struct.pack("=I", 1)[0] == 1 else "big"
_NATIVE_PREFIX = ("", "@", "=", "<" if _BYTEORDER == "little" else ">")
_CASTABLE = frozenset("bBhHiIlLqQfd?")

PackInto = Callable[[Any, int, Any], None]
UnpackFrom = Callable[[Any, int], Any]


class Codec:
    """Converts one key/value/record type.  ``size`` is its size in bytes; ``cast`` is the ``memoryview``
    format when the codec is a single native scalar (so fast paths index a cast view instead of unpacking);
    ``flat`` is ``(struct_unpack_from, record_class)`` when a value is ``tuple.__new__(record_class,
    struct_unpack_from(buf, offset))`` (so hot loops can inline it)."""

    __slots__ = ("size", "pack_into", "unpack_from", "cast", "flat", "description", "_array")

    def __init__(self, size: int, pack_into: PackInto, unpack_from: UnpackFrom, description: str = "", *,
                 cast: str | None = None, decode_array: Callable[[Any, int, int], list[Any]] | None = None):
        self.size, self.pack_into, self.unpack_from = size, pack_into, unpack_from
        self.description, self.cast, self._array = description, cast, decode_array
        self.flat: tuple[UnpackFrom, type] | None = None

    def __repr__(self) -> str:
        return f"<Codec {self.description or '?'} size={self.size}>"

    def encode(self, obj: Any) -> bytes:
        """``obj`` as ``size`` bytes."""
        buf = bytearray(self.size)
        self.pack_into(buf, 0, obj)
        return bytes(buf)

    def decode(self, buf: Any) -> Any:
        """The object stored in the first ``size`` bytes of ``buf``."""
        return self.unpack_from(buf, 0)

    def decode_array(self, buf: Any, count: int, stride: int = 0) -> list[Any]:
        """``count`` objects stored every ``stride`` bytes (default ``size``) from the start of ``buf``."""
        stride = stride or self.size
        if self._array is not None:
            return self._array(buf, count, stride)
        unpack = self.unpack_from
        return [unpack(buf, off) for off in range(0, count * stride, stride)]

    def writer(self, buf: Any) -> Callable[[Any], None]:
        """A one-argument callable storing an object at the start of the writable buffer ``buf``."""
        if self.cast is not None:
            view = cast_view(memoryview(buf)[:self.size], self.cast)

            def put(obj: Any) -> None:
                view[0] = obj
            return put
        pack = self.pack_into

        def put_packed(obj: Any) -> None:
            pack(buf, 0, obj)
        return put_packed

    def reader(self, buf: Any) -> Callable[[], Any]:
        """A zero-argument callable decoding the object at the start of ``buf`` (read each call)."""
        if self.cast is not None:
            return functools.partial(cast_view(memoryview(buf)[:self.size], self.cast).__getitem__, 0)
        return functools.partial(self.unpack_from, buf, 0)


def cast_view(view: Any, fmt: str) -> memoryview:
    """``memoryview(view).cast(fmt)`` for a format only known at run time."""
    return memoryview(view).cast(fmt)  # type: ignore[call-overload,no-any-return]


# --- raw bytes --------------------------------------------------------------------------------------------


def raw_codec(size: int) -> Codec:
    """Bytes in, bytes out.  On input an int is accepted as a native-endian integer of ``size`` bytes (when
    ``size`` is 1, 2, 4 or 8), and any bytes-like object of exactly ``size`` bytes."""

    def pack_into(buf: Any, off: int, obj: Any) -> None:
        if isinstance(obj, int) and not isinstance(obj, bool) and size in (1, 2, 4, 8):
            try:
                obj = obj.to_bytes(size, _BYTEORDER, signed=obj < 0)
            except OverflowError:
                raise CodecError(f"{obj} does not fit in {size} bytes") from None
        try:
            mv = memoryview(obj)
        except TypeError:
            raise CodecError(f"expected {size} bytes, got {type(obj).__name__}") from None
        if mv.nbytes != size:
            raise CodecError(f"expected {size} bytes, got {mv.nbytes}")
        memoryview(buf)[off:off + size] = mv.cast("B")

    def unpack_from(buf: Any, off: int) -> bytes:
        return bytes(memoryview(buf)[off:off + size])

    def array(buf: Any, count: int, stride: int) -> list[bytes]:
        b = bytes(memoryview(buf)[:count * stride])
        return [b[i:i + size] for i in range(0, count * stride, stride)]

    return Codec(size, pack_into, unpack_from, f"bytes[{size}]", decode_array=array)


# --- struct formats ---------------------------------------------------------------------------------------


def record_type(names: str | Sequence[str] | type, typename: str = "Record") -> Any:
    """A named-tuple class from field names (``"pid comm"`` or a list) or an existing tuple subclass."""
    if isinstance(names, type):
        if not issubclass(names, tuple):
            raise CodecError(f"{names.__name__} is not a tuple subclass (use typing.NamedTuple)")
        return names
    return namedtuple(typename, names)  # type: ignore[misc]


def struct_codec(fmt: str, size: int | None = None, names: str | Sequence[str] | type | None = None) -> Codec:
    """A ``struct`` format.  One-field formats decode to a scalar; others to a tuple, or to a named tuple when
    ``names`` gives its fields (or its class)."""
    try:
        s = struct.Struct(fmt)
    except struct.error as e:
        raise CodecError(f"bad struct format {fmt!r}: {e}") from None
    if size is not None and s.size != size:
        raise CodecError(f"struct format {fmt!r} is {s.size} bytes but the map wants {size}")
    nfields = len(s.unpack(bytes(s.size)))
    spack, sunpack, siter = s.pack_into, s.unpack_from, s.iter_unpack
    if nfields == 1 and names is None:
        code = fmt.lstrip("@=<>!")
        cast = code if fmt[:len(fmt) - len(code)] in _NATIVE_PREFIX and code in _CASTABLE else None

        def unpack1(buf: Any, off: int) -> Any:
            return sunpack(buf, off)[0]

        def array1(buf: Any, count: int, stride: int) -> list[Any]:
            if cast is not None and stride % s.size == 0:
                return cast_view(memoryview(buf).cast("B")[:count * stride], cast)[::stride // s.size].tolist()
            return [sunpack(buf, o)[0] for o in range(0, count * stride, stride)]

        return Codec(s.size, spack, unpack1, fmt, cast=cast, decode_array=array1)

    rec = record_type(names) if names is not None else None
    if rec is not None and len(getattr(rec, "_fields", ())) not in (0, nfields):
        raise CodecError(f"{rec.__name__} has {len(rec._fields)} fields but {fmt!r} has {nfields}")

    def pack_tuple(buf: Any, off: int, obj: Any) -> None:
        spack(buf, off, *obj)

    if rec is None:
        def array_t(buf: Any, count: int, stride: int) -> list[Any]:
            if stride == s.size:
                return list(siter(memoryview(buf)[:count * stride]))
            return [sunpack(buf, o) for o in range(0, count * stride, stride)]

        return Codec(s.size, pack_tuple, sunpack, fmt, decode_array=array_t)

    new = tuple.__new__

    def unpack_rec(buf: Any, off: int) -> Any:
        return new(rec, sunpack(buf, off))

    def array_rec(buf: Any, count: int, stride: int) -> list[Any]:
        if stride == s.size:
            return [new(rec, t) for t in siter(memoryview(buf)[:count * stride])]
        return [new(rec, sunpack(buf, o)) for o in range(0, count * stride, stride)]

    codec = Codec(s.size, pack_tuple, unpack_rec, f"{rec.__name__}{fmt!r}", decode_array=array_rec)
    codec.flat = (sunpack, rec)
    return codec


# --- ctypes ------------------------------------------------------------------------------------------------


def ctypes_codec(ctype: type, size: int | None = None) -> Codec:
    """A ctypes type: a simple one (``ctypes.c_uint32``, decoded to its ``.value``) or a Structure/Union/Array
    (decoded to a copy of the ctypes object; encoded from one, or from what its constructor accepts)."""
    import ctypes  # here: only ctypes codecs need it (it costs start-up time)

    n = ctypes.sizeof(ctype)
    if size is not None and n != size:
        raise CodecError(f"{ctype.__name__} is {n} bytes but the map wants {size}")
    simple = issubclass(ctype, ctypes._SimpleCData)  # type: ignore[attr-defined]
    from_copy = ctype.from_buffer_copy  # type: ignore[attr-defined]

    def pack_into(buf: Any, off: int, obj: Any) -> None:
        if not isinstance(obj, ctype):
            try:
                obj = ctype(obj) if simple or not isinstance(obj, (tuple, list)) else ctype(*obj)
            except (TypeError, ValueError) as e:
                raise CodecError(f"cannot make a {ctype.__name__} from {obj!r}: {e}") from None
        memoryview(buf)[off:off + n] = memoryview(obj).cast("B")

    if simple:
        def unpack_simple(buf: Any, off: int) -> Any:
            return from_copy(buf, off).value
        return Codec(n, pack_into, unpack_simple, ctype.__name__)
    return Codec(n, pack_into, from_copy, ctype.__name__)


# --- file descriptors (prog/perf/cgroup arrays, map-in-map, sockmap, storage keys) ------------------------


def fileno_of(obj: Any) -> int:
    """The fd behind ``obj``: an int, or an object with ``fd`` (Map, Program, FD) or ``fileno()`` (sockets)."""
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    fd = getattr(obj, "fd", None)
    if isinstance(fd, int):
        return fd
    fileno = getattr(obj, "fileno", None)
    if callable(fileno):
        return int(fileno())
    raise CodecError(f"expected a file descriptor, a Map/Program/FD or an object with fileno(), got {obj!r}")


def fd_codec(size: int = 4) -> Codec:
    """Writes file descriptors (from ints, Maps, Programs, sockets...), reads back what the kernel reports
    (an object id for prog/map arrays, a socket cookie for sockmaps)."""
    s = struct.Struct("=I" if size == 4 else "=Q")
    spack, sunpack = s.pack_into, s.unpack_from

    def pack_into(buf: Any, off: int, obj: Any) -> None:
        spack(buf, off, fileno_of(obj))

    def unpack_from(buf: Any, off: int) -> int:
        return sunpack(buf, off)[0]

    return Codec(s.size, pack_into, unpack_from, "fd")


# --- LPM trie keys ----------------------------------------------------------------------------------------


class LpmKey(tuple):
    """An LPM trie key: ``prefixlen`` bits of ``data`` (bytes, network order).  :meth:`network` gives it as an
    :mod:`ipaddress` network when ``data`` is 4 or 16 bytes."""

    __slots__ = ()

    def __new__(cls, prefixlen: int, data: bytes) -> LpmKey:
        return tuple.__new__(cls, (prefixlen, bytes(data)))

    @property
    def prefixlen(self) -> int:
        """Number of significant leading bits."""
        return self[0]

    @property
    def data(self) -> bytes:
        """The address bytes."""
        return self[1]

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The key as ``ipaddress.ip_network`` (host bits beyond the prefix are cleared)."""
        import ipaddress

        return ipaddress.ip_network((self.data, self.prefixlen), strict=False)

    def __repr__(self) -> str:
        if len(self.data) in (4, 16):
            return f"LpmKey({self.network()})"
        return f"LpmKey({self.prefixlen}, {self.data.hex()})"


def lpm_key(value: Any, data_size: int) -> LpmKey:
    """An :class:`LpmKey` from ``"10.0.0.0/8"``, ``"fe80::1"`` (full prefix), an ``ipaddress`` network or
    address, or ``(prefixlen, address)`` where the address is bytes, an int or an ``ipaddress`` address."""
    import ipaddress  # here: only LPM trie keys need it (it costs start-up time)

    if isinstance(value, LpmKey):
        prefixlen, data = value
    elif isinstance(value, tuple) and len(value) == 2:
        prefixlen, addr = value
        if isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            data = addr.packed
        elif isinstance(addr, int):
            data = addr.to_bytes(data_size, "big")
        elif isinstance(addr, str):
            data = ipaddress.ip_address(addr).packed
        else:
            data = bytes(addr)
    elif isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        prefixlen, data = value.prefixlen, value.network_address.packed
    elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        prefixlen, data = value.max_prefixlen, value.packed
    elif isinstance(value, str):
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError as e:
            raise CodecError(f"bad LPM key {value!r}: {e}") from None
        prefixlen, data = net.prefixlen, net.network_address.packed
    else:
        raise CodecError(f"cannot make an LPM trie key from {value!r}: give 'addr/len', an ipaddress network or "
                         f"(prefixlen, address)")
    if len(data) != data_size:
        raise CodecError(f"LPM key {value!r} has {len(data)} address bytes but the trie wants {data_size}")
    if not 0 <= prefixlen <= 8 * data_size:
        raise CodecError(f"LPM key {value!r}: prefix length {prefixlen} outside 0..{8 * data_size}")
    return LpmKey(prefixlen, data)


def lpm_codec(key_size: int) -> Codec:
    """Keys of an LPM trie (``struct bpf_lpm_trie_key``: host-order u32 prefixlen, then the address bytes);
    see :func:`lpm_key` for what is accepted.  Decodes to :class:`LpmKey`."""
    data_size = key_size - 4
    if data_size <= 0:
        raise CodecError(f"LPM trie keys need more than 4 bytes, the map has {key_size}")
    hdr = struct.Struct(f"=I{data_size}s")
    hpack, hunpack = hdr.pack_into, hdr.unpack_from

    def pack_into(buf: Any, off: int, obj: Any) -> None:
        k = lpm_key(obj, data_size)
        hpack(buf, off, k[0], k[1])

    def unpack_from(buf: Any, off: int) -> LpmKey:
        return LpmKey(*hunpack(buf, off))

    return Codec(key_size, pack_into, unpack_from, f"lpm[{data_size}]")


# --- choosing a codec -------------------------------------------------------------------------------------

CodecSpec = Any
"""What users pass to choose a codec: a :class:`Codec`, a struct format, ``(format, names)``, a ctypes type,
the string ``"bytes"``, or None (let the map decide: BTF when it has some, else raw bytes)."""


def _is_ctype(spec: type) -> bool:
    """A ctypes type (a simple one, a Structure, Union or Array)."""
    import ctypes

    simple = ctypes._SimpleCData  # type: ignore[attr-defined]
    return issubclass(spec, (simple, ctypes.Structure, ctypes.Union, ctypes.Array))


def codec_for(spec: CodecSpec, size: int) -> Codec:
    """The codec for a user's choice (see :data:`CodecSpec`); None gives raw bytes."""
    if spec is None or spec == "bytes" or spec is bytes:
        return raw_codec(size)
    if isinstance(spec, Codec):
        if spec.size != size:
            raise CodecError(f"{spec!r} is {spec.size} bytes but the map wants {size}")
        return spec
    if isinstance(spec, str):
        return struct_codec(spec, size)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return struct_codec(spec[0], size, spec[1])
    if isinstance(spec, type) and _is_ctype(spec):
        return ctypes_codec(spec, size)
    raise CodecError(f"cannot convert map keys/values with {spec!r}: give a Codec, a struct format, "
                     f"(format, field names), a ctypes type or None")
