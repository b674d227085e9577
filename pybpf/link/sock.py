"""Programs on sockets: socket filters (SO_ATTACH_BPF), reuseport selectors (SO_ATTACH_REUSEPORT_EBPF) and
sk_msg / sk_skb programs on a sockmap or sockhash (a sockmap link, Linux 6.10+, or BPF_PROG_ATTACH)."""
from __future__ import annotations

import errno as _errno
import os
import socket
from typing import TYPE_CHECKING

from ..errors import KernelError
from ..sys import sockopt, syscall
from ..sys.fd import FD
from ..sys.sockopt import SocketLike
from .base import Link, attach_fd, resolve_attach_type

if TYPE_CHECKING:
    from ..maps.map import Map
    from ..program import Program

SOCKOPT = "sockopt"


def _still_open(sock: SocketLike) -> bool:
    return not isinstance(sock, socket.socket) or sock.fileno() >= 0


def _attach_sockopt(prog: Program, sock: SocketLike, reuseport: bool, kind: str) -> Link:
    sockopt.attach(sock, prog.fd, reuseport)

    def remove() -> None:
        if not _still_open(sock):
            return  # closing the socket ended the attachment
        try:
            sockopt.detach(sock, reuseport)
        except KernelError as e:
            if e.errno not in (_errno.ENOENT, _errno.EBADF, _errno.ENOTSOCK):  # nothing attached any more
                raise

    def update(new: Program, old: Program | None) -> None:
        sockopt.attach(sock, new.fd, reuseport)

    fileno = sock if isinstance(sock, int) else sock.fileno()
    return Link(None, kind, mechanism=SOCKOPT, target=f"socket fd {fileno}", prog_id=prog.info().id,
                details={"fd": fileno}, cleanup=remove, updater=update)


def attach_socket(prog: Program, sock: SocketLike) -> Link:
    """Attach a socket filter program to ``sock`` (a socket object or fd): it sees every packet the
    socket receives and returns how many bytes to keep (0 drops the packet)."""
    return _attach_sockopt(prog, sock, False, "socket_filter")


def attach_reuseport(prog: Program, sock: SocketLike) -> Link:
    """Attach an sk_reuseport program to the SO_REUSEPORT group of ``sock``: it picks the group's socket
    for each incoming packet or connection."""
    return _attach_sockopt(prog, sock, True, "sk_reuseport")


def attach_sockmap(prog: Program, sockmap: Map | int, attach_type: int | str | None = None, *,
                   mechanism: str | None = None) -> Link:
    """Attach an sk_msg or sk_skb program to a sockmap/sockhash; ``attach_type`` (``"sk_msg_verdict"``,
    ``"sk_skb_stream_verdict"``...) defaults to the program's expected attach type."""
    atype, aname = resolve_attach_type(prog, attach_type, "sk_msg_verdict, sk_skb_stream_verdict...")
    map_fd = FD(os.dup(sockmap if isinstance(sockmap, int) else sockmap.fd))
    target = f"map id {syscall.obj_info(map_fd.fd, 'map').id}"
    details = {"attach_type": aname}
    return attach_fd(prog, map_fd, atype, "sockmap", target, details, mechanism=mechanism)
