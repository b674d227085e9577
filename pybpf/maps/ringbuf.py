"""BPF ring buffers: :class:`RingBuffer` consumes a BPF_MAP_TYPE_RINGBUF, :class:`UserRingBuffer` produces
into a BPF_MAP_TYPE_USER_RINGBUF.

The kernel maps a ring as a consumer page, a producer page and the data pages mapped twice in a row, so a
record never wraps for the reader.  Each record starts with an 8-byte header: a u32 length whose top bits are
BPF_RINGBUF_BUSY_BIT (still being written: stop here) and BPF_RINGBUF_DISCARD_BIT (skip it), then a u32 page
offset; records are 8-byte aligned.  The reader reads the producer position, walks the records up to it,
and publishes the consumer position once per batch.

Memory ordering: positions and headers are naturally aligned loads/stores of one memoryview item, done in
program order (read the producer position, then the records; publish the consumer position after).  On x86-64
(total store order) that is exactly the acquire/release the protocol needs.
"""
from __future__ import annotations

import errno as _errno
import mmap as _mmap
import select
from itertools import takewhile
from typing import Any, Callable

from ..errors import BPFError, CodecError, kernel_error
from ..sys import abi, ring
from .map import Map, _release_mmap
from .reader import RAW, Consume, Emit, Maker, Reader, callback_emit, decoder

_BUSY, _DISCARD = abi.BPF_RINGBUF_BUSY_BIT, abi.BPF_RINGBUF_DISCARD_BIT
_LEN = ~(_BUSY | _DISCARD) & 0xFFFFFFFF
_HDR = abi.BPF_RINGBUF_HDR_SZ


def _ring_map(m: Map | int, expected: int, what: str) -> tuple[Map, bool]:
    """The Map behind ``m`` (for an fd, a Map over a duplicate of it, which the reader owns) and whether the
    reader opened it."""
    if isinstance(m, Map):
        owned, mp = False, m
    else:
        mp, owned = Map.from_fd(ring.dup_fd(m), btf=False), True
    if mp.type != expected:
        raise BPFError(f"{what} needs a BPF_MAP_TYPE_{'USER_' if expected != abi.BPF_MAP_TYPE_RINGBUF else ''}"
                       f"RINGBUF map, {mp!r} is not one")
    return mp, owned


class RingBuffer(Reader):
    """Reads records from one BPF ring buffer map (add more with :meth:`add`, or combine readers with
    :class:`~pybpf.maps.reader.Poller`).

    ``callback(record)`` gets each record from :meth:`poll`/:meth:`consume`: a ``memoryview`` into the ring,
    valid only during the call (``bytes(record)`` keeps it), or the decoded value when ``decode`` is given (a
    struct format, ``(format, names)``, a ctypes type, a BTF type or a Codec).  Iterating the reader (or
    :meth:`read`, ``async for``) yields ``bytes`` copies or decoded values instead.
    """

    def __init__(self, ring_map: Map | int, callback: Callable[[Any], Any] | None = None, *,
                 decode: Any = None):
        super().__init__()
        self._rings: list[tuple[Map | None, _mmap.mmap, _mmap.mmap, list[memoryview]]] = []
        self._callback = callback
        try:
            self.add(ring_map, callback, decode=decode)
        except BaseException:
            self.close()
            raise

    def add(self, ring_map: Map | int, callback: Callable[[Any], Any] | None = None, *,
            decode: Any = None) -> None:
        """Also read ``ring_map`` (a Map, or an fd, which is duplicated), delivering to ``callback`` (default:
        the constructor's) its records decoded with ``decode`` (None: raw)."""
        if callback is None:
            callback = self._callback
        mp, owned = _ring_map(ring_map, abi.BPF_MAP_TYPE_RINGBUF, "RingBuffer")
        try:
            size = mp.max_entries
            cons_mm, prod_mm = ring.map_ringbuf(mp.fd, size)
        except BaseException:
            if owned:
                mp.close()
            raise
        base = memoryview(prod_mm)
        cons, prod, words = memoryview(cons_mm).cast("Q"), base[:8].cast("Q"), base.cast("I")
        views = [cons, prod, words, base]
        self._rings.append((mp if owned else None, cons_mm, prod_mm, views))
        maker = Maker(base, prod_mm, decoder(decode))
        self._add_source(mp.fd, _ring_consumer(cons, prod, words, maker, size - 1, ring.page_size(), callback))

    def _release(self) -> None:
        for mp, cons_mm, prod_mm, views in self._rings:
            for v in reversed(views):
                v.release()
            _release_mmap(cons_mm)
            _release_mmap(prod_mm)
            if mp is not None:
                mp.close()
        self._rings.clear()


def _ring_consumer(cons: memoryview, prod: memoryview, words: memoryview, maker: Maker, mask: int, base: int,
                   callback: Callable[[Any], Any] | None) -> Consume:
    """The consume function of one ring: delivers the committed records up to the producer position read
    when it starts (one batch; a poll never chases a producer forever).

    Runs of records of one size (the common case) are found by reading their headers through one strided
    view, then made and delivered entirely in C (see :class:`~pybpf.maps.reader.Maker`)."""
    own_emit = callback_emit(callback) if callback is not None else None
    own_mode = maker.mode
    run = maker.run

    def consume(emit: Emit | None, mode: int) -> int:
        if emit is None:
            emit, mode = own_emit, own_mode
            if emit is None:
                raise BPFError("this RingBuffer has no callback: iterate it or use read()")
        elif own_mode != RAW:
            mode = own_mode  # a decoded value is already a copy
        n = 0
        c, p = cons[0], prod[0]  # one batch: what was committed when we looked
        try:
            while c < p:
                off = base + (c & mask)
                hdr = words[off >> 2]
                if hdr & _BUSY:
                    return n  # not committed yet: stop here
                length = hdr & _LEN
                stride = (length + _HDR + 7) & ~7
                if hdr & _DISCARD:
                    c += stride
                    continue
                count = (p - c) // stride
                if count > 1:  # how many records from here have exactly this header?
                    i = off >> 2
                    same = words[i:i + count * (stride >> 2):stride >> 2].tolist()
                    if same.count(hdr) != count:
                        count = len(list(takewhile(hdr.__eq__, same)))
                try:
                    offs, records = run(mode, off + _HDR, count, stride, length)
                except CodecError:
                    c += stride  # a record the decoder cannot read: report it once, then move past it
                    raise
                try:
                    emit(records)
                except BaseException:
                    c += (count - offs.__length_hint__()) * stride  # the failing record counts as read
                    raise
                c += count * stride
                n += count
            return n
        finally:
            cons[0] = c  # publish the consumer position once per batch

    return consume


class Reservation:
    """Space reserved in a user ring buffer: fill :attr:`data`, then :meth:`submit` (or :meth:`discard`)."""

    __slots__ = ("data", "_words", "_hdr", "_size", "_done")

    def __init__(self, data: memoryview, words: memoryview, hdr: int, size: int):
        self.data, self._words, self._hdr, self._size, self._done = data, words, hdr, size, False

    def submit(self) -> None:
        """Hand the record to the kernel (clear the busy bit)."""
        self._commit(0)

    def discard(self) -> None:
        """Give the space back without a record (the kernel skips it)."""
        self._commit(_DISCARD)

    def _commit(self, bits: int) -> None:
        if self._done:
            raise BPFError("this reservation was already submitted or discarded")
        self._done = True
        self.data.release()
        self._words[self._hdr] = self._size | bits


class UserRingBuffer:
    """Produces records into a BPF_MAP_TYPE_USER_RINGBUF, which programs drain with
    ``bpf_user_ringbuf_drain``.  Not thread-safe (one producer).  ``encode`` (as ``decode`` of
    :class:`RingBuffer`) lets :meth:`write` take Python values."""

    def __init__(self, ring_map: Map | int, *, encode: Any = None):
        mp, self._owned = _ring_map(ring_map, abi.BPF_MAP_TYPE_USER_RINGBUF, "UserRingBuffer")
        self._map = mp
        self._size = mp.max_entries
        self._mask = self._size - 1
        self._codec = decoder(encode)
        self._base = ring.page_size()
        self._waiter: ring.Waiter | None = None
        try:
            self._cons_mm, self._prod_mm = ring.map_ringbuf(mp.fd, self._size, user=True)
        except BaseException:
            if self._owned:
                mp.close()
            raise
        self._data = memoryview(self._prod_mm)
        self._cons = memoryview(self._cons_mm).cast("Q")
        self._prod = self._data[:8].cast("Q")
        self._words = self._data.cast("I")

    def reserve(self, size: int, timeout: float | None = 0) -> Reservation:
        """Reserve ``size`` bytes; if the ring is full, wait up to ``timeout`` seconds (None: forever) for the
        BPF side to drain it, else raise KernelError ENOSPC."""
        if size & (_BUSY | _DISCARD) or size + _HDR > self._size:
            raise kernel_error("user ring buffer reserve", _errno.E2BIG, f"{size} bytes",
                               hint=f"a record must fit the {self._size}-byte ring with its 8-byte header")
        total = (size + _HDR + 7) & ~7
        while True:
            cons, prod = self._cons[0], self._prod[0]
            if self._size - (prod - cons) >= total:
                break
            if timeout == 0 or not self._wait_space(timeout):
                raise kernel_error("user ring buffer reserve", _errno.ENOSPC, f"{size} bytes",
                                   hint="the ring is full: the BPF side has not drained it yet")
        off = self._base + (prod & self._mask)
        self._words[off >> 2] = size | _BUSY
        self._words[(off >> 2) + 1] = 0
        self._prod[0] = prod + total
        return Reservation(self._data[off + _HDR: off + _HDR + size], self._words, off >> 2, size)

    def write(self, record: Any, timeout: float | None = 0) -> None:
        """Copy one record (bytes, or a value encoded with ``encode``) into the ring and submit it."""
        if self._codec is not None and not isinstance(record, (bytes, bytearray, memoryview)):
            size = self._codec.size
            r = self.reserve(size, timeout)
            try:
                self._codec.pack_into(r.data, 0, record)
            except BaseException:
                r.discard()
                raise
        else:
            payload = memoryview(record).cast("B")
            r = self.reserve(payload.nbytes, timeout)
            r.data[:] = payload
        r.submit()

    def _wait_space(self, timeout: float | None) -> bool:
        if self._waiter is None:
            self._waiter = ring.Waiter()
            self._waiter.add(self._map.fd, select.EPOLLOUT)
        return bool(self._waiter.wait(timeout))

    def close(self) -> None:
        """Unmap the ring (and close the map if this object opened it)."""
        if self._map is None:
            return
        for v in (self._cons, self._prod, self._words, self._data):
            v.release()
        _release_mmap(self._cons_mm)
        _release_mmap(self._prod_mm)
        if self._waiter is not None:
            self._waiter.close()
        if self._owned:
            self._map.close()
        self._map = None  # type: ignore[assignment]

    def __enter__(self) -> UserRingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_map", None) is not None:
            self.close()

