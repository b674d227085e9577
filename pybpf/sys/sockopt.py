"""BPF programs on sockets: SO_ATTACH_BPF (socket filters) and SO_ATTACH_REUSEPORT_EBPF (reuseport groups)."""
from __future__ import annotations

import errno as _errno
import socket
import struct
from typing import Protocol, Union

from ..errors import kernel_error
from . import abi


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


SocketLike = Union[socket.socket, _HasFileno, int]

_ATTACH = {False: ("SO_ATTACH_BPF", abi.SO_ATTACH_BPF),
           True: ("SO_ATTACH_REUSEPORT_EBPF", abi.SO_ATTACH_REUSEPORT_EBPF)}
_DETACH = {False: ("SO_DETACH_BPF", abi.SO_DETACH_BPF), True: ("SO_DETACH_REUSEPORT_BPF", abi.SO_DETACH_REUSEPORT_BPF)}


def _setsockopt(sock: SocketLike, name: str, opt: int, value: bytes) -> None:
    owned = None
    if isinstance(sock, socket.socket):
        s = sock
    else:
        owned = s = socket.socket(fileno=sock if isinstance(sock, int) else sock.fileno())
    try:
        s.setsockopt(socket.SOL_SOCKET, opt, value)
    except OSError as e:
        raise kernel_error(f"setsockopt {name}", e.errno or _errno.EIO) from None
    finally:
        if owned is not None:
            owned.detach()  # the fd belongs to the caller


def attach(sock: SocketLike, prog_fd: int, reuseport: bool = False) -> None:
    """Attach ``prog_fd`` to a socket (socket filter), or to its SO_REUSEPORT group with ``reuseport``."""
    name, opt = _ATTACH[reuseport]
    _setsockopt(sock, name, opt, struct.pack("=i", prog_fd))


def detach(sock: SocketLike, reuseport: bool = False) -> None:
    """Remove the socket's BPF filter (or its reuseport group's selector)."""
    name, opt = _DETACH[reuseport]
    _setsockopt(sock, name, opt, struct.pack("=i", 0))
