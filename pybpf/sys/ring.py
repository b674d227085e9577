"""Shared memory with the kernel and waiting on it: mmap of map memory and ring pages, perf output events,
epoll sets with a wake-up eventfd.

Thin and typed: the ring *protocols* (positions, headers, records) live in :mod:`pybpf.maps.ringbuf` and
:mod:`pybpf.maps.perfbuf`; this module only opens, maps and waits.
"""
from __future__ import annotations

import errno as _errno
import fcntl
import mmap as _mmap
import os
import select

from ..errors import kernel_error
from . import abi, syscall
from .fd import FD

PAGE_SIZE = _mmap.PAGESIZE


def page_size() -> int:
    """The system page size (ring buffers and perf rings are counted in pages)."""
    return PAGE_SIZE


def dup_fd(fd: int) -> int:
    """A close-on-exec duplicate of ``fd`` (for readers that must own what they hold)."""
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)
    except OSError as e:
        raise kernel_error("fcntl F_DUPFD_CLOEXEC", e.errno or _errno.EBADF, f"fd {fd}") from None


def _mmap_fd(fd: int, length: int, prot: int, offset: int, what: str) -> _mmap.mmap:
    try:
        return _mmap.mmap(fd, length, flags=_mmap.MAP_SHARED, prot=prot, offset=offset)
    except OSError as e:
        raise kernel_error("mmap", e.errno or _errno.EINVAL, what) from None


def map_memory(fd: int, length: int, writable: bool | None = None) -> _mmap.mmap:
    """Map ``length`` bytes (rounded up to pages) of a BPF_F_MMAPABLE map, arena or global-data map.
    ``writable=None`` maps read-write and falls back to read-only for frozen/read-only maps."""
    length = -(-length // PAGE_SIZE) * PAGE_SIZE
    rw = _mmap.PROT_READ | _mmap.PROT_WRITE
    if writable is None:
        try:
            return _mmap_fd(fd, length, rw, 0, "map memory")
        except OSError as e:
            if e.errno not in (_errno.EPERM, _errno.EACCES):
                raise
        return _mmap_fd(fd, length, _mmap.PROT_READ, 0, "map memory (read-only)")
    return _mmap_fd(fd, length, rw if writable else _mmap.PROT_READ, 0, "map memory")


def map_ringbuf(fd: int, size: int, user: bool = False) -> tuple[_mmap.mmap, _mmap.mmap]:
    """Map a ring buffer of ``size`` data bytes: (consumer page, producer page + data mapped twice).

    BPF_MAP_TYPE_RINGBUF (``user=False``): the consumer page is ours to write, the rest read-only.
    BPF_MAP_TYPE_USER_RINGBUF (``user=True``): the other way round -- we produce, the kernel consumes."""
    rw, ro = _mmap.PROT_READ | _mmap.PROT_WRITE, _mmap.PROT_READ
    cons = _mmap_fd(fd, PAGE_SIZE, ro if user else rw, 0, "ring buffer consumer page")
    try:
        prod = _mmap_fd(fd, PAGE_SIZE + 2 * size, rw if user else ro, PAGE_SIZE, "ring buffer data pages")
    except BaseException:
        cons.close()
        raise
    return cons, prod


def open_perf_output(cpu: int, wakeup_events: int = 1, wakeup_bytes: int = 0) -> FD:
    """A PERF_COUNT_SW_BPF_OUTPUT event on ``cpu`` (all processes), enabled, sampling raw records; the reader
    is woken every ``wakeup_events`` records, or once ``wakeup_bytes`` are waiting when that is given."""
    attr = syscall.new_perf_attr()
    attr.type, attr.config = abi.PERF_TYPE_SOFTWARE, abi.PERF_COUNT_SW_BPF_OUTPUT
    attr.sample_type = abi.PERF_SAMPLE_RAW
    attr.sample_period = 1
    if wakeup_bytes:
        attr.watermark = 1
        attr.wakeup_watermark = wakeup_bytes
    else:
        attr.wakeup_events = max(1, wakeup_events)
    return FD(syscall.perf_event_open(attr, pid=-1, cpu=cpu, what=f"BPF output event on CPU {cpu}"))


def map_perf_ring(fd: int, pages: int) -> _mmap.mmap:
    """Map a perf event's ring: the ``perf_event_mmap_page`` plus ``pages`` data pages (a power of two),
    read-write so the reader can publish ``data_tail``."""
    return _mmap_fd(fd, (pages + 1) * PAGE_SIZE, _mmap.PROT_READ | _mmap.PROT_WRITE, 0, "perf ring")


class Waiter:
    """An epoll set plus an eventfd that :meth:`wake` signals, so a thread blocked in :meth:`wait` can be
    woken (by :meth:`close` from another thread, say).  ``fileno()`` is the epoll fd: pollable itself, so
    waiters nest and plug into asyncio's ``add_reader``."""

    __slots__ = ("_ep", "_event", "_event_fd", "__weakref__")

    def __init__(self) -> None:
        self._ep = select.epoll()
        try:
            self._event_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except BaseException:
            self._ep.close()
            raise
        self._event = FD(self._event_fd)
        self._ep.register(self._event_fd, select.EPOLLIN)

    def add(self, fd: int, events: int = select.EPOLLIN) -> None:
        """Watch ``fd`` for ``events``."""
        try:
            self._ep.register(fd, events)
        except OSError as e:
            raise kernel_error("epoll_ctl", e.errno or _errno.EINVAL, f"fd {fd}") from None

    def wait(self, timeout: float | None = None, max_events: int = 64) -> list[int] | None:
        """Block until a watched fd is ready or ``timeout`` seconds pass (None: forever, 0: don't block);
        return the ready fds, or None once woken by :meth:`wake`."""
        try:
            ready = self._ep.poll(-1 if timeout is None else timeout, max_events)
        except InterruptedError:
            return []
        fds = []
        for fd, _ in ready:
            if fd == self._event_fd:
                return None
            fds.append(fd)
        return fds

    def wake(self) -> None:
        """Make the current and every later :meth:`wait` return None (readers call it when closing)."""
        try:
            os.eventfd_write(self._event_fd, 1)
        except (OSError, ValueError):
            pass

    def fileno(self) -> int:
        """The epoll fd (readable when a watched fd is ready or after :meth:`wake`)."""
        return self._ep.fileno()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._ep.closed

    def close(self) -> None:
        """Close the epoll fd and the eventfd."""
        self._ep.close()
        self._event.close()
