"""struct_ops: register a kernel operations table (``tcp_congestion_ops``...) implemented by BPF programs.

The loader creates the BPF_MAP_TYPE_STRUCT_OPS map and loads its programs; registering writes the value (the
kernel's struct with program fds in its function pointers).  A map created with BPF_F_LINK
(``SEC(".struct_ops.link")``, Linux 6.4+) is then registered through a bpf_link; an older-style map is
registered by the update itself and unregistered by deleting the element."""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..sys import abi, syscall
from .base import Link

if TYPE_CHECKING:
    from ..maps.map import Map

_KEY0 = struct.pack("<I", 0)


def attach_struct_ops(m: Map, value: bytes) -> Link:
    """Register struct_ops map ``m`` with ``value``; the returned Link unregisters it when closed."""
    detail = f"struct_ops map {m.name!r}"
    if m.flags & abi.BPF_F_LINK:  # the update only fills the value in; the link registers it
        syscall.map_update_elem(m.fd, _KEY0, value, detail=detail)
        return Link(syscall.link_create(m.fd, 0, abi.BPF_STRUCT_OPS), "struct_ops", target=m.name)
    fd = m.dup_fd()  # taken first: the registration outlives a closed Map object until the Link is closed
    try:
        syscall.map_update_elem(fd.fd, _KEY0, value, detail=detail)
    except BaseException:
        fd.close()
        raise

    def unregister() -> None:
        try:
            syscall.map_delete_elem(fd.fd, _KEY0, detail)
        finally:
            fd.close()

    return Link(None, "struct_ops", mechanism="map_update", target=m.name, cleanup=unregister)
