"""Network namespaces: enter one for a while (setns through libc; Python 3.11 has no os.setns).

``ip netns exec`` remounts /sys, hiding bpffs pins; entering the namespace from Python keeps them visible.
Only the calling thread moves; sockets (netlink too) stay in the namespace they were created in.
"""
from __future__ import annotations

import errno as _errno
import os
from contextlib import contextmanager
from typing import Iterator

from ..errors import kernel_error

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace ``fd`` refers to."""
    import ctypes  # here: only entering a namespace needs it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        raise kernel_error("setns", ctypes.get_errno(), hint="entering a namespace needs CAP_SYS_ADMIN")


def path_of(netns: str) -> str:
    """The file of a network namespace given by ``ip netns`` name or by path."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def open_netns(netns: str | None = None) -> int:
    """An fd for a network namespace (by ``ip netns`` name or path; None: this thread's own)."""
    path = "/proc/thread-self/ns/net" if netns is None else path_of(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise kernel_error("open network namespace", e.errno or _errno.ENOENT, path) from None


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """``with entered("ns1"):`` runs the block inside network namespace ``ns1`` (name or path)."""
    home = open_netns()
    try:
        target = open_netns(netns)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)
