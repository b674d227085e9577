"""What generated skeletons (``pybpf gen skeleton``) build on: the :class:`Skeleton` base, typed views of maps,
ring and perf buffers, global variables as typed descriptors, and the ``IntEnum`` base of generated enums.

A skeleton holds its object's bytes.  Until :meth:`Skeleton.load` it is an editable
:class:`~pybpf.loader.ObjectSpec` (set ``.rodata`` constants, resize maps); after it, a live
:class:`~pybpf.loader.Object` whose maps decode straight into the generated record classes: the maps' own
BTF codecs (:func:`pybpf.maps.btfcodec.btf_codec`) are built with ``records=`` the generated classes, so the typed
and the untyped API share one decoder.
"""
from __future__ import annotations

import base64
import enum
import keyword
import zlib
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Iterator, Mapping, TypeVar, cast, overload

from ..errors import BPFError
from ..sys import abi

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..btf import BTF
    from ..link import Link
    from ..loader import Object, ObjectSpec, VariableSpec
    from ..maps.codec import Codec
    from ..maps.map import Map
    from ..maps.reader import Reader

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
S = TypeVar("S")

#: Map types whose elements a :class:`TypedMap` reads and writes (the others stay plain :class:`~pybpf.Map`).
ELEMENT_MAP_TYPES = frozenset((
    abi.BPF_MAP_TYPE_HASH, abi.BPF_MAP_TYPE_ARRAY, abi.BPF_MAP_TYPE_PERCPU_HASH, abi.BPF_MAP_TYPE_PERCPU_ARRAY,
    abi.BPF_MAP_TYPE_LRU_HASH, abi.BPF_MAP_TYPE_LRU_PERCPU_HASH, abi.BPF_MAP_TYPE_LPM_TRIE))
PERCPU_MAP_TYPES = frozenset((abi.BPF_MAP_TYPE_PERCPU_HASH, abi.BPF_MAP_TYPE_PERCPU_ARRAY,
                              abi.BPF_MAP_TYPE_LRU_PERCPU_HASH))
QUEUE_MAP_TYPES = frozenset((abi.BPF_MAP_TYPE_QUEUE, abi.BPF_MAP_TYPE_STACK, abi.BPF_MAP_TYPE_BLOOM_FILTER))


def py_names(names: list[str]) -> list[str]:
    """Python attribute names for C names (programs, maps, variables), in the same order: a keyword gets a
    trailing ``_``, leading underscores move to the end (``__x`` -> ``x_``), clashes become ``field<i>``."""
    from ..maps.btfcodec import field_names

    return field_names([n if n.isidentifier() else "" for n in names])


def section_attr(section: str) -> str:
    """The skeleton attribute of a data section: ``.rodata`` -> ``rodata``, ``.data.bar`` -> ``data_bar``."""
    name = "".join(c if c.isalnum() else "_" for c in section.strip("."))
    return name + "_" if keyword.iskeyword(name) else name


class BTFEnum(enum.IntEnum):
    """Base of generated enums: a value the C enum does not name decodes to a pseudo-member (``Color(7)``
    gives ``<Color.Color_7: 7>``) instead of failing, as a C program may store any integer."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"{cls.__name__}_{value}"
        member._value_ = value
        return member


def decode_object(blob: str) -> bytes:
    """The object bytes a generated module embeds (base64 of zlib)."""
    return zlib.decompress(base64.b64decode(blob))


def encode_object(data: bytes) -> str:
    """The embedded form of object bytes (deterministic: zlib level 9, base64)."""
    return base64.b64encode(zlib.compress(data, 9)).decode()


def records_for(btf: BTF, types: Mapping[str, Callable[..., Any]]) -> dict[int, Callable[..., Any]]:
    """Bind a generated ``TYPES`` table (C type key -> class, from ``pybpf gen types``) to the type ids of
    ``btf``, for ``btf_codec(btf, type_id, records=...)``: named types by name, anonymous ones by their path."""
    from ..gen.records import held_type, member_key, type_key

    out: dict[int, Callable[..., Any]] = {}

    def walk(type_id: int, path: str) -> None:
        t, _ = held_type(btf, type_id)
        key = type_key(t, path)
        if t.id in out or key not in types or t.kind not in _BOUND_KINDS:
            return
        out[t.id] = types[key]
        for i, m in enumerate(getattr(t, "members", ())):
            walk(m.type_id, member_key(key, m.name, i))

    for key in types:
        kind, _, name = key.partition(" ")
        if name and "." not in name:
            for t in btf.find(name):
                if t.kind in _BOUND_KINDS and (kind == "enum") == (t.kind in _BOUND_KINDS[2:]) and \
                        (kind == "union") == (t.kind == abi.BTF_KIND_UNION):
                    walk(t.id, key)
    return out


_BOUND_KINDS = (abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64)


class Skeleton:
    """Base of generated skeleton classes: the embedded object as an editable spec, then a live object.

    Class attributes set by the generated subclass: ``OBJECT`` (the embedded object), ``OBJECT_NAME``,
    ``RECORDS`` (BTF type id -> generated class) and ``RING_RECORDS`` (ring/perf map -> record type id)."""

    OBJECT: ClassVar[str]
    OBJECT_NAME: ClassVar[str]
    RECORDS: ClassVar[dict[int, Callable[..., Any]]] = {}
    RING_RECORDS: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        from ..loader import ObjectFile

        self.spec: ObjectSpec = ObjectFile(decode_object(self.OBJECT), self.OBJECT_NAME)
        self.obj: Object | None = None
        self.links: dict[str, Link] = {}
        self._codecs: dict[int, Codec] = {}
        self._groups: dict[type, Any] = {}

    # --- life cycle ---------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """True between :meth:`load` and :meth:`close`."""
        return self.obj is not None

    def load(self, **options: Any) -> Self:
        """Load the (edited) spec into the kernel (options as for :func:`pybpf.loader.load`); maps then
        decode into the generated record types."""
        from ..loader import load

        if self.obj is not None:
            raise BPFError(f"{self.OBJECT_NAME}: already loaded")
        obj = load(self.spec, **options)
        try:
            for spec in self.spec.maps.values():
                mp = obj.maps.get(spec.name)
                if mp is not None and spec.type in ELEMENT_MAP_TYPES | QUEUE_MAP_TYPES and not spec.internal:
                    mp.set_codecs(key=self.codec(spec.key_type) if spec.key_type else None,
                                  value=self.codec(spec.value_type) if spec.value_type else None)
        except BaseException:
            obj.close()
            raise
        self.obj = obj
        self._groups.clear()
        return self

    def attach(self, **targets: Any) -> Self:
        """Attach every loaded program as its section says (``targets`` gives a target by program attribute
        name, e.g. ``xdp_drop="eth0"``); the links are kept in :attr:`links` and closed by :meth:`close`."""
        obj = self._live_object()
        for attr, prog in zip(py_names(list(obj.programs)), obj.programs.values()):
            if attr not in self.links and prog.type != abi.BPF_PROG_TYPE_STRUCT_OPS:  # those: through their map
                self.links[attr] = prog.attach(targets.get(attr))
        for name in obj.struct_ops_maps:  # registered, as libbpf's skeleton attach does
            if name not in self.links:
                self.links[name] = obj.attach_struct_ops(name)
        return self

    def detach(self) -> None:
        """Close every link made by :meth:`attach`."""
        for link in self.links.values():
            link.close()
        self.links.clear()

    def close(self) -> None:
        """Detach, then close the loaded object (its programs and maps); the skeleton can be loaded again."""
        self.detach()
        if self.obj is not None:
            self.obj.close()
            self.obj = None
        self._groups.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- typed pieces -------------------------------------------------------------------------------------

    def codec(self, type_id: int) -> Codec:
        """The codec of BTF type ``type_id`` of this object, decoding into the generated classes."""
        codec = self._codecs.get(type_id)
        if codec is None:
            from ..maps.btfcodec import btf_codec

            if self.spec.btf is None:
                raise BPFError(f"{self.OBJECT_NAME}: the object has no BTF")
            codec = self._codecs[type_id] = btf_codec(self.spec.btf, type_id, records=self.RECORDS)
        return codec

    def _live_object(self) -> Object:
        if self.obj is None:
            raise BPFError(f"{self.OBJECT_NAME}: not loaded yet: call load() first")
        return self.obj

    def _group(self, cls: type[S]) -> S:
        """The skeleton's instance of a generated group class (programs, maps, a data section)."""
        group = self._groups.get(cls)
        if group is None:
            group = self._groups[cls] = cls(self)  # type: ignore[call-arg]
        return cast(S, group)

    def _live(self, cls: type[S]) -> S:
        self._live_object()
        return self._group(cls)


class Programs:
    """Base of a skeleton's ``progs``: one :class:`~pybpf.Program` attribute per loaded program."""

    def __init__(self, skel: Skeleton):
        obj = skel._live_object()
        self._spec = skel.spec
        for attr, prog in zip(py_names(list(skel.spec.programs)), skel.spec.programs.values()):
            if prog.name in obj.programs:
                setattr(self, attr, obj.programs[prog.name])

    def __getattr__(self, attr: str) -> Any:
        raise BPFError(f"{self._spec.name}: program {attr!r} was not loaded (autoload off, or no such program)")


class Maps:
    """Base of a skeleton's ``maps``: one typed attribute per map (:class:`TypedMap`, :class:`TypedQueue`,
    :class:`RingBufferMap`, :class:`PerfBufferMap`, or the plain :class:`~pybpf.Map`)."""

    def __init__(self, skel: Skeleton):
        obj = skel._live_object()
        specs = list(skel.spec.maps.values())
        names = [section_attr(m.section) if m.internal else m.name for m in specs]
        for attr, spec in zip(py_names(names), specs):
            mp = obj.maps[spec.name]
            if spec.type in (abi.BPF_MAP_TYPE_RINGBUF, abi.BPF_MAP_TYPE_PERF_EVENT_ARRAY):
                tid = skel.RING_RECORDS.get(spec.name)
                wrapper: Any = (RingBufferMap if spec.type == abi.BPF_MAP_TYPE_RINGBUF else PerfBufferMap)(
                    mp, skel.codec(tid) if tid else None)
            elif spec.internal or spec.type not in ELEMENT_MAP_TYPES | QUEUE_MAP_TYPES:
                wrapper = mp
            elif spec.type in QUEUE_MAP_TYPES:
                wrapper = TypedQueue(mp)
            else:
                wrapper = TypedMap(mp)
            setattr(self, attr, wrapper)


class TypedMap(Generic[K, V]):
    """A map whose keys are ``K`` and values ``V`` (generated record types): a typed face of :attr:`map`, the
    untyped :class:`~pybpf.Map`, which decodes into the same classes."""

    def __init__(self, mp: Map):
        self.map = mp

    def __getitem__(self, key: K) -> V:
        return self.map[key]  # type: ignore[no-any-return]

    def __setitem__(self, key: K, value: V) -> None:
        self.map[key] = value

    def __delitem__(self, key: K) -> None:
        del self.map[key]

    def __contains__(self, key: object) -> bool:
        return key in self.map

    def __len__(self) -> int:
        return len(self.map)

    def __iter__(self) -> Iterator[K]:
        return self.map.keys()

    def get(self, key: K, default: T | None = None) -> V | T | None:
        """The value at ``key``, or ``default``."""
        return self.map.lookup(key, default)  # type: ignore[no-any-return]

    def update(self, key: K, value: V, flags: int = abi.BPF_ANY) -> None:
        """Store ``value`` at ``key`` (``flags``: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
        self.map.update(key, value, flags)

    def delete(self, key: K) -> bool:
        """Delete ``key``; False if it was absent."""
        return self.map.delete(key)

    def keys(self) -> Iterator[K]:
        """Every key."""
        return self.map.keys()

    def values(self) -> Iterator[V]:
        """Every value."""
        return self.map.values()

    def items(self) -> Iterator[tuple[K, V]]:
        """Every (key, value) pair."""
        return self.map.items()

    def clear(self) -> None:
        """Delete every key (array maps: zero every value)."""
        self.map.clear()

    def __repr__(self) -> str:
        return f"<TypedMap {self.map!r}>"


class TypedQueue(Generic[V]):
    """A queue, stack or bloom filter map of ``V`` values (:attr:`map` is the untyped :class:`~pybpf.Map`)."""

    def __init__(self, mp: Map):
        self.map = mp

    def push(self, value: V, flags: int = 0) -> None:
        """Push ``value`` (bloom filter: add it)."""
        self.map.push(value, flags)

    def peek(self) -> V | None:
        """The next value without removing it (None when empty)."""
        return self.map.peek()  # type: ignore[no-any-return]

    def pop(self) -> V | None:
        """Remove and return the next value (None when empty)."""
        return self.map.pop(default=None)  # type: ignore[no-any-return]

    def __contains__(self, value: object) -> bool:
        return bool(self.map.peek(value))


class BufferMap(Generic[T]):
    """Base of :class:`RingBufferMap` and :class:`PerfBufferMap`: a buffer map whose records are ``T`` (``bytes``
    when the record type is unknown); :meth:`decode` turns one record's bytes into a ``T``."""

    def __init__(self, mp: Map, codec: Codec | None):
        self.map = mp
        self.codec = codec

    def decode(self, data: bytes) -> T:
        """One record's bytes as a ``T``."""
        return data if self.codec is None else self.codec.decode(data)  # type: ignore[return-value]


class RingBufferMap(BufferMap[T]):
    """A BPF ring buffer whose records are ``T``: :meth:`reader` consumes them."""

    def reader(self, callback: Callable[[T], object] | None = None) -> RecordReader[T]:
        """A reader of this ring buffer delivering ``T`` records (to ``callback`` from ``poll``)."""
        from ..maps.ringbuf import RingBuffer

        return RecordReader(RingBuffer(self.map, callback, decode=self.codec))


class PerfBufferMap(BufferMap[T]):
    """A perf event array whose samples are ``T``: :meth:`reader` consumes them from every CPU's ring."""

    def reader(self, callback: Callable[[int, T], object] | None = None, **options: Any) -> RecordReader[T]:
        """A reader of the per-CPU perf rings delivering ``T`` samples (``callback(cpu, sample)`` from
        ``poll``; ``options`` as for :class:`~pybpf.maps.perfbuf.PerfBuffer`)."""
        from ..maps.perfbuf import PerfBuffer

        return RecordReader(PerfBuffer(self.map, callback, decode=self.codec, **options))


class RecordReader(Generic[T]):
    """A ring/perf buffer reader typed by its record type (``reader`` is the untyped one it wraps)."""

    def __init__(self, reader: Reader):
        self.reader = reader

    def poll(self, timeout: float | None = None) -> int:
        """Deliver waiting records to the callback, waiting up to ``timeout`` seconds for some."""
        return self.reader.poll(timeout)

    def read(self, timeout: float | None = 0) -> list[T]:
        """The waiting records, waiting up to ``timeout`` seconds when none wait."""
        return self.reader.read(timeout)

    def records(self, timeout: float | None = None) -> Iterator[T]:
        """Records as they come, until a wait of ``timeout`` seconds brings none."""
        return self.reader.records(timeout)

    def close(self) -> None:
        """Release the reader."""
        self.reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Section:
    """Base of a data section's typed view (``skel.rodata``, ``skel.bss``...): its :class:`Var` attributes
    read and write the spec's initial data before load, and the live map (through its mmap) after."""

    SECTION: ClassVar[str]

    def __init__(self, skel: Skeleton):
        self._skel = skel

    def _var(self, name: str) -> tuple[VariableSpec, Codec]:
        var = self._skel.spec.variable(name)
        if not var.type_id or self._skel.spec.btf is None:
            from ..maps.codec import raw_codec

            return var, raw_codec(var.size)
        return var, self._skel.codec(var.type_id)

    def _initial(self, var: VariableSpec) -> bytearray:
        m = self._skel.spec.maps[var.map]
        return bytearray(m.data if m.data is not None else bytes(m.value_size))

    def _get(self, name: str) -> Any:
        var, codec = self._var(name)
        if self._skel.obj is None:
            return codec.unpack_from(self._initial(var), var.offset)
        mp = self._skel.obj.maps[var.map]
        if mp.flags & abi.BPF_F_MMAPABLE:
            return codec.unpack_from(mp.mmap(), var.offset)
        return codec.unpack_from(_raw_value(mp), var.offset)

    def _set(self, name: str, value: Any) -> None:
        var, codec = self._var(name)
        if self._skel.obj is None:
            data = self._initial(var)
            codec.pack_into(data, var.offset, value)
            self._skel.spec.maps[var.map].data = bytes(data)
            return
        if var.readonly:
            raise BPFError(f"{self._skel.OBJECT_NAME}: {name!r} is a {var.section} constant, frozen at load: set "
                           "it before load()")
        mp = self._skel.obj.maps[var.map]
        if mp.flags & abi.BPF_F_MMAPABLE:
            codec.pack_into(mp.mmap(), var.offset, value)
            return
        data = bytearray(_raw_value(mp))
        codec.pack_into(data, var.offset, value)
        _store_raw_value(mp, bytes(data))


def _raw_map(mp: Map) -> Map:
    from ..maps.map import Map

    return Map(mp.dup_fd(), mp.type, mp.key_size, mp.value_size, mp.max_entries, key="I", value="bytes")


def _raw_value(mp: Map) -> bytes:
    """Element 0 of a global-data map as bytes (maps not mmapable on this kernel)."""
    with _raw_map(mp) as raw:
        return raw[0]  # type: ignore[no-any-return]


def _store_raw_value(mp: Map, data: bytes) -> None:
    with _raw_map(mp) as raw:
        raw[0] = data


class Var(Generic[T]):
    """A global variable of type ``T`` in a :class:`Section` (a typed descriptor)."""

    def __init__(self, name: str):
        self.name = name

    @overload
    def __get__(self, section: None, owner: type) -> Var[T]: ...

    @overload
    def __get__(self, section: Section, owner: type) -> T: ...

    def __get__(self, section: Section | None, owner: type) -> Var[T] | T:
        if section is None:
            return self
        return section._get(self.name)  # type: ignore[no-any-return]

    def __set__(self, section: Section, value: T) -> None:
        section._set(self.name, value)
