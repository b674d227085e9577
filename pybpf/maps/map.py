"""Map: a BPF map in the kernel (a live object owning its fd), with a dict-like interface.

Keys and values are converted by a :class:`~pybpf.maps.codec.Codec` chosen once per map (raw bytes by
default; a ``struct`` format, a ctypes type, or a BTF-typed codec), so a lookup is one syscall plus the
conversion -- nothing is allocated per call but the result.
"""
from __future__ import annotations

from typing import Any, Iterator, NamedTuple

from ..sys import abi, syscall
from ..sys.fd import FD
from .codec import Codec, codec_for

_PERCPU_TYPES = frozenset(
    getattr(abi, n) for n in ("BPF_MAP_TYPE_PERCPU_HASH", "BPF_MAP_TYPE_PERCPU_ARRAY", "BPF_MAP_TYPE_LRU_PERCPU_HASH",
                              "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE"))
_KEYLESS_TYPES = frozenset(
    getattr(abi, n) for n in ("BPF_MAP_TYPE_QUEUE", "BPF_MAP_TYPE_STACK", "BPF_MAP_TYPE_BLOOM_FILTER"))


def map_type_of(value: int | str) -> int:
    """A map type from an int or a name: ``"hash"``, ``"percpu_array"`` or ``"BPF_MAP_TYPE_HASH"``."""
    if isinstance(value, int):
        return value
    name = value.upper()
    if not name.startswith("BPF_MAP_TYPE_"):
        name = "BPF_MAP_TYPE_" + name
    try:
        return int(getattr(abi, name))
    except AttributeError:
        known = ", ".join(n[len("BPF_MAP_TYPE_"):].lower() for n in abi._ENUMS["bpf_map_type"])
        raise ValueError(f"unknown map type {value!r}; known: {known}") from None


def possible_cpus() -> int:
    """Number of possible CPUs (the width of per-CPU map values), from /sys/devices/system/cpu/possible."""
    global _POSSIBLE
    if _POSSIBLE is None:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        n = 0
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n = max(n, int(hi or lo) + 1)
        _POSSIBLE = n
    return _POSSIBLE


_POSSIBLE: int | None = None


class MapInfo(NamedTuple):
    """The kernel's view of a map (``struct bpf_map_info``)."""

    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int

    @property
    def type_name(self) -> str:
        """``hash``, ``array``... (the kernel name without ``BPF_MAP_TYPE_``)."""
        try:
            return abi.bpf_map_type(self.type).name[len("BPF_MAP_TYPE_"):].lower()
        except ValueError:
            return str(self.type)


class Map:
    """A BPF map.  Behaves like a dict (``m[k]``, ``m[k] = v``, ``del m[k]``, ``in``, iteration, ``items()``).

    Owns its fd: close it with :meth:`close` or a ``with`` block (or let the garbage collector do it).
    Create one with :meth:`create`, :meth:`from_pin`, :meth:`from_id`, or get it from a loaded object.
    """

    def __init__(self, fd: FD | int, map_type: int, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0, name: str = "", *, key: Codec | str | None = None,
                 value: Codec | str | None = None):
        self._fd = fd if isinstance(fd, FD) else FD(fd)
        self.type, self.key_size, self.value_size = map_type, key_size, value_size
        self.max_entries, self.flags, self.name = max_entries, flags, name
        self.percpu = map_type in _PERCPU_TYPES
        self.keyless = map_type in _KEYLESS_TYPES
        self._stride = (value_size + 7) & ~7
        ncpu = possible_cpus() if self.percpu else 1
        self._ops = syscall.ElemOps(self._fd.fd, key_size, self._stride * ncpu if self.percpu else value_size)
        self.key_codec = codec_for(key, key_size)
        self.value_codec = codec_for(value, value_size)

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, map_type: int | str, key_size: int, value_size: int, max_entries: int, flags: int = 0,
               name: str = "", *, key: Codec | str | None = None, value: Codec | str | None = None,
               inner_map: Map | int | None = None, **create_attrs: Any) -> Map:
        """Create a map (BPF_MAP_CREATE).  ``key``/``value`` choose how keys and values are converted
        (a ``struct`` format such as ``"I"``, a :class:`Codec`, or None for raw bytes).  ``inner_map`` is the
        template of a map-in-map.  Other keywords are BPF_MAP_CREATE fields (``numa_node``, ``btf_fd``...)."""
        mtype = map_type_of(map_type)
        inner_fd = inner_map if isinstance(inner_map, int) else (inner_map.fd if inner_map is not None else 0)
        fd = syscall.map_create(mtype, key_size, value_size, max_entries, flags, name, inner_map_fd=inner_fd,
                                **create_attrs)
        return cls(fd, mtype, key_size, value_size, max_entries, flags, name, key=key, value=value)

    @classmethod
    def from_fd(cls, fd: FD | int, *, key: Codec | str | None = None, value: Codec | str | None = None) -> Map:
        """Wrap an owned map fd, reading its shape from the kernel."""
        owned = fd if isinstance(fd, FD) else FD(fd)
        try:
            info = _info_of(owned.fd)
        except BaseException:
            owned.close()
            raise
        return cls(owned, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags, info.name,
                   key=key, value=value)

    @classmethod
    def from_pin(cls, path: str, **codecs: Any) -> Map:
        """Open a map pinned in bpffs."""
        return cls.from_fd(syscall.obj_get(path), **codecs)

    @classmethod
    def from_id(cls, map_id: int, **codecs: Any) -> Map:
        """Open a map by its kernel id."""
        return cls.from_fd(syscall.fd_by_id("map", map_id), **codecs)

    # --- fd ownership -------------------------------------------------------------------------------------

    @property
    def fd(self) -> int:
        """The map's file descriptor (raises once closed)."""
        return self._fd.fd

    def fileno(self) -> int:
        """Same as :attr:`fd`."""
        return self._fd.fd

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._fd.closed

    def close(self) -> None:
        """Release the map's fd (the kernel frees the map once nothing else holds it)."""
        self._fd.close()

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd.fd}"
        return f"<Map {self.name!r} type={self.type} {state}>"

    # --- element operations ---------------------------------------------------------------------------------

    def _decode_value(self, raw: bytes) -> Any:
        if self.percpu:
            dec, s, n = self.value_codec.decode, self._stride, self.value_size
            return [dec(raw[i:i + n]) for i in range(0, len(raw), s)]
        return self.value_codec.decode(raw)

    def _encode_value(self, value: Any) -> bytes:
        if self.percpu:
            enc = self.value_codec.encode
            if not isinstance(value, (list, tuple)):
                value = [value] * possible_cpus()
            if len(value) != possible_cpus():
                raise ValueError(f"per-CPU value needs {possible_cpus()} entries, got {len(value)}")
            pad = b"\0" * (self._stride - self.value_size)
            return b"".join(enc(v) + pad for v in value)
        return self.value_codec.encode(value)

    def lookup(self, key: Any, default: Any = None, flags: int = 0) -> Any:
        """The value stored at ``key`` or ``default`` (per-CPU maps: a list with one value per CPU)."""
        raw = self._ops.lookup(self.key_codec.encode(key), flags)
        return default if raw is None else self._decode_value(raw)

    get = lookup

    def update(self, key: Any, value: Any, flags: int = abi.BPF_ANY) -> None:
        """Store ``value`` at ``key``; ``flags`` BPF_NOEXIST/BPF_EXIST/BPF_F_LOCK change what is allowed."""
        self._ops.update(self.key_codec.encode(key), self._encode_value(value), flags)

    def delete(self, key: Any) -> bool:
        """Delete ``key``; True if it was there."""
        return self._ops.delete(self.key_codec.encode(key))

    def __getitem__(self, key: Any) -> Any:
        raw = self._ops.lookup(self.key_codec.encode(key))
        if raw is None:
            raise KeyError(key)
        return self._decode_value(raw)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._ops.update(self.key_codec.encode(key), self._encode_value(value), 0)

    def __delitem__(self, key: Any) -> None:
        if not self._ops.delete(self.key_codec.encode(key)):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self._ops.lookup(self.key_codec.encode(key)) is not None

    def raw_keys(self) -> Iterator[bytes]:
        """Every key as bytes.  Survives concurrent deletion: when the current key vanished, the kernel
        restarts from the first key, and keys already seen are skipped."""
        ops = self._ops
        seen: set[bytes] = set()
        key = ops.next(None)
        while key is not None:
            if key in seen:
                key = ops.next(key)
                continue
            seen.add(key)
            yield key
            key = ops.next(key)

    def keys(self) -> Iterator[Any]:
        """Every key, decoded."""
        dec = self.key_codec.decode
        return (dec(k) for k in self.raw_keys())

    __iter__ = keys

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs; keys deleted during the walk are skipped."""
        dec, ops = self.key_codec.decode, self._ops
        for k in self.raw_keys():
            raw = ops.lookup(k)
            if raw is not None:
                yield dec(k), self._decode_value(raw)

    def values(self) -> Iterator[Any]:
        """Every value."""
        return (v for _, v in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.raw_keys())

    def clear(self) -> None:
        """Delete every key (array maps cannot delete: their values are zeroed instead)."""
        if self.type in (abi.BPF_MAP_TYPE_ARRAY, abi.BPF_MAP_TYPE_PERCPU_ARRAY):
            zero = b"\0" * self._ops.value_size
            for k in list(self.raw_keys()):
                self._ops.update(k, zero, 0)
            return
        for k in list(self.raw_keys()):
            self._ops.delete(k)

    # --- queue / stack ----------------------------------------------------------------------------------

    def push(self, value: Any, flags: int = 0) -> None:
        """Queue/stack: push ``value`` (BPF_EXIST overwrites the oldest when full)."""
        self._ops.update(None, self._encode_value(value), flags)

    def pop(self) -> Any:
        """Queue/stack: remove and return the next value, or None when empty."""
        raw = self._ops.lookup_and_delete(None)
        return None if raw is None else self._decode_value(raw)

    def peek(self) -> Any:
        """Queue/stack: the next value without removing it, or None when empty."""
        raw = self._ops.lookup(None)
        return None if raw is None else self._decode_value(raw)

    # --- whole-map operations ---------------------------------------------------------------------------

    def pin(self, path: str) -> None:
        """Pin the map at ``path`` in bpffs."""
        syscall.obj_pin(self.fd, path)

    def freeze(self) -> None:
        """Make the map read-only from user space (BPF_MAP_FREEZE)."""
        syscall.map_freeze(self.fd)

    def info(self) -> MapInfo:
        """The kernel's information about this map."""
        return _info_of(self.fd)


def _info_of(fd: int) -> MapInfo:
    from ..sys._cffi_abi import ffi

    i = syscall.obj_info(fd, "map")
    return MapInfo(id=i.id, type=i.type, name=ffi.string(i.name).decode(errors="replace"), key_size=i.key_size,
                   value_size=i.value_size, max_entries=i.max_entries, map_flags=i.map_flags, btf_id=i.btf_id,
                   btf_key_type_id=i.btf_key_type_id, btf_value_type_id=i.btf_value_type_id,
                   map_extra=i.map_extra)
