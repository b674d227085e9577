"""An owned file descriptor: closed exactly once, on ``close()``, on ``with`` exit or when garbage-collected."""
from __future__ import annotations

import os
import weakref
from typing import TypeVar

from ..errors import BPFError


class FD:
    """Owns one kernel file descriptor (a map, program, link, BTF object, perf event...).

    The fd is closed by :meth:`close`, when a ``with`` block ends, or by a ``weakref.finalize`` when the FD is
    garbage-collected or the interpreter exits -- whichever comes first, and only once.
    """

    __slots__ = ("_fd", "_finalizer", "__weakref__")

    def __init__(self, fd: int):
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def fd(self) -> int:
        """The raw descriptor number; raises if the FD was closed."""
        if self._fd < 0:
            raise BPFError("file descriptor already closed")
        return self._fd

    def __int__(self) -> int:
        return self.fd

    def fileno(self) -> int:
        """The raw descriptor (so an FD works with ``select``/``epoll``/``os.fstat``)."""
        return self.fd

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._fd < 0

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self._fd >= 0:
            self._fd = -1
            self._finalizer()

    def detach(self) -> int:
        """Give up ownership: return the raw fd, which the caller must close."""
        fd = self.fd
        self._finalizer.detach()
        self._fd = -1
        return fd

    def dup(self) -> FD:
        """A new FD owning a duplicate (close-on-exec) of this descriptor."""
        import fcntl

        return FD(fcntl.fcntl(self.fd, fcntl.F_DUPFD_CLOEXEC, 0))

    def __enter__(self) -> FD:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FD({self._fd})" if self._fd >= 0 else "FD(closed)"


_Owner = TypeVar("_Owner", bound="FDOwner")


class FDOwner:
    """Base of live objects that own one :class:`FD` in ``self._fd`` (Program, Map): ``fd``, ``fileno()``,
    ``closed``, ``close()`` and ``with`` blocks.  Subclasses releasing more than the fd extend :meth:`close`."""

    _fd: FD

    @property
    def fd(self) -> int:
        """The file descriptor (raises once closed)."""
        return self._fd.fd

    def fileno(self) -> int:
        """Same as :attr:`fd` (so the object works with ``select``/``epoll``)."""
        return self._fd.fd

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._fd.closed

    def close(self) -> None:
        """Release the fd (the kernel frees the object once nothing else holds it)."""
        self._fd.close()

    def __enter__(self: _Owner) -> _Owner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
