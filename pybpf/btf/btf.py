"""The :class:`BTF` container: parse, index lazily, query, build and write BTF.

Parsing makes one pass over the type section recording where each record starts (a list of word indexes);
nothing else is decoded until asked.  Names are looked up without a name index: the string section is searched
for the name (C-speed ``bytes.find``), then the type section for records whose first word is that string's
offset.  So opening the kernel's 125k-type BTF costs one tight loop, and a CO-RE relocation decodes only the
types it touches.

Split BTF (kernel modules) is a :class:`BTF` with a ``base``: ids continue after the base's last id and string
offsets after the base's string section, exactly as in the kernel.
"""
from __future__ import annotations

import marshal
import mmap
import struct
import sys
from array import array
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Callable, Iterator

from ..errors import BTFError
from ..sys import abi
from .types import KIND_NAMES, TYPE_CLASSES, Type, Void, _Composite

__all__ = ["BTF", "Field", "Strings", "MAX_CHAIN"]

#: hops allowed when following typedef/modifier/array chains before the BTF is called cyclic
MAX_CHAIN = 256
_RESOLVE_DEPTH = 32  # libbpf's MAX_RESOLVE_DEPTH, used where its exact behaviour matters (sizes)

_HDR_LEN = 24
_U32 = struct.Struct("=I")
_SEP = b"___"  # the CO-RE flavor separator
_NATIVE = sys.byteorder

# Record length in 32-bit words, indexed by the top byte of ``info`` (kind | kind_flag << 7):
# 3 header words + fixed words + vlen * per-element words.  Unknown kinds jump past any end.
_FIXED = [cls._fixed for cls in TYPE_CLASSES]
_PER = [cls._per_elem for cls in TYPE_CLASSES]
_REC_BASE = [1 << 40] * 256
_REC_PER = [0] * 256
for _k in range(1, len(TYPE_CLASSES)):
    for _top in (_k, _k | 0x80):
        _REC_BASE[_top] = 3 + _FIXED[_k]
        _REC_PER[_top] = _PER[_k]
del _k, _top

_MODS = frozenset((abi.BTF_KIND_VOLATILE, abi.BTF_KIND_CONST, abi.BTF_KIND_RESTRICT, abi.BTF_KIND_TYPE_TAG))
_MODS_TYPEDEF = _MODS | {abi.BTF_KIND_TYPEDEF}


def _scan(words: Any, base: list[int] = _REC_BASE, per: list[int] = _REC_PER) -> tuple[list[int], int]:
    """Word index of every record in ``words``; returns (starts, end) where end != len(words) means a bad
    last record.  Kept minimal: this loop is the whole cost of opening vmlinux (an ``array`` indexes a third
    faster than a memoryview, and a truncated last header is caught as it is read, not tested for each record)."""
    n = len(words)
    i = 0
    starts: list[int] = []
    app = starts.append
    try:
        while i < n:
            app(i)
            info = words[i + 1]
            top = info >> 24
            i += base[top] + (info & 0xFFFFFF) * per[top]
    except IndexError:
        return starts, i + 3
    return starts, i


class Strings:
    """A BTF string section: offset -> string, and interning of new strings (appended at the end)."""

    def __init__(self, data: bytes = b"\0", base: Strings | None = None):
        self.base = base
        self.base_len = len(base) if base is not None else 0
        self._data = bytes(data)
        self._new: list[bytes] = []
        self._new_len = 0
        self._cache: dict[int, str] = {}
        self._interned: dict[str, int] = {}
        self._seps: list[int] | None = None
        if self._data and self._data[-1] != 0:
            raise BTFError("string section does not end with a NUL byte")
        if base is None and self._data and self._data[0] != 0:
            raise BTFError("string section does not start with the empty string")

    def __len__(self) -> int:
        return self.base_len + len(self._data) + self._new_len

    def get(self, off: int) -> str:
        """The string at ``off``; BTFError if ``off`` is past the end."""
        s = self._cache.get(off)
        if s is not None:
            return s
        if off < self.base_len:
            return self.base.get(off)  # type: ignore[union-attr]
        rel = off - self.base_len
        data = self._data
        if rel >= len(data):
            if rel == 0:
                return ""
            data = data + b"".join(self._new)
            if rel >= len(data):
                raise BTFError(f"string offset {off} is past the end of the string section ({len(self)} bytes)")
        s = data[rel:data.index(b"\0", rel)].decode("utf-8", "surrogateescape")
        self._cache[off] = s
        return s

    def add(self, s: str, hint: int = -1) -> int:
        """Offset of ``s``, appending it if absent; ``hint`` (a previous offset) is kept if it still fits."""
        if 0 <= hint < len(self) and self.get(hint) == s:
            return hint
        if not s:
            return 0
        off = self._interned.get(s)
        if off is not None:
            return off
        # every string appended since parsing is in _interned already: only the base and the parsed section
        # can hold ``s`` (searching the appended ones too made building n new strings O(n^2))
        b = s.encode("utf-8", "surrogateescape") + b"\0"
        offs = self.base.offsets_of(s) if self.base is not None else []
        q = -1 if offs else self._data.find(b)
        if offs:
            off = offs[0]
        elif q >= 0:
            off = self.base_len + q
        else:
            off = len(self)
            self._new.append(b)
            self._new_len += len(b)
        self._interned[s] = off
        return off

    def offsets_of(self, s: str) -> list[int]:
        """Every offset (base first) at which the string ``s`` starts; ``s`` must be non-empty."""
        return self.offsets_matching(s, exact=True)

    def offsets_matching(self, prefix: str, exact: bool = False) -> list[int]:
        """Offsets (base first) of the strings starting with ``prefix`` -- or, with ``exact``, equal to it
        (faster).  A string here is what starts at an offset: the tail of a longer string counts too."""
        out = self.base.offsets_matching(prefix, exact) if self.base is not None else []
        pat = prefix.encode("utf-8", "surrogateescape") + (b"\0" if exact else b"")
        if not pat:
            return out
        for data, start, own in ((self._data, self.base_len, True),
                                 (b"".join(self._new), self.base_len + len(self._data), False)):
            if own and _SEP in pat:
                # names with '___' (CO-RE flavors) are rare: walk the cached '___' positions, not the section
                j = pat.index(_SEP)
                out.extend(start + q - j for q in self._sep_positions() if q >= j and data.startswith(pat, q - j))
            else:
                out.extend(start + q for q in self._scan(data, pat))
        return out

    @staticmethod
    def _scan(data: bytes, pat: bytes) -> Iterator[int]:
        q = data.find(pat)
        while q >= 0:
            yield q
            q = data.find(pat, q + 1)

    def _sep_positions(self) -> list[int]:
        """Every position (overlapping ones too) of ``___`` in the original section, found once."""
        if self._seps is None:
            self._seps = list(self._scan(self._data, _SEP))
        return self._seps

    def own_bytes(self) -> bytes:
        """This section's own bytes (without the base's), including strings added since parsing."""
        return self._data + b"".join(self._new)


class Field:
    """Where a (possibly nested) member lives: ``bit_offset`` from the outer type's start, ``bitfield_size``
    (0 unless a bitfield), the member's ``type_id`` and the :class:`~pybpf.btf.types.Member` itself."""

    __slots__ = ("bit_offset", "bitfield_size", "type_id", "member")

    def __init__(self, bit_offset: int, bitfield_size: int, type_id: int, member: Any):
        self.bit_offset, self.bitfield_size, self.type_id, self.member = bit_offset, bitfield_size, type_id, member

    @property
    def byte_offset(self) -> int:
        """``bit_offset // 8``."""
        return self.bit_offset // 8

    def __repr__(self) -> str:
        return f"Field(bit_offset={self.bit_offset}, bitfield_size={self.bitfield_size}, type_id={self.type_id})"


class BTF:
    """A BTF blob (an object's ``.BTF``, vmlinux, or a module's split BTF on top of ``base``).

    ``btf[id]`` gives a type (id 0 is :class:`~pybpf.btf.types.Void`); ``len(btf)`` is one past the last id.
    Types are decoded on first access and cached; mutate them in place or :meth:`replace` them, then
    :meth:`to_bytes` writes the result (records never decoded are copied as they were).
    """

    def __init__(self, base: BTF | None = None, *, _strings: Strings | None = None):
        """An empty BTF (on top of ``base`` for split BTF); use :meth:`parse` to read one."""
        self.base = base
        self.first_id = len(base) if base is not None else 1
        self.strings: Strings = _strings or Strings(b"\0" if base is None else b"", base.strings if base else None)
        self.byteorder: str = base.byteorder if base is not None else "little"
        self.ptr_size = 8
        self._data: bytes | mmap.mmap = b""
        self._words: Any = ()
        self._tsec = 0  # byte offset of the type section in _data
        self._starts: Sequence[int] = []  # word index of each parsed record (a list, or an array from an index)
        self._types: dict[int, Type] = {}
        self._added: list[Type] = []
        self._dirty: set[int] = set()
        self._name_offs: bytes | None = None
        self._index: bytes | None = None  # the index given to parse, when taken
        self._names: tuple[set[int], bytes] | None = None
        self._found: dict[str, list[int]] = {}  # name -> own ids, cleared when types are added or replaced
        self._prefixed: dict[str, list[int]] = {}  # name prefix -> own ids, likewise
        self._header = (0, _HDR_LEN)  # flags, hdr_len
        self._layout = b""
        if base is None:
            v = Void()
            self._types[0] = v
            v.btf = self

    # ---- reading --------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | mmap.mmap, base: BTF | None = None, *,
              index: bytes | None = None) -> BTF:
        """Parse raw BTF (``.BTF`` section contents, ``/sys/kernel/btf/*``); split BTF needs its ``base``.

        ``index`` (what :meth:`index` gave for the same ``data``) replaces the pass over the type section; one
        that does not fit the type section is ignored.  ``data`` is copied unless it is ``bytes`` or a read-only
        ``mmap`` (:mod:`pybpf.btf.kernel` maps vmlinux), which must not change while the BTF is used."""
        if not isinstance(data, (bytes, mmap.mmap)):
            data = bytes(data)
        if len(data) < 8:
            raise BTFError(f"BTF is {len(data)} bytes: too short for a header")
        if data[:2] == b"\x9f\xeb":
            order, fmt = "little", "<"
        elif data[:2] == b"\xeb\x9f":
            order, fmt = "big", ">"
        else:
            raise BTFError(f"bad BTF magic {data[:2].hex()} (expected eb9f)")
        version, flags, hdr_len = struct.unpack_from(fmt + "BBI", data, 2)
        if version != abi.BTF_VERSION:
            raise BTFError(f"unsupported BTF version {version}")
        if hdr_len < _HDR_LEN or hdr_len > len(data):
            raise BTFError(f"BTF header length {hdr_len} is invalid for a {len(data)}-byte blob")
        type_off, type_len, str_off, str_len = struct.unpack_from(fmt + "4I", data, 8)
        layout = b""
        if hdr_len >= 32:
            lay_off, lay_len = struct.unpack_from(fmt + "2I", data, 24)
            if lay_len:
                if hdr_len + lay_off + lay_len > len(data):
                    raise BTFError(f"BTF layout section ({lay_off}+{lay_len}) runs past the end")
                layout = data[hdr_len + lay_off: hdr_len + lay_off + lay_len]
        body = len(data) - hdr_len
        for what, off, ln in (("type", type_off, type_len), ("string", str_off, str_len)):
            if off + ln > body:
                raise BTFError(f"BTF {what} section (offset {off}, length {ln}) runs past the end of the "
                               f"{body}-byte body")
        if type_off % 4 or type_len % 4:
            raise BTFError(f"BTF type section (offset {type_off}, length {type_len}) is not 4-byte aligned")
        if base is not None and base.byteorder != order:
            raise BTFError("split BTF and its base differ in byte order")
        strings = Strings(data[hdr_len + str_off: hdr_len + str_off + str_len],
                          base.strings if base is not None else None)
        self = cls(base, _strings=strings)
        self.byteorder = order
        self._data = data
        self._header = (flags, hdr_len)
        self._layout = layout
        self._tsec = hdr_len + type_off
        tsec = memoryview(data)[self._tsec: self._tsec + type_len]
        if order == _NATIVE:
            words: Any = tsec.cast("I")
        else:
            words = array("I")
            words.frombytes(tsec)
            words.byteswap()
        self._words = words
        if index is not None and self._adopt(index):
            return self
        if not isinstance(words, array):  # a copy (0.25 ms for vmlinux) makes the scan and later lookups faster
            words = self._words = array("I")
            words.frombytes(tsec)
        starts, end = _scan(words)
        if end != len(words):
            bad = starts[-1]
            tid = self.first_id + len(starts) - 1
            if bad + 3 > len(words):
                raise BTFError(f"type [{tid}] at byte {bad * 4} of the type section: truncated header")
            info = words[bad + 1]
            kind = (info >> 24) & 0x7F
            if kind == 0 or kind >= len(TYPE_CLASSES):
                raise BTFError(f"type [{tid}] at byte {bad * 4} of the type section: unknown kind {kind}")
            raise BTFError(f"type [{tid}] {KIND_NAMES[kind]} at byte {bad * 4} of the type section: vlen "
                           f"{info & 0xFFFFFF} runs past the end of the section")
        if self.first_id + len(starts) - 1 > abi.BTF_MAX_TYPE:
            raise BTFError(f"BTF has {len(starts)} types: more than BTF_MAX_TYPE")
        self._starts = starts
        return self

    def index(self) -> bytes:
        """The index :meth:`parse` builds in its pass over the type section (where each record starts, and its
        name offset), as bytes to keep (:mod:`pybpf.btf.kernel` caches vmlinux's) and give back to ``parse``."""
        return array("I", self._starts).tobytes() + self._name_offsets()

    def indexed_by(self, index: bytes) -> bool:
        """Whether :meth:`parse` took ``index`` as this BTF's record index."""
        return self._index is index

    def _adopt(self, index: bytes) -> bool:
        """Take ``index`` as this BTF's record index if it fits the type section (else leave it and say so)."""
        n, odd = divmod(len(index), 8)
        starts = array("I", index[:4 * n])
        words = self._words
        if odd or self.first_id + n - 1 > abi.BTF_MAX_TYPE:
            return False
        if n:
            last = starts[-1]
            if starts[0] or last + 3 > len(words):
                return False
            info = words[last + 1]
            if last + _REC_BASE[info >> 24] + (info & 0xFFFFFF) * _REC_PER[info >> 24] != len(words):
                return False
        elif len(words):
            return False
        self._starts = starts
        self._name_offs = index[4 * n:]
        self._index = index
        return True

    @classmethod
    def load(cls, path: str, base: BTF | None = None) -> BTF:
        """Parse a raw BTF file (e.g. ``/sys/kernel/btf/vmlinux``)."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls.parse(data, base)
        except BTFError as e:
            raise BTFError(f"{path}: {e}") from None

    def __len__(self) -> int:
        return self.first_id + len(self._starts) + len(self._added)

    def __getitem__(self, type_id: int) -> Type:
        """The type with id ``type_id`` (ids below ``first_id`` come from the base BTF); BTFError when out of
        range.  Also :meth:`type_by_id`."""
        t = self._types.get(type_id)
        if t is not None:
            return t
        if type_id < self.first_id:
            if self.base is not None and type_id >= 0:
                return self.base[type_id]
            raise BTFError(f"type id {type_id} is out of range")
        k = type_id - self.first_id
        if k >= len(self._starts):
            k -= len(self._starts)
            if k < len(self._added):
                return self._added[k]
            raise BTFError(f"type id {type_id} is out of range (BTF has ids up to {len(self) - 1})")
        return self._decode(type_id, self._starts[k])

    type_by_id = __getitem__

    def _decode(self, type_id: int, i: int) -> Type:
        w = self._words
        name_off, info, st = w[i], w[i + 1], w[i + 2]
        cls = TYPE_CLASSES[(info >> 24) & 0x7F]
        try:
            t = cls._decode(self.strings.get(name_off), info, st, w, i + 3, self.strings.get)
        except BTFError as e:
            raise BTFError(f"type [{type_id}] {cls.__name__.upper()}: {e}") from None
        n = len(self)
        for r in t.refs():
            if r >= n:
                raise BTFError(f"type [{type_id}] {t.kind_name} {t.name!r} refers to type id {r}, past the last "
                               f"id {n - 1}")
        t.id, t.btf, t.name_off = type_id, self, name_off
        self._types[type_id] = t
        return t

    def __iter__(self) -> Iterator[Type]:
        """This BTF's own types in id order (not the base's, not void)."""
        for type_id in range(self.first_id, len(self)):
            yield self[type_id]

    def types(self, kind: int | None = None) -> Iterator[Type]:
        """Own types, optionally only those of ``kind`` (decodes only those)."""
        if kind is None:
            yield from self
            return
        for type_id in self._ids_of_kind(kind):
            t = self[type_id]
            if t.kind == kind:
                yield t

    def _ids_of_kind(self, kind: int) -> list[int]:
        first = self.first_id
        ids: set[int] = set()
        if self._starts:
            infos = itemgetter(*[s + 1 for s in self._starts])(self._words)
            if len(self._starts) == 1:
                infos = (infos,)
            ids = {first + k for k, info in enumerate(infos) if (info >> 24) & 0x7F == kind}
        # replaced and added types may have changed kind: the caller re-checks each one
        return sorted(ids | self._dirty | set(range(first + len(self._starts), len(self))))

    def find(self, name: str, kind: int | None = None) -> list[Type]:
        """All types (base first) named ``name``, optionally of ``kind``."""
        out = self.base.find(name, kind) if self.base is not None else []
        ids = self._found.get(name)
        if ids is None:
            offs = self.strings.offsets_of(name) if name else None
            ids = [t.id for t in self._find_own(None, offs, name.__eq__)]
            self._found[name] = ids
        return out + [t for t in map(self.__getitem__, ids) if kind is None or t.kind == kind]

    def find_one(self, name: str, kind: int | None = None) -> Type:
        """The one type named ``name`` (of ``kind``); BTFError if there is none or more than one."""
        found = self.find(name, kind)
        what = f"{KIND_NAMES.get(kind, kind) if kind is not None else 'type'} {name!r}"
        if not found:
            raise BTFError(f"no {what} in BTF")
        if len(found) > 1:
            raise BTFError(f"{len(found)} types match {what}: ids {[t.id for t in found]}")
        return found[0]

    def find_prefixed(self, prefix: str) -> list[Type]:
        """Own types (not the base's) whose name starts with ``prefix`` (non-empty), in id order."""
        if not prefix:
            raise BTFError("find_prefixed needs a non-empty prefix")
        ids = self._prefixed.get(prefix)
        if ids is None:
            ids = [t.id for t in self._find_own(None, self.strings.offsets_matching(prefix),
                                                lambda name: name.startswith(prefix))]
            self._prefixed[prefix] = ids
        return [self[i] for i in ids]

    def lookups(self) -> bytes:
        """The name lookups (:meth:`find`, :meth:`find_prefixed`) answered so far, as bytes to give
        :meth:`add_lookups` of the same BTF data in another process (:mod:`pybpf.btf.kernel` keeps vmlinux's);
        empty once types were added or replaced."""
        if self._dirty or self._added:
            return b""
        return marshal.dumps(({k: v for k, v in self._found.items() if k}, self._prefixed))

    def add_lookups(self, data: bytes) -> None:
        """Take the answers of :meth:`lookups` of a BTF parsed from the same data; ``data`` that does not
        hold answers for a BTF of this size is ignored."""
        try:
            found, prefixed = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return
        lo, hi = self.first_id, self.first_id + len(self._starts)
        for table in (found, prefixed):
            if not isinstance(table, dict) or not all(
                    isinstance(k, str) and k and isinstance(v, list) and all(type(i) is int and lo <= i < hi for i in v)
                    for k, v in table.items()):
                return
        if not (self._dirty or self._added):
            self._found.update(found)
            self._prefixed.update(prefixed)

    def _name_offsets(self) -> bytes:
        """Each parsed record's name offset, as native u32 bytes in id order (one C-level pass, done once)."""
        if self._name_offs is None:
            starts = self._starts
            got = itemgetter(*starts)(self._words) if starts else ()
            got = (got,) if len(starts) == 1 else got
            self._name_offs = array("I", got).tobytes()
        return self._name_offs

    def _name_index(self) -> tuple[set[int], bytes]:
        """(set of name offsets used by parsed records, :meth:`_name_offsets`), built on the first name lookup."""
        if self._names is None:
            offs = self._name_offsets()
            self._names = (set(memoryview(offs).cast("I")), offs)
        return self._names

    def _find_own(self, kind: int | None, offsets: list[int] | None, check: Callable[[str], bool]) -> list[Type]:
        """Own types whose name offset is one of ``offsets`` (None: anonymous types); types added or replaced
        since parsing are tested with ``check(name)`` instead."""
        ids: set[int] = set()
        if offsets is None:  # the empty name: anonymous types
            ids = {t.id for t in self if not t.name}
        else:
            used, names = self._name_index()
            first = self.first_id
            for off in offsets:
                if off not in used:
                    continue
                pat = _U32.pack(off)
                p = names.find(pat)
                while p >= 0:
                    if not p & 3:
                        ids.add(first + (p >> 2))
                    p = names.find(pat, p + 1)
            ids -= self._dirty
            ids.update(t for t in self._dirty | set(range(first + len(self._starts), len(self)))
                       if check(self[t].name))
        out = [self[i] for i in sorted(ids)]
        return [t for t in out if kind is None or t.kind == kind]

    # ---- queries ---------------------------------------------------------------------------------------

    def _t(self, t: int | Type) -> Type:
        return self[t] if isinstance(t, int) else t

    def resolve(self, t: int | Type, typedefs: bool = True) -> Type:
        """``t`` with const/volatile/restrict/type tags (and typedefs unless ``typedefs=False``) skipped."""
        t = self._t(t)
        skip = _MODS_TYPEDEF if typedefs else _MODS
        for _ in range(MAX_CHAIN):
            if t.kind not in skip:
                return t
            t = t.type
        raise BTFError(f"type [{t.id}]: typedef/modifier chain longer than {MAX_CHAIN} (cyclic BTF?)")

    def size_of(self, t: int | Type) -> int:
        """Size in bytes, through typedefs, modifiers, VARs and arrays (libbpf's ``btf__resolve_size``)."""
        t = self._t(t)
        start, nelems = t, 1
        for _ in range(_RESOLVE_DEPTH):
            k = t.kind
            if k in (abi.BTF_KIND_INT, abi.BTF_KIND_STRUCT, abi.BTF_KIND_UNION, abi.BTF_KIND_ENUM,
                     abi.BTF_KIND_ENUM64, abi.BTF_KIND_DATASEC, abi.BTF_KIND_FLOAT):
                size = t.size  # type: ignore[attr-defined]
                break
            if k == abi.BTF_KIND_PTR:
                size = self.ptr_size
                break
            if k in _MODS_TYPEDEF or k in (abi.BTF_KIND_VAR, abi.BTF_KIND_DECL_TAG):
                t = t.type
            elif k == abi.BTF_KIND_ARRAY:
                nelems *= t.nelems  # type: ignore[attr-defined]
                t = t.type
            else:
                raise BTFError(f"type [{start.id}] {start.kind_name} {start.name!r} has no size "
                               f"(reaches {t.kind_name} [{t.id}])")
        else:
            raise BTFError(f"type [{start.id}]: chain deeper than {_RESOLVE_DEPTH} while computing its size")
        if nelems * size > 0xFFFFFFFF:
            raise BTFError(f"type [{start.id}]: size {nelems * size} overflows 32 bits")
        return nelems * size

    def align_of(self, t: int | Type, cache: dict[int, int] | None = None, _depth: int = 0) -> int:
        """Alignment in bytes (libbpf's ``btf__align_of``: 1 for packed structs).  ``cache`` (a dict kept by
        the caller while the types do not change) saves recomputing nested structs."""
        t = self._t(t)
        if cache is not None:
            hit = cache.get(t.id)
            if hit is not None:
                return hit
        if _depth > MAX_CHAIN:
            raise BTFError(f"type [{t.id}]: nesting deeper than {MAX_CHAIN} while computing alignment (cyclic?)")
        k = t.kind
        if k in (abi.BTF_KIND_INT, abi.BTF_KIND_ENUM, abi.BTF_KIND_ENUM64, abi.BTF_KIND_FLOAT):
            align = max(1, min(self.ptr_size, t.size))  # type: ignore[attr-defined]
        elif k == abi.BTF_KIND_PTR:
            align = self.ptr_size
        elif k in _MODS_TYPEDEF or k == abi.BTF_KIND_ARRAY:
            align = self.align_of(t.type, cache, _depth + 1)
        elif isinstance(t, _Composite):
            align = 1
            for m in t.members:
                a = self.align_of(m.type_id, cache, _depth + 1)
                if not m.bitfield_size and m.bit_offset % (8 * a):
                    align = 0  # a member its alignment does not allow: packed
                    break
                align = max(align, a)
            align = 1 if not align or t.size % align else align
        else:
            raise BTFError(f"type [{t.id}] {t.kind_name} has no alignment")
        if cache is not None:
            cache[t.id] = align
        return align

    def field(self, t: int | Type | str, path: str) -> Field:
        """Locate ``path`` (``"a.b.c"``; anonymous struct/union members are searched through, like C) in the
        struct/union ``t`` (a type, an id, or a struct name)."""
        if isinstance(t, str):
            cands = [c for c in self.find(t) if isinstance(c, _Composite)]
            if len(cands) != 1:
                raise BTFError(f"{len(cands)} struct/union types named {t!r}")
            t = cands[0]
        cur = self.resolve(t)
        bit, found = 0, None
        for part in path.split("."):
            if not isinstance(cur, _Composite):
                raise BTFError(f"{path!r}: {part!r} is looked up in {cur.kind_name} [{cur.id}], not a struct/union")
            hit = self._member_path(cur, part, 0)
            if hit is None:
                raise BTFError(f"{cur.kind_name.lower()} {cur.name or '<anon>'} [{cur.id}] has no member {part!r}")
            off, found = hit
            bit += off
            cur = self.resolve(found.type_id)
        assert found is not None  # path.split(".") is never empty
        return Field(bit, found.bitfield_size, found.type_id, found)

    def _member_path(self, t: _Composite, name: str, depth: int) -> tuple[int, Any] | None:
        if depth > MAX_CHAIN:
            raise BTFError(f"type [{t.id}]: anonymous member nesting too deep (cyclic?)")
        for m in t.members:
            if m.name == name:
                return m.bit_offset, m
            if not m.name:
                inner = self.resolve(m.type_id)
                if isinstance(inner, _Composite):
                    hit = self._member_path(inner, name, depth + 1)
                    if hit is not None:
                        return m.bit_offset + hit[0], hit[1]
        return None

    def validate(self) -> None:
        """Decode every type and check references and chains; BTFError on the first problem."""
        for t in self:
            if t.kind in _MODS_TYPEDEF:
                self.resolve(t)

    # ---- building and writing --------------------------------------------------------------------------

    def add(self, t: Type) -> int:
        """Append ``t`` (it must not belong to a BTF yet); returns its new id.  ``t`` may refer to ids not
        added yet (forward references are normal in BTF)."""
        if t.btf is not None:
            raise BTFError(f"{t!r} already belongs to a BTF")
        n = len(self)
        t.id, t.btf = n, self
        self._added.append(t)
        self._found.clear()
        self._prefixed.clear()
        return n

    def replace(self, type_id: int, t: Type) -> Type:
        """Put ``t`` in place of type ``type_id`` (own types only); returns ``t``."""
        if not self.first_id <= type_id < len(self):
            raise BTFError(f"cannot replace type id {type_id}: not one of this BTF's own types")
        if t.btf is not None and t.btf is not self:
            raise BTFError(f"{t!r} belongs to another BTF")
        t.id, t.btf = type_id, self
        self._found.clear()
        self._prefixed.clear()
        k = type_id - self.first_id - len(self._starts)
        if k >= 0:
            self._added[k] = t
        else:
            self._types[type_id] = t
            self._dirty.add(type_id)
        return t

    def copy(self) -> BTF:
        """An independent copy (same base), e.g. to sanitise without touching the original."""
        return BTF.parse(self.to_bytes(), self.base)

    def to_bytes(self) -> bytes:
        """Encode as raw BTF in this BTF's byte order; undecoded records are copied unchanged, and so is the
        string section (new strings are appended), so parse -> to_bytes reproduces compiler output exactly."""
        words = array("I")
        add = self.strings.add
        raw, starts, first = self._words, self._starts, self.first_id
        pos = 0  # next raw word to copy
        for type_id in sorted(t for t in self._types if t >= first and t - first < len(starts)):
            k = type_id - first
            s = starts[k]
            if s > pos:
                words.extend(raw[pos:s])
            words.extend(self._types[type_id]._encode(add))
            pos = starts[k + 1] if k + 1 < len(starts) else len(raw)
        if pos < len(raw):
            words.extend(raw[pos:])
        for t in self._added:
            words.extend(t._encode(add))
        if self.byteorder != _NATIVE:
            words.byteswap()
        tbytes = words.tobytes()
        sbytes = self.strings.own_bytes()
        flags, hdr_len = self._header
        fmt = "<" if self.byteorder == "little" else ">"
        hdr = struct.pack(fmt + "HBBI4I", abi.BTF_MAGIC, abi.BTF_VERSION, flags, hdr_len, 0, len(tbytes),
                          len(tbytes), len(sbytes))
        if hdr_len >= 32:
            lay_off = len(tbytes) + len(sbytes)
            hdr += struct.pack(fmt + "2I", lay_off if self._layout else 0, len(self._layout))
        hdr = hdr.ljust(hdr_len, b"\0")
        return hdr + tbytes + sbytes + self._layout

    def __repr__(self) -> str:
        split = f" on base of {len(self.base)}" if self.base is not None else ""
        return f"<BTF {len(self) - self.first_id} types{split}>"
