"""Map: a BPF map in the kernel (a live object owning its fd), with a dict-like interface.

Keys and values are converted by :class:`~pybpf.maps.codec.Codec` objects chosen once per map (from the map's
BTF when it has some, else raw bytes, or what the user gives: a ``struct`` format, a ctypes type...).  The
element operations write into buffers allocated once per map and run one pre-filled ``bpf()`` call, so a
lookup is the syscall plus the conversion.  A Map is not thread-safe (its buffers are shared): give each thread
its own (``Map.from_fd(m.dup_fd())``).
"""
from __future__ import annotations

import errno as _errno
import mmap as _mmap
import struct
from itertools import chain, starmap
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple

from ..errors import CodecError, KernelError, NotSupported, kernel_error
from ..sys import abi, syscall
from ..sys.names import enum_value
from ..sys.fd import FD, FDOwner
from .codec import Codec, CodecSpec, cast_view, codec_for, fd_codec, lpm_codec, raw_codec, struct_codec

if TYPE_CHECKING:
    from ..btf import BTF

T = abi
_PERCPU_TYPES = frozenset((T.BPF_MAP_TYPE_PERCPU_HASH, T.BPF_MAP_TYPE_PERCPU_ARRAY, T.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                           T.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE))
_KEYLESS_TYPES = frozenset((T.BPF_MAP_TYPE_QUEUE, T.BPF_MAP_TYPE_STACK, T.BPF_MAP_TYPE_BLOOM_FILTER))
_ARRAY_TYPES = frozenset((T.BPF_MAP_TYPE_ARRAY, T.BPF_MAP_TYPE_PERCPU_ARRAY, T.BPF_MAP_TYPE_PROG_ARRAY,
                          T.BPF_MAP_TYPE_PERF_EVENT_ARRAY, T.BPF_MAP_TYPE_CGROUP_ARRAY, T.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                          T.BPF_MAP_TYPE_DEVMAP, T.BPF_MAP_TYPE_CPUMAP, T.BPF_MAP_TYPE_XSKMAP,
                          T.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY))
_FD_VALUE_TYPES = frozenset((T.BPF_MAP_TYPE_PROG_ARRAY, T.BPF_MAP_TYPE_PERF_EVENT_ARRAY, T.BPF_MAP_TYPE_CGROUP_ARRAY,
                             T.BPF_MAP_TYPE_ARRAY_OF_MAPS, T.BPF_MAP_TYPE_HASH_OF_MAPS, T.BPF_MAP_TYPE_SOCKMAP,
                             T.BPF_MAP_TYPE_SOCKHASH, T.BPF_MAP_TYPE_XSKMAP, T.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY))
_FD_KEY_TYPES = frozenset((T.BPF_MAP_TYPE_SK_STORAGE, T.BPF_MAP_TYPE_TASK_STORAGE, T.BPF_MAP_TYPE_INODE_STORAGE,
                           T.BPF_MAP_TYPE_CGRP_STORAGE))
_NO_ELEMENTS = frozenset((T.BPF_MAP_TYPE_RINGBUF, T.BPF_MAP_TYPE_USER_RINGBUF, T.BPF_MAP_TYPE_ARENA,
                          T.BPF_MAP_TYPE_STRUCT_OPS))
_MISSING: Any = object()
_BAD_INPUT = (CodecError, struct.error, ValueError, TypeError, OverflowError)  # what a codec raises on bad input


def map_type_of(value: int | str) -> int:
    """A map type from an int or a name: ``"hash"``, ``"percpu_array"`` or ``"BPF_MAP_TYPE_HASH"``."""
    return enum_value("bpf_map_type", "BPF_MAP_TYPE_", value)


def possible_cpus() -> int:
    """Number of possible CPUs (the width of per-CPU map values), from /sys/devices/system/cpu/possible."""
    global _POSSIBLE
    if _POSSIBLE is None:
        _POSSIBLE = max(cpu_list("/sys/devices/system/cpu/possible")) + 1
    return _POSSIBLE


def cpu_list(path: str) -> list[int]:
    """The CPUs of a kernel cpu-list file such as ``/sys/devices/system/cpu/online`` (``0-3,6``)."""
    with open(path) as f:
        text = f.read().strip()
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


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
    btf_vmlinux_value_type_id: int = 0
    ifindex: int = 0

    @property
    def type_name(self) -> str:
        """``hash``, ``array``... (the kernel name without ``BPF_MAP_TYPE_``)."""
        return _type_name(self.type)


class Map(FDOwner):
    """A BPF map.  Behaves like a dict: ``m[k]``, ``m[k] = v``, ``del m[k]``, ``k in m``, ``len(m)``,
    iteration, ``keys()``/``values()``/``items()``, ``get()``, ``pop()``, ``clear()``.

    Per-CPU maps read lists with one value per possible CPU and write such a list (or any non-list value,
    stored on every CPU).  Queue/stack maps use :meth:`push`, :meth:`pop` and :meth:`peek`; bloom filters
    :meth:`push` (or :meth:`add`) and ``value in m``; LPM tries take ``"10.0.0.0/8"``-style keys; stack-trace
    maps give :meth:`stack`/:meth:`stack_symbols`.  Maps holding fds (prog arrays, perf event arrays,
    map-in-map, sockmaps, cgroup arrays) accept ints, Maps, Programs or sockets as values and read back object
    ids (:meth:`inner_map` opens an inner map); local-storage maps are keyed by the owner's fd.

    Owns its fd: close it with :meth:`close` or a ``with`` block (or let the garbage collector do it).  Create
    one with :meth:`create`, :meth:`from_fd`, :meth:`from_pin`, :meth:`from_id`, or get it from a loaded object.
    """

    def __init__(self, fd: FD | int, map_type: int, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0, name: str = "", *, key: CodecSpec = None, value: CodecSpec = None,
                 btf: BTF | None = None, btf_key_type_id: int = 0, btf_value_type_id: int = 0, map_extra: int = 0):
        self._fd = fd if isinstance(fd, FD) else FD(fd)
        self.type, self.key_size, self.value_size = map_type, key_size, value_size
        self.max_entries, self.flags, self.name, self.map_extra = max_entries, flags, name, map_extra
        self.btf, self.btf_key_type_id, self.btf_value_type_id = btf, btf_key_type_id, btf_value_type_id
        self.percpu = map_type in _PERCPU_TYPES
        self.keyless = map_type in _KEYLESS_TYPES
        self._ncpu = possible_cpus() if self.percpu else 1
        self._stride = (value_size + 7) & ~7 if self.percpu else value_size
        self._ops = syscall.ElemOps(self._fd.fd, key_size, self._stride * self._ncpu)
        self._batch_ok = map_type not in _NO_ELEMENTS and not self.keyless
        self._mmap: _mmap.mmap | None = None
        self.key_codec = self._choose_codec(key, key_size, btf_key_type_id, "key")
        self.value_codec = self._choose_codec(value, value_size, btf_value_type_id, "value")
        self._bind()

    # --- codecs ---------------------------------------------------------------------------------------------

    def _choose_codec(self, spec: CodecSpec, size: int, type_id: int, side: str) -> Codec:
        if spec is not None:
            return codec_for(spec, size)
        t = self.type
        if side == "key":
            if t in _FD_KEY_TYPES:  # whatever the BTF says, user space names the owner by an fd
                return fd_codec(size)
            if t == abi.BPF_MAP_TYPE_LPM_TRIE and not type_id:
                return lpm_codec(size)
        elif t in _FD_VALUE_TYPES and size in (4, 8):
            return fd_codec(size)
        if self.btf is not None and type_id:
            from .btfcodec import btf_codec

            try:
                return btf_codec(self.btf, type_id, size)
            except CodecError:
                return raw_codec(size)  # a type we cannot express: bytes are still exact
        if side == "key" and (t in _ARRAY_TYPES or t == abi.BPF_MAP_TYPE_STACK_TRACE) and size == 4:
            return struct_codec("I")
        if side == "value" and t == abi.BPF_MAP_TYPE_STACK_TRACE and size % 8 == 0 and \
                not self.flags & abi.BPF_F_STACK_BUILD_ID:
            return struct_codec(f"{size // 8}Q")
        return raw_codec(size)

    def set_codecs(self, key: CodecSpec = None, value: CodecSpec = None) -> None:
        """Change how keys and/or values are converted (a struct format, ctypes type, Codec...)."""
        if key is not None:
            self.key_codec = codec_for(key, self.key_size)
        if value is not None:
            self.value_codec = codec_for(value, self.value_size)
        self._bind()

    def _bind(self) -> None:
        """Build the per-map closures (and, for native scalars, the cast views) the element operations use."""
        ops, kc, vc = self._ops, self.key_codec, self.value_codec
        self._lookup, self._update, self._delete = ops.lookup, ops.update, ops.delete
        self._kview = cast_view(ops.key_buf, kc.cast) if kc.cast and self.key_size else None
        self._vview = cast_view(ops.value_buf, vc.cast) if vc.cast and self.value_size and not self.percpu else None
        self._put_key = kc.writer(ops.key_buf) if self.key_size else _no_key
        self._get_next_key = kc.reader(ops.next_key_buf) if self.key_size else _no_key
        if self.percpu:
            vbuf, stride, ncpu, pack = ops.value_buf, self._stride, self._ncpu, vc.pack_into
            array = vc.decode_array

            def get_percpu() -> list[Any]:
                return array(vbuf, ncpu, stride)

            def put_percpu(value: Any) -> None:
                if not isinstance(value, list):  # one value for every CPU
                    value = [value] * ncpu
                if len(value) != ncpu:
                    raise CodecError(f"a per-CPU value needs {ncpu} entries (one per possible CPU), "
                                     f"got {len(value)}")
                for i, v in enumerate(value):
                    pack(vbuf, i * stride, v)

            self._get_value: Callable[[], Any] = get_percpu
            self._put_value: Callable[[Any], Any] = put_percpu
        else:
            self._get_value = vc.reader(ops.value_buf) if self.value_size else _no_key
            self._put_value = vc.writer(ops.value_buf) if self.value_size else _no_key

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, map_type: int | str, key_size: int, value_size: int, max_entries: int, flags: int = 0,
               name: str = "", *, key: CodecSpec = None, value: CodecSpec = None,
               inner_map: Map | int | None = None, btf: BTF | None = None, key_type: int | str = 0,
               value_type: int | str = 0, **create_attrs: Any) -> Map:
        """Create a map (BPF_MAP_CREATE).

        ``key``/``value`` choose how keys and values are converted (a ``struct`` format such as ``"I"``,
        ``("IQ", "pid ts")`` for a named tuple, a ctypes type, a :class:`Codec`; None for the BTF types or raw
        bytes).  ``btf`` with ``key_type``/``value_type`` (type ids or names in it) gives the map BTF: it is
        loaded into the kernel and keys/values are converted from those types.  ``inner_map`` is the template
        of a map-in-map.  Other keywords are BPF_MAP_CREATE fields (``numa_node``, ``map_extra``, ``btf_fd``,
        ``btf_vmlinux_value_type_id``...)."""
        mtype = map_type_of(map_type)
        inner_fd = inner_map if isinstance(inner_map, int) else (inner_map.fd if inner_map is not None else 0)
        btf_fd: FD | None = None
        key_id = value_id = 0
        if btf is not None:
            key_id, value_id = _type_id(btf, key_type), _type_id(btf, value_type)
            btf_fd = FD(syscall.btf_load(btf.to_bytes()))
            create_attrs.update(btf_fd=btf_fd.fd, btf_key_type_id=key_id, btf_value_type_id=value_id)
        try:
            fd = FD(syscall.map_create(mtype, key_size, value_size, max_entries, flags, name,
                                       inner_map_fd=inner_fd, **create_attrs))
        finally:
            if btf_fd is not None:
                btf_fd.close()  # the map holds its own reference to the BTF object
        try:
            return cls(fd, mtype, key_size, value_size, max_entries, flags, name, key=key, value=value, btf=btf,
                       btf_key_type_id=key_id, btf_value_type_id=value_id,
                       map_extra=create_attrs.get("map_extra", 0))
        except BaseException:
            fd.close()
            raise

    @classmethod
    def from_fd(cls, fd: FD | int, *, key: CodecSpec = None, value: CodecSpec = None,
                btf: bool | BTF = True) -> Map:
        """Wrap an owned map fd, reading its shape from the kernel.  With ``btf`` true and no ``key``/``value``
        given, the map's BTF (if it has some) is fetched from the kernel to convert keys and values."""
        owned = fd if isinstance(fd, FD) else FD(fd)
        try:
            info = _info_of(owned.fd)
            types: BTF | None = None
            if btf is not False and info.btf_id and (key is None or value is None):
                if isinstance(btf, bool):
                    from ..btf import BTF

                    btf = BTF.parse(syscall.btf_data(info.btf_id))  # the map's BTF as the kernel holds it
                types = btf
            return cls(owned, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
                       info.name, key=key, value=value, btf=types, btf_key_type_id=info.btf_key_type_id,
                       btf_value_type_id=info.btf_value_type_id, map_extra=info.map_extra)
        except BaseException:
            owned.close()
            raise

    @classmethod
    def from_pin(cls, path: str, **options: Any) -> Map:
        """Open a map pinned in bpffs (options as for :meth:`from_fd`)."""
        return cls.from_fd(syscall.obj_get(path), **options)

    @classmethod
    def from_id(cls, map_id: int, **options: Any) -> Map:
        """Open a map by its kernel id (options as for :meth:`from_fd`)."""
        return cls.from_fd(syscall.fd_by_id("map", map_id), **options)

    # --- fd ownership -------------------------------------------------------------------------------------

    def dup_fd(self) -> FD:
        """A new owned fd for the same map (e.g. for another thread's :meth:`from_fd`)."""
        return self._fd.dup()

    def close(self) -> None:
        """Release the map's fd and its memory mapping (the kernel frees the map once nothing holds it)."""
        if self._mmap is not None:
            _release_mmap(self._mmap)
            self._mmap = None
        self._fd.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd.fd}"
        return f"<Map {self.name!r} {_type_name(self.type)} {state}>"

    # --- errors -----------------------------------------------------------------------------------------------

    def _bad(self, side: str, obj: Any, e: Exception) -> CodecError:
        codec = self.key_codec if side == "key" else self.value_codec
        return CodecError(f"map {self.name!r}: cannot use {obj!r} as a {side} ({codec!r}): {e}")

    def _failed(self, command: str, err: int, key: Any = _MISSING) -> KernelError:
        detail = f"map {self.name!r}" + ("" if key is _MISSING else f", key {key!r}")
        return kernel_error(command, err, detail)

    # --- element operations ---------------------------------------------------------------------------------

    # The three dict operations below are the hot path: native scalar keys/values go through cast views
    # inline, everything else through the codec's closures.

    def __getitem__(self, key: Any) -> Any:
        kv = self._kview
        try:
            if kv is not None:
                kv[0] = key
            else:
                self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        if self._lookup() < 0:
            err = syscall.last_errno()
            raise KeyError(key) if err == _errno.ENOENT else self._failed("BPF_MAP_LOOKUP_ELEM", err, key)
        vv = self._vview
        return vv[0] if vv is not None else self._get_value()

    def lookup(self, key: Any, default: Any = None, flags: int = 0) -> Any:
        """The value stored at ``key`` or ``default``; ``flags`` may be BPF_F_LOCK (copy under the value's spin
        lock).  Per-CPU maps give a list with one value per possible CPU."""
        try:
            self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        if flags:
            err = self._ops.run(abi.BPF_MAP_LOOKUP_ELEM, flags)
        else:
            err = syscall.last_errno() if self._ops.lookup() < 0 else 0
        if err:
            if err == _errno.ENOENT:
                return default
            raise self._failed("BPF_MAP_LOOKUP_ELEM", err, key)
        return self._get_value()

    get = lookup

    def __setitem__(self, key: Any, value: Any) -> None:
        kv, vv = self._kview, self._vview
        try:
            if kv is not None:
                kv[0] = key
            else:
                self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        try:
            if vv is not None:
                vv[0] = value
            else:
                self._put_value(value)
        except _BAD_INPUT as e:
            raise self._bad("value", value, e) from None
        if self._update() < 0:
            raise self._failed("BPF_MAP_UPDATE_ELEM", syscall.last_errno(), key)

    def update(self, key: Any, value: Any, flags: int = abi.BPF_ANY) -> None:
        """Store ``value`` at ``key``.  ``flags``: BPF_ANY (default), BPF_NOEXIST (fail with EEXIST if present),
        BPF_EXIST (fail with ENOENT if absent), BPF_F_LOCK (update under the value's spin lock)."""
        if not flags:
            self[key] = value
            return
        try:
            self._put_key(key)
            self._put_value(value)
        except _BAD_INPUT as e:
            raise self._bad("key or value", (key, value), e) from None
        err = self._ops.run(abi.BPF_MAP_UPDATE_ELEM, flags)
        if err:
            raise self._failed("BPF_MAP_UPDATE_ELEM", err, key)

    def __delitem__(self, key: Any) -> None:
        kv = self._kview
        try:
            if kv is not None:
                kv[0] = key
            else:
                self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        if self._delete() < 0:
            err = syscall.last_errno()
            raise KeyError(key) if err == _errno.ENOENT else self._failed("BPF_MAP_DELETE_ELEM", err, key)

    def delete(self, key: Any) -> bool:
        """Delete ``key``; True if it was there."""
        try:
            self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        if self._ops.delete() < 0:
            err = syscall.last_errno()
            if err == _errno.ENOENT:
                return False
            raise self._failed("BPF_MAP_DELETE_ELEM", err, key)
        return True

    def __contains__(self, key: Any) -> bool:
        if self.type == abi.BPF_MAP_TYPE_BLOOM_FILTER:
            return self.peek(key)
        try:
            self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        if self._ops.lookup() < 0:
            err = syscall.last_errno()
            if err == _errno.ENOENT:
                return False
            raise self._failed("BPF_MAP_LOOKUP_ELEM", err, key)
        return True

    def pop(self, key: Any = _MISSING, default: Any = _MISSING) -> Any:
        """Queue/stack: remove and return the next value (None when empty).  Other maps: remove ``key`` and
        return its value (BPF_MAP_LOOKUP_AND_DELETE_ELEM), or ``default`` / KeyError when absent."""
        if self.keyless:
            if key is not _MISSING:
                raise TypeError("queue/stack pop() takes no key")
            err = self._ops.run(abi.BPF_MAP_LOOKUP_AND_DELETE_ELEM, key=False)
            if err:
                if err == _errno.ENOENT:
                    return None
                raise self._failed("BPF_MAP_LOOKUP_AND_DELETE_ELEM", err)
            return self._get_value()
        if key is _MISSING:
            raise TypeError("pop() needs a key")
        try:
            self._put_key(key)
        except _BAD_INPUT as e:
            raise self._bad("key", key, e) from None
        if self._ops.lookup_and_delete() < 0:
            err = syscall.last_errno()
            if err == _errno.ENOENT:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            if err not in (_errno.EINVAL, _errno.EOPNOTSUPP, 524):
                raise self._failed("BPF_MAP_LOOKUP_AND_DELETE_ELEM", err, key)
            value = self.lookup(key, _MISSING)  # kernels before 5.14: lookup, then delete
            if value is _MISSING or not self.delete(key):
                if default is _MISSING:
                    raise KeyError(key)
                return default
            return value
        return self._get_value()

    # --- iteration --------------------------------------------------------------------------------------------

    def _raw_keys(self) -> Iterator[bytes]:
        """Every key as bytes.  Survives concurrent deletion: when the current key vanished, the kernel restarts
        from the first key, and keys already seen are skipped."""
        ops = self._ops
        kbuf, nbuf = ops.key_buf, ops.next_key_buf
        seen: set[bytes] = set()
        add = seen.add
        rc = ops.first_key()
        while rc >= 0:
            k = nbuf[:]
            if k not in seen:
                add(k)
                yield k
            kbuf[:] = k
            rc = ops.next_key()
        err = syscall.last_errno()
        if err != _errno.ENOENT:
            raise self._failed("BPF_MAP_GET_NEXT_KEY", err)

    def keys(self) -> Iterator[Any]:
        """Every key, decoded (array maps: ``range(max_entries)`` without syscalls)."""
        if self.keyless:
            raise TypeError(f"a {_type_name(self.type)} map has no keys")
        if self.type in _ARRAY_TYPES and self.key_size == 4 and self.key_codec.cast is not None:
            return iter(range(self.max_entries))
        dec = self.key_codec.decode
        return (dec(k) for k in self._raw_keys())

    __iter__ = keys

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs, read in batches (BPF_MAP_LOOKUP_BATCH) where the kernel supports it, else key
        by key (keys deleted during the walk are skipped)."""
        if self._batch_ok:
            batches = self._lookup_batches(False)
            try:
                first = next(batches, None)
            except _NoBatch:
                pass
            else:
                if first is None:
                    return iter(())
                return chain(zip(*first), chain.from_iterable(starmap(zip, batches)))
        return self._items_keywise()

    def _items_keywise(self) -> Iterator[tuple[Any, Any]]:
        ops, get, kdec = self._ops, self._get_value, self.key_codec.decode
        for raw in self._raw_keys():
            ops.key_buf[:] = raw
            if ops.lookup() >= 0:
                yield kdec(raw), get()
            elif syscall.last_errno() != _errno.ENOENT:
                raise self._failed("BPF_MAP_LOOKUP_ELEM", syscall.last_errno())

    def values(self) -> Iterator[Any]:
        """Every value."""
        return (v for _, v in self.items())

    def __len__(self) -> int:
        if self.keyless or self.type in _NO_ELEMENTS:
            raise TypeError(f"len() of a {_type_name(self.type)} map is not defined")
        if self.type in _ARRAY_TYPES:
            return self.max_entries
        if self._batch_ok:
            try:
                return sum(n for n in self._batch_counts())
            except _NoBatch:
                pass
        return sum(1 for _ in self._raw_keys())

    def clear(self) -> None:
        """Delete every key (array maps cannot delete: their values are zeroed instead)."""
        if self.type in (abi.BPF_MAP_TYPE_ARRAY, abi.BPF_MAP_TYPE_PERCPU_ARRAY):
            self._ops.value_buf[:] = bytes(self._ops.value_size)
            for i in range(self.max_entries):
                struct.pack_into("=I", self._ops.key_buf, 0, i)
                if self._ops.update() < 0:
                    raise self._failed("BPF_MAP_UPDATE_ELEM", syscall.last_errno(), i)
            return
        for k in list(self._raw_keys()):
            self._ops.key_buf[:] = k
            if self._ops.delete() < 0 and syscall.last_errno() != _errno.ENOENT:
                raise self._failed("BPF_MAP_DELETE_ELEM", syscall.last_errno())

    # --- batches -------------------------------------------------------------------------------------------

    def _batch_buffers(self, count: int) -> tuple[Any, Any, Any, Any]:
        ffi = syscall.ffi
        token = max(self.key_size, 8)
        vsize = self._ops.value_size
        return (ffi.new("char[]", max(count * self.key_size, 1)), ffi.new("char[]", max(count * vsize, 1)),
                ffi.new("char[]", token), ffi.new("char[]", token))

    def _raw_batches(self, delete: bool, chunk: int = 0) -> Iterator[tuple[Any, Any, int]]:
        """(keys buffer, values buffer, count) per BPF_MAP_LOOKUP[_AND_DELETE]_BATCH call; raises _NoBatch when
        the kernel lacks batch operations for this map."""
        cmd = abi.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else abi.BPF_MAP_LOOKUP_BATCH
        count = chunk or max(16, min(self.max_entries, 1 << 16))
        keys, values, tok_in, tok_out = self._batch_buffers(count)
        first, started = True, False
        while True:
            try:
                n, done = syscall.map_batch(cmd, self.fd, None if first else tok_in, tok_out, keys, values, count)
            except KernelError as e:
                if e.errno == _errno.ENOSPC and count < (1 << 20):  # a hash bucket holds more than count
                    count *= 4
                    keys, values, _, _ = self._batch_buffers(count)
                    continue
                if not started and e.errno in (_errno.EINVAL, _errno.EOPNOTSUPP, 524, _errno.ENOTSUP):
                    self._batch_ok = False
                    raise _NoBatch from None
                raise
            started = True
            if n:
                yield keys, values, n
            if done:
                return
            tok_in, tok_out = tok_out, tok_in
            first = False

    def _lookup_batches(self, delete: bool, chunk: int = 0) -> Iterator[tuple[list[Any], list[Any]]]:
        kc, vc = self.key_codec, self.value_codec
        ksize, vsize, stride, ncpu = self.key_size, self._ops.value_size, self._stride, self._ncpu
        for kbuf, vbuf, n in self._raw_batches(delete, chunk):
            kb, vb = syscall.ffi.buffer(kbuf, n * ksize), syscall.ffi.buffer(vbuf, n * vsize)
            keys = kc.decode_array(kb, n, ksize)
            if self.percpu:
                flat = vc.decode_array(vb, n * ncpu, stride)
                values = [flat[i:i + ncpu] for i in range(0, n * ncpu, ncpu)]
            else:
                values = vc.decode_array(vb, n, vsize)
            yield keys, values

    def _batch_counts(self) -> Iterator[int]:
        for _, _, n in self._raw_batches(False):
            yield n

    def lookup_batch(self, chunk: int = 0) -> list[tuple[Any, Any]]:
        """Every (key, value) pair, read ``chunk`` entries per syscall (BPF_MAP_LOOKUP_BATCH); falls back to
        key-by-key lookups on kernels or map types without batch operations."""
        return list(self.items()) if not chunk else self._collect(False, chunk)

    def lookup_and_delete_batch(self, chunk: int = 0) -> list[tuple[Any, Any]]:
        """Remove every entry and return the (key, value) pairs (BPF_MAP_LOOKUP_AND_DELETE_BATCH, or key-by-key
        lookup-and-delete where batches are missing)."""
        return self._collect(True, chunk)

    def _collect(self, delete: bool, chunk: int) -> list[tuple[Any, Any]]:
        if self._batch_ok:
            try:
                out: list[tuple[Any, Any]] = []
                for keys, values in self._lookup_batches(delete, chunk):
                    out.extend(zip(keys, values))
                return out
            except _NoBatch:
                pass
        pairs = []
        for raw in list(self._raw_keys()):
            k = self.key_codec.decode(raw)
            v = self.pop(k, _MISSING) if delete else self.lookup(k, _MISSING)
            if v is not _MISSING:
                pairs.append((k, v))
        return pairs

    def update_batch(self, items: Iterable[tuple[Any, Any]] | dict[Any, Any], flags: int = abi.BPF_ANY) -> int:
        """Store many (key, value) pairs in one syscall (BPF_MAP_UPDATE_BATCH; ``flags`` as for :meth:`update`,
        applied to every element); falls back to one update per pair.  Returns the number stored."""
        pairs = list(items.items() if isinstance(items, dict) else items)
        if not pairs:
            return 0
        if self._batch_ok:
            kbuf, vbuf, _, _ = self._batch_buffers(len(pairs))
            kb, vb = syscall.ffi.buffer(kbuf), syscall.ffi.buffer(vbuf)
            kpack, ks, vsize = self.key_codec.pack_into, self.key_size, self._ops.value_size
            i = 0
            try:
                if self.percpu:  # the per-CPU layout is built in the element buffer, then copied
                    put, value_buf = self._put_value, self._ops.value_buf
                    for i, (k, v) in enumerate(pairs):
                        kpack(kb, i * ks, k)
                        put(v)
                        vb[i * vsize:(i + 1) * vsize] = value_buf
                else:
                    vpack = self.value_codec.pack_into
                    for i, (k, v) in enumerate(pairs):
                        kpack(kb, i * ks, k)
                        vpack(vb, i * vsize, v)
            except _BAD_INPUT as e:
                raise self._bad("key or value", pairs[i], e) from None
            try:
                n, _ = syscall.map_batch(abi.BPF_MAP_UPDATE_BATCH, self.fd, None, None, kbuf, vbuf, len(pairs),
                                         elem_flags=flags)
                return n
            except KernelError as e:
                if e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP, 524):
                    raise
                self._batch_ok = False
        for k, v in pairs:
            self.update(k, v, flags)
        return len(pairs)

    def delete_batch(self, keys: Iterable[Any]) -> int:
        """Delete many keys (BPF_MAP_DELETE_BATCH, one syscall, or one delete per key where batches are
        missing); keys that are absent are skipped.  Returns the number deleted."""
        keys = list(keys)
        if not keys:
            return 0
        if self._batch_ok and self.type not in _ARRAY_TYPES:
            kbuf, _, _, _ = self._batch_buffers(len(keys))
            kb, kpack, ks = syscall.ffi.buffer(kbuf), self.key_codec.pack_into, self.key_size
            for i, k in enumerate(keys):
                try:
                    kpack(kb, i * ks, k)
                except _BAD_INPUT as e:
                    raise self._bad("key", k, e) from None
            deleted, start = 0, 0
            try:
                while start < len(keys):
                    n, missing = syscall.map_batch(abi.BPF_MAP_DELETE_BATCH, self.fd, None, None,
                                                   syscall.ffi.cast("char *", kbuf) + start * ks, None,
                                                   len(keys) - start)
                    deleted += n
                    start += n + (1 if missing else 0)  # skip the absent key and go on
                return deleted
            except KernelError as e:
                if deleted or e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP, 524):
                    raise
                self._batch_ok = False
        return sum(1 for k in keys if self.delete(k))

    # --- queue / stack / bloom filter ----------------------------------------------------------------------

    def push(self, value: Any, flags: int = 0) -> None:
        """Queue/stack: push ``value`` (``flags=BPF_EXIST`` overwrites the oldest when full).  Bloom filter:
        add ``value``."""
        try:
            self._put_value(value)
        except _BAD_INPUT as e:
            raise self._bad("value", value, e) from None
        err = self._ops.run(abi.BPF_MAP_UPDATE_ELEM, flags, key=False)
        if err:
            raise self._failed("BPF_MAP_UPDATE_ELEM", err)

    add = push

    def peek(self, value: Any = _MISSING) -> Any:
        """Queue/stack: the next value without removing it (None when empty).  Bloom filter: whether ``value``
        may have been added (False means certainly not)."""
        if value is not _MISSING:
            try:
                self._put_value(value)
            except _BAD_INPUT as e:
                raise self._bad("value", value, e) from None
        err = self._ops.run(abi.BPF_MAP_LOOKUP_ELEM, key=False)
        if value is not _MISSING:
            if err and err != _errno.ENOENT:
                raise self._failed("BPF_MAP_LOOKUP_ELEM", err)
            return not err
        if err:
            if err == _errno.ENOENT:
                return None
            raise self._failed("BPF_MAP_LOOKUP_ELEM", err)
        return self._get_value()

    # --- histograms ---------------------------------------------------------------------------------------------

    def print_log2_hist(self, val_type: str = "value", section_header: str = "Bucket ptr",
                        section_print_fn: Callable[[Any], str] | None = None,
                        bucket_fn: Callable[[Any], Any] | None = None, strip_leading_zero: bool | None = None,
                        bucket_sort_fn: Callable[[list[Any]], list[Any]] | None = None, file: Any = None) -> None:
        """Print this log2 histogram map as BCC does (keys: slots, or ``(bucket, slot)`` records for one
        histogram per bucket; values: counts, per-CPU counts are summed)."""
        from .hist import print_hist

        print_hist(self.items(), "log2", val_type, section_header, section_print_fn, bucket_fn,
                   strip_leading_zero, bucket_sort_fn, file)

    def print_linear_hist(self, val_type: str = "value", section_header: str = "Bucket ptr",
                          section_print_fn: Callable[[Any], str] | None = None,
                          bucket_fn: Callable[[Any], Any] | None = None, strip_leading_zero: bool | None = None,
                          bucket_sort_fn: Callable[[list[Any]], list[Any]] | None = None, file: Any = None) -> None:
        """Print this linear histogram map as BCC does (see :meth:`print_log2_hist`)."""
        from .hist import print_hist

        print_hist(self.items(), "linear", val_type, section_header, section_print_fn, bucket_fn,
                   strip_leading_zero, bucket_sort_fn, file)

    # --- stack traces ---------------------------------------------------------------------------------------

    def stack(self, stack_id: int) -> list[Any]:
        """Stack-trace maps: the frames stored at ``stack_id``, innermost first: instruction addresses, or
        :class:`BuildIdFrame` records for a map created with BPF_F_STACK_BUILD_ID.  KeyError if absent."""
        self._ops.key_buf[:] = struct.pack("=I", stack_id)
        if self._ops.lookup() < 0:
            err = syscall.last_errno()
            raise KeyError(stack_id) if err == _errno.ENOENT else self._failed("BPF_MAP_LOOKUP_ELEM", err, stack_id)
        raw = self._ops.value_buf[:]
        if self.flags & abi.BPF_F_STACK_BUILD_ID:
            frames = []
            for status, build_id, where in _BUILD_ID_FRAME.iter_unpack(raw[:len(raw) - len(raw) % 32]):
                if status == abi.BPF_STACK_BUILD_ID_EMPTY:
                    break
                frames.append(BuildIdFrame(status, build_id, where))
            return frames
        addrs = memoryview(raw).cast("Q").tolist()
        return addrs[:addrs.index(0)] if 0 in addrs else addrs

    def stack_symbols(self, stack_id: int, pid: int | None = None) -> list[str]:
        """The frames of ``stack_id`` as ``func+0x12 [module]`` strings: kernel frames through /proc/kallsyms,
        user frames (give the ``pid`` they belong to) through the process's mapped ELF files."""
        from .symbols import ProcessSymbols, kernel_symbols

        frames = self.stack(stack_id)
        if pid is not None:
            return list(map(ProcessSymbols(pid), frames))
        ksyms = kernel_symbols()
        if any(ksyms.resolve(a) is None for a in frames):
            ksyms = kernel_symbols(refresh=True)  # BPF programs or modules loaded since it was read
        return list(map(ksyms, frames))

    # --- maps of fds --------------------------------------------------------------------------------------------

    def inner_map(self, key: Any, **options: Any) -> Map:
        """Map-in-map: open the inner map stored at ``key`` (a new Map owning a new fd)."""
        return Map.from_id(self[key], **options)

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

    def mmap(self, writable: bool | None = None) -> memoryview:
        """The map's memory (BPF_F_MMAPABLE arrays, global data, arenas) mapped into this process: writes go
        straight to the kernel's copy.  ``writable=None`` maps read-write unless the map is frozen or read-only.
        The mapping lives until :meth:`close`."""
        if self._mmap is None:
            from ..sys import ring

            if self.type == abi.BPF_MAP_TYPE_ARENA:
                length = self.max_entries * ring.page_size()
            else:
                length = ((self.value_size + 7) & ~7) * self.max_entries
            self._mmap = ring.map_memory(self.fd, length, writable)
        return memoryview(self._mmap)


class BuildIdFrame(NamedTuple):
    """A frame of a BPF_F_STACK_BUILD_ID stack: ``build_id`` (20 bytes) and file ``offset`` when ``status`` is
    BPF_STACK_BUILD_ID_VALID, the raw instruction address when it is BPF_STACK_BUILD_ID_IP."""

    status: int
    build_id: bytes
    offset: int


_BUILD_ID_FRAME = struct.Struct("=i20sQ")  # struct bpf_stack_build_id


class _NoBatch(Exception):
    """This kernel/map type has no batch operations (internal signal to fall back)."""


def _no_key(*_: Any) -> Any:
    raise NotSupported("map element access", _errno.EINVAL, hint="this map type has no keys/values to access")


def _type_name(t: int) -> str:
    """``hash`` for BPF_MAP_TYPE_HASH (the current name where an old one was kept as ``*_DEPRECATED``)."""
    if not _TYPE_NAMES:
        for n in abi._ENUMS["bpf_map_type"]:
            if not n.endswith("_DEPRECATED") or getattr(abi, n) not in _TYPE_NAMES:
                _TYPE_NAMES[getattr(abi, n)] = n[len("BPF_MAP_TYPE_"):].lower()
    return _TYPE_NAMES.get(t, f"type {t}")


_TYPE_NAMES: dict[int, str] = {}


def _type_id(btf: BTF, t: int | str) -> int:
    if isinstance(t, int):
        return t
    return btf.find_one(t).id


def _release_mmap(m: _mmap.mmap) -> None:
    """Unmap now, unless Python memoryviews of it are still alive (then it is unmapped when they die)."""
    try:
        m.close()
    except BufferError:
        pass


def _info_of(fd: int) -> MapInfo:
    from ..sys._cffi_abi import ffi

    i = syscall.obj_info(fd, "map")
    return MapInfo(id=i.id, type=i.type, name=ffi.string(i.name).decode(errors="replace"), key_size=i.key_size,
                   value_size=i.value_size, max_entries=i.max_entries, map_flags=i.map_flags, btf_id=i.btf_id,
                   btf_key_type_id=i.btf_key_type_id, btf_value_type_id=i.btf_value_type_id,
                   map_extra=i.map_extra, btf_vmlinux_value_type_id=i.btf_vmlinux_value_type_id,
                   ifindex=i.ifindex)
