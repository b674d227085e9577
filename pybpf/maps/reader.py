"""What every event reader shares: waiting (epoll plus a wake-up eventfd), the poll lock, closing from any
thread, record iteration, asyncio, and :class:`Poller` for several readers at once.

A reader is a set of *sources*: an fd that becomes readable when records wait, and a function consuming what
waits behind it (one ring buffer; one CPU's perf ring).  ``poll()`` first drains every source (no syscall when
records are already there), then sleeps in ``epoll_wait`` and drains the sources that woke it.  ``close()`` from
another thread wakes a sleeping ``poll()``, waits for it to return, then unmaps and closes everything.
"""
from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from functools import partial
from itertools import repeat
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from ..errors import BPFError, CodecError
from ..sys.ring import Waiter
from .codec import Codec, codec_for

Emit = Callable[[Iterable[Any]], Any]
"""Takes an iterable of records (and consumes it): ``list.extend``, or a callback applied to each record."""
Consume = Callable[[Emit | None, int], int]
"""consume(emit, mode) -> records delivered; ``emit`` None means the reader's own callback and mode."""

RAW, COPY, FLAT, DECODE = 0, 1, 2, 3
"""How records are made: a memoryview into the ring, a bytes copy, a named tuple straight from
``struct.unpack_from``, or ``codec.unpack_from``."""


def decoder(spec: Any) -> Codec | None:
    """The codec records are decoded with: None (raw), a Codec, a struct format, ``(format, names)``, a ctypes
    type, or a BTF type (a :class:`pybpf.btf.Type` belonging to a BTF)."""
    if spec is None or isinstance(spec, Codec):
        return spec
    btf = getattr(spec, "btf", None)
    if btf is not None and hasattr(spec, "kind"):
        from .btfcodec import btf_codec

        return btf_codec(btf, spec)
    if isinstance(spec, str):
        from .codec import struct_codec

        return struct_codec(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        from .codec import struct_codec

        return struct_codec(spec[0], None, spec[1])
    import ctypes

    if isinstance(spec, type) and issubclass(spec, (ctypes.Structure, ctypes.Union, ctypes.Array,
                                                    ctypes._SimpleCData)):  # type: ignore[attr-defined]
        return codec_for(spec, ctypes.sizeof(spec))
    raise CodecError(f"cannot decode records with {spec!r}: give a Codec, a struct format, (format, names), "
                     f"a ctypes type or a BTF type")


def callback_emit(callback: Callable[..., Any], cpu: int | None = None) -> Emit:
    """An :data:`Emit` calling ``callback(record)`` -- or ``callback(cpu, record)`` when ``cpu`` is given -- on
    each record, looping in C (``deque(map(...), maxlen=0)``)."""
    drain: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
    if cpu is None:
        def emit(records: Iterable[Any]) -> None:
            drain(map(callback, records))
    else:
        cpus = repeat(cpu)

        def emit(records: Iterable[Any]) -> None:
            drain(map(callback, cpus, records))
    return emit


class Maker:
    """Makes records from runs of equally sized records in a ring's memory, looping in C.  Delivery is driven
    by an iterator of data offsets whose ``__length_hint__`` tells how far it got if a callback raised."""

    __slots__ = ("mode", "size", "_data", "_get", "_unpack", "_new")

    def __init__(self, data: memoryview, mm: Any, codec: Codec | None):
        self._data, self._get = data, mm.__getitem__
        self._unpack: Any
        self._new: Any
        self.size = codec.size if codec is not None else 0
        if codec is None:
            self.mode, self._unpack, self._new = RAW, None, None
        elif codec.flat is not None:
            self.mode, self._unpack, self._new = FLAT, codec.flat[0], partial(tuple.__new__, codec.flat[1])
        else:
            self.mode, self._unpack, self._new = DECODE, codec.unpack_from, None

    def run(self, mode: int, start: int, count: int, stride: int, length: int) -> tuple[Any, Iterator[Any]]:
        """``count`` records of ``length`` bytes, the first at data offset ``start``, ``stride`` apart: returns
        (the offsets iterator driving delivery, the records iterator)."""
        stop = start + count * stride
        offs = iter(range(start, stop, stride))
        if mode <= COPY:
            ends = range(start + length, stop + length, stride)
            return offs, map(self._data.__getitem__ if mode == RAW else self._get, map(slice, offs, ends))
        if length < self.size:
            raise CodecError(f"a {length}-byte record is shorter than the {self.size}-byte decoder")
        if mode == FLAT:
            return offs, map(self._new, map(self._unpack, repeat(self._data), offs))
        return offs, map(self._unpack, repeat(self._data), offs)


    def one(self, mode: int, buf: Any, offset: int, length: int) -> Any:
        """One record of ``length`` bytes at ``offset`` of ``buf`` (a record copied out of a ring)."""
        if mode <= COPY:
            return memoryview(buf)[offset:offset + length] if mode == RAW else bytes(buf[offset:offset + length])
        if length < self.size:
            raise CodecError(f"a {length}-byte record is shorter than the {self.size}-byte decoder")
        if mode == FLAT:
            return self._new(self._unpack(buf, offset))
        return self._unpack(buf, offset)


class Reader:
    """Base of :class:`~pybpf.maps.ringbuf.RingBuffer`, :class:`~pybpf.maps.perfbuf.PerfBuffer` and
    :class:`Poller`.  Usable as a context manager; iterating yields records (copies or decoded values)."""

    def __init__(self) -> None:
        self._waiter = Waiter()
        self._lock = threading.Lock()
        self._closed = self._released = False
        self._owner: int | None = None  # the thread consuming now (its callbacks may close the reader)
        self._sources: dict[int, Consume] = {}
        self._async_wakers: set[Callable[[], None]] = set()  # wake_async waits: close() ends them

    def _add_source(self, fd: int, consume: Consume, events: int | None = None) -> None:
        self._sources[fd] = consume
        if events is None:
            self._waiter.add(fd)
        else:
            self._waiter.add(fd, events)

    # --- consuming ----------------------------------------------------------------------------------------

    @contextmanager
    def _consuming(self) -> Iterator[bool]:
        """Hold the poll lock as the consuming thread; yields False when closed.  If a callback closed the
        reader meanwhile, everything is released on the way out."""
        with self._lock:
            self._owner = threading.get_ident()
            try:
                yield not self._closed
            finally:
                self._owner = None
                if self._closed:
                    self._teardown()

    def _drain(self, emit: Emit | None, mode: int, fds: list[int] | None = None) -> int:
        n = 0
        sources = self._sources
        for fd in (list(sources) if fds is None else fds):
            consume = sources.get(fd)
            if consume is not None and not self._closed:
                n += consume(emit, mode)
        return n

    def poll(self, timeout: float | None = None) -> int:
        """Deliver every waiting record to the callback; if there were none, wait up to ``timeout`` seconds
        (None: until records come or the reader is closed) and deliver what came.  Returns the number
        delivered (0 on timeout or once closed)."""
        with self._consuming() as open_:
            if not open_:
                return 0
            n = self._drain(None, -1)
            if n or timeout == 0:
                return n
            ready = self._waiter.wait(timeout)
            if not ready or self._closed:
                return 0
            return self._drain(None, -1, ready)

    def consume(self) -> int:
        """Deliver every waiting record to the callback without waiting; returns how many."""
        with self._consuming() as open_:
            return self._drain(None, -1) if open_ else 0

    def _take(self, timeout: float | None, copy_mode: int) -> list[Any] | None:
        """Records as a list (waiting up to ``timeout`` if none), or None once closed."""
        out: list[Any] = []
        with self._consuming() as open_:
            if not open_:
                return None
            self._drain(out.extend, copy_mode)
            if out or timeout == 0:
                return out
            ready = self._waiter.wait(timeout)
            if ready is None or self._closed:
                return None
            self._drain(out.extend, copy_mode, ready)
        return out

    def read(self, timeout: float | None = 0) -> list[Any]:
        """The waiting records as a list of ``bytes`` copies (or decoded values), waiting up to ``timeout``
        seconds when none wait (default: don't wait)."""
        return self._take(timeout, self._copy_mode()) or []

    def records(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield records (``bytes`` copies, or decoded values) as they come; ends when a wait of ``timeout``
        seconds brings nothing (None: never) or when the reader is closed."""
        mode = self._copy_mode()
        while True:
            batch = self._take(timeout, mode)
            if not batch:
                return
            yield from batch

    __iter__ = records

    def _copy_mode(self) -> int:
        """The mode iteration asks for: copies (each source decodes instead when it has a decoder)."""
        return COPY

    # --- asyncio ---------------------------------------------------------------------------------------------

    async def wait_async(self) -> None:
        """Wait, without blocking the event loop, until records are waiting (or the reader is closed)."""
        import asyncio  # here, not at the top: importing asyncio costs a tool's start-up ~0.1 s

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = self.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        def wake() -> None:  # from close() in any thread: the epoll fd may be closed before the loop sees it
            try:
                loop.call_soon_threadsafe(ready)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass
        loop.add_reader(fd, ready)
        self._async_wakers.add(wake)
        try:
            if not self._closed:
                await fut
        finally:
            self._async_wakers.discard(wake)
            loop.remove_reader(fd)

    async def poll_async(self, timeout: float | None = None) -> int:
        """:meth:`poll` for asyncio: deliver waiting records, else wait up to ``timeout`` seconds for some."""
        import asyncio

        n = self.consume()
        if n or self._closed:
            return n
        try:
            await asyncio.wait_for(self.wait_async(), timeout)
        except asyncio.TimeoutError:
            return 0
        return self.consume()

    async def __aiter__(self) -> AsyncIterator[Any]:
        mode = self._copy_mode()
        while not self._closed:
            batch = self._take(0, mode)
            if batch is None:
                return
            for rec in batch:
                yield rec
            if not batch:
                await self.wait_async()

    # --- lifetime ---------------------------------------------------------------------------------------------

    def fileno(self) -> int:
        """An fd that is readable when records wait (an epoll fd): for select/asyncio ``add_reader``."""
        if self._waiter.closed:
            raise BPFError("reader is closed")
        return self._waiter.fileno()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop reading: wake a thread waiting in :meth:`poll` (it returns 0), wait for it, then release the
        rings and fds.  Called from a callback, the poll in progress stops after the current batch and
        releases everything as it returns.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._waiter.wake()
        for wake in list(self._async_wakers):
            wake()
        if self._owner == threading.get_ident():
            return
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        if not self._released:
            self._released = True
            self._release()
            self._sources.clear()
            self._waiter.close()

    def _release(self) -> None:
        """Unmap and close what the reader owns (called once, under the lock)."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


class Poller(Reader):
    """Several readers (ring buffers, perf buffers) polled together: one ``epoll_wait`` for all, each ready
    source drained with its own reader's callback.  The poller owns the readers: closing it closes them."""

    def __init__(self, *readers: Reader):
        super().__init__()
        self.readers: list[Reader] = []
        for r in readers:
            self.add(r)

    def add(self, reader: Reader) -> None:
        """Poll ``reader`` too (the poller now owns it)."""
        self.readers.append(reader)
        for fd, consume in reader._sources.items():
            self._add_source(fd, _locked(reader, consume))

    def _copy_mode(self) -> int:
        raise TypeError("a Poller delivers records to its readers' callbacks: iterate the readers themselves")

    def _release(self) -> None:
        for r in self.readers:
            r.close()


def _locked(reader: Reader, consume: Consume) -> Consume:
    """``consume`` run as ``reader``'s own consuming thread (its callbacks may close it)."""

    def run(emit: Emit | None, mode: int) -> int:
        with reader._consuming() as open_:
            return consume(None, -1) if open_ else 0
    return run
