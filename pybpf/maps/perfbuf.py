"""Perf buffers: :class:`PerfBuffer` reads what programs send with ``bpf_perf_event_output`` into a
BPF_MAP_TYPE_PERF_EVENT_ARRAY.

One PERF_COUNT_SW_BPF_OUTPUT event per CPU, each with its own mmap'd ring: a ``perf_event_mmap_page`` whose
``data_head`` the kernel advances and whose ``data_tail`` the reader publishes, then the data pages (mapped
once, so a record may wrap around the end: such records are copied together).  Records are
``perf_event_header`` (type u32, misc u16, size u16) then, for PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW, a u32
size and the raw bytes (padded so the record stays 8-byte aligned); PERF_RECORD_LOST carries how many samples
the kernel dropped because the ring was full.

Memory ordering: ``data_head`` is read before the records and ``data_tail`` written after them (once per
batch), each as one aligned memoryview item in program order -- the acquire/release pair on x86-64.
"""
from __future__ import annotations

import mmap as _mmap
from itertools import repeat, takewhile
from typing import Any, Callable

from ..errors import BPFError, CodecError, KernelError
from ..sys import abi, ring
from ..sys._cffi_abi import ffi
from ..sys.fd import FD
from .map import Map, _release_mmap, cpu_list
from .reader import RAW, Consume, Emit, Maker, Reader, callback_emit, decoder

_HEAD = ffi.offsetof("struct perf_event_mmap_page", "data_head") // 8  # indexes of u64 words
_TAIL = ffi.offsetof("struct perf_event_mmap_page", "data_tail") // 8
_OFFSET = ffi.offsetof("struct perf_event_mmap_page", "data_offset") // 8
_SIZE = ffi.offsetof("struct perf_event_mmap_page", "data_size") // 8
_SAMPLE, _LOST = abi.PERF_RECORD_SAMPLE, abi.PERF_RECORD_LOST
_RAW_AT = ffi.sizeof("struct perf_event_header") + 4  # the raw bytes follow the header and a u32 size


class PerfBuffer(Reader):
    """Reads one perf event array map: a ring per CPU (``pages`` data pages each, a power of two).

    ``callback(cpu, record)`` gets each sample from :meth:`poll`/:meth:`consume`: a ``memoryview`` valid only
    during the call (its length includes the kernel's padding to 8 bytes), or the decoded value when ``decode``
    is given.  Iterating the reader (or :meth:`read`, ``async for``) yields ``bytes`` copies or decoded values.
    ``lost(cpu, count)`` is told of samples the kernel dropped; :attr:`lost` keeps the totals per CPU.  (The
    kernel writes its count of dropped samples into the ring just before the next sample that fits.)
    ``wakeup_events`` (or ``wakeup_bytes``) sets how much must wait in a ring before a waiting poll wakes.
    """

    def __init__(self, perf_map: Map | int, callback: Callable[[int, Any], Any] | None = None, *,
                 lost: Callable[[int, int], Any] | None = None, pages: int = 8, wakeup_events: int = 1,
                 wakeup_bytes: int = 0, decode: Any = None, cpus: list[int] | None = None):
        super().__init__()
        if pages <= 0 or pages & (pages - 1):
            raise ValueError(f"pages must be a power of two, got {pages}")
        self._rings: list[tuple[int, FD, _mmap.mmap, list[memoryview]]] = []
        self._owned = not isinstance(perf_map, Map)
        self._map: Map | None = None
        self.lost: dict[int, int] = {}
        self._lost_cb = lost
        try:
            pmap = perf_map if isinstance(perf_map, Map) else Map.from_fd(ring.dup_fd(perf_map), btf=False)
            self._map = pmap
            if pmap.type != abi.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
                raise BPFError(f"PerfBuffer needs a BPF_MAP_TYPE_PERF_EVENT_ARRAY map, {pmap!r} is not one")
            codec = decoder(decode)
            for cpu in cpus if cpus is not None else cpu_list("/sys/devices/system/cpu/online"):
                self._open_cpu(pmap, cpu, pages, wakeup_events, wakeup_bytes, callback, codec)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, perf_map: Map, cpu: int, pages: int, wakeup_events: int, wakeup_bytes: int,
                  callback: Callable[[int, Any], Any] | None, codec: Any) -> None:
        event = ring.open_perf_output(cpu, wakeup_events, wakeup_bytes)
        try:
            mm = ring.map_perf_ring(event.fd, pages)
        except BaseException:
            event.close()
            raise
        base = memoryview(mm)
        views = [base.cast("Q"), base.cast("I"), base.cast("H"), base]
        self._rings.append((cpu, event, mm, views))
        self.lost[cpu] = 0
        maker = Maker(base, mm, codec)
        self._add_source(event.fd, self._consumer(cpu, views, mm, maker, callback))
        perf_map[cpu] = event.fd

    def _consumer(self, cpu: int, views: list[memoryview], mm: _mmap.mmap, maker: Maker,
                  callback: Callable[[int, Any], Any] | None) -> Consume:
        """The consume function of one CPU's ring."""
        meta, u32, u16, _ = views
        base, size = meta[_OFFSET], meta[_SIZE]
        mask, end = size - 1, base + size
        own_mode, run, one = maker.mode, maker.run, maker.one
        lost_totals, lost_cb = self.lost, self._lost_cb
        own_emit = callback_emit(callback, cpu) if callback is not None else None

        def consume(emit: Emit | None, mode: int) -> int:
            if emit is None:
                emit, mode = own_emit, own_mode
                if emit is None:
                    raise BPFError("this PerfBuffer has no callback: iterate it or use read()")
            elif own_mode != RAW:
                mode = own_mode  # a decoded value is already a copy
            n = 0
            tail, head = meta[_TAIL], meta[_HEAD]  # one batch: what was written when we looked
            try:
                while tail < head:
                    off = base + (tail & mask)
                    kind, rec_size = u32[off >> 2], u16[(off >> 1) + 3]
                    if rec_size == 0:
                        raise BPFError(f"perf ring of CPU {cpu} is corrupt (zero-sized record at {tail})")
                    if kind == _SAMPLE:
                        if off + rec_size <= end:
                            count = min(head - tail, end - off) // rec_size
                            if count > 1:  # how many samples from here have this very size?
                                kinds = u32[off >> 2:(off + count * rec_size) >> 2:rec_size >> 2].tolist()
                                sizes = u16[(off >> 1) + 3:(off + count * rec_size) >> 1:rec_size >> 1].tolist()
                                if kinds.count(kind) != count or sizes.count(rec_size) != count:
                                    count = len(list(takewhile(bool, map(_same, kinds, repeat(kind), sizes,
                                                                         repeat(rec_size)))))
                            try:
                                offs, records = run(mode, off + _RAW_AT, count, rec_size, u32[(off >> 2) + 2])
                            except CodecError:
                                tail += rec_size  # undecodable: report it once, then move past it
                                raise
                            try:
                                emit(records)
                            except BaseException:
                                tail += (count - offs.__length_hint__()) * rec_size
                                raise
                            tail += count * rec_size
                            n += count
                            continue
                        # wraps around the end of the ring: copy the two pieces together
                        piece = end - off
                        whole = mm[off:end] + mm[base:base + rec_size - piece]
                        raw_len = int.from_bytes(whole[8:12], "little")
                        tail += rec_size
                        emit((one(mode, whole, _RAW_AT, raw_len),))
                        n += 1
                        continue
                    if kind == _LOST:
                        at = base + ((tail + 16) & mask)
                        dropped = meta[at >> 3]
                        lost_totals[cpu] += dropped
                        if lost_cb is not None:
                            lost_cb(cpu, dropped)
                    tail += rec_size
                return n
            finally:
                meta[_TAIL] = tail  # publish once per batch

        return consume

    @property
    def lost_total(self) -> int:
        """Samples the kernel dropped on every CPU since this reader opened."""
        return sum(self.lost.values())

    def _release(self) -> None:
        pmap = self._map
        for cpu, event, mm, views in self._rings:
            if pmap is not None and not pmap.closed:
                try:
                    pmap.delete(cpu)
                except KernelError:
                    pass
            for v in reversed(views):
                v.release()
            _release_mmap(mm)
            event.close()
        self._rings.clear()
        if self._owned and pmap is not None:
            pmap.close()


def _same(kind: int, want_kind: int, size: int, want_size: int) -> bool:
    return kind == want_kind and size == want_size
