"""cgroup programs (cgroup_skb, cgroup_sock, sock_addr, sockopt, sysctl, device, sock_ops): a cgroup
bpf_link (Linux 5.7+) or BPF_PROG_ATTACH, whose detach pybpf does itself when the Link closes."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..sys import abi
from ..sys.fd import FD
from .base import Link, attach_fd, open_path, resolve_attach_type

if TYPE_CHECKING:
    from ..program import Program

def attach_cgroup(prog: Program, cgroup: str | int, attach_type: int | str | None = None, *,
                  flags: int = abi.BPF_F_ALLOW_MULTI, mechanism: str | None = None) -> Link:
    """Attach a cgroup program to ``cgroup`` (a cgroup v2 directory or an fd of one).

    ``attach_type`` (``"cgroup_inet_egress"``, BPF_CGROUP_*) defaults to the program's expected attach type.
    ``flags`` apply to BPF_PROG_ATTACH (``BPF_F_ALLOW_MULTI`` by default, so other programs stay);
    ``mechanism`` forces ``"bpf_link"`` or ``"prog_attach"``."""
    atype, aname = resolve_attach_type(prog, attach_type, "cgroup_inet_ingress, cgroup_inet4_connect...")
    cgfd = open_path(cgroup, "cgroup") if isinstance(cgroup, str) else FD(os.dup(cgroup))
    target = cgroup if isinstance(cgroup, str) else f"cgroup fd {cgroup}"
    details = {"cgroup": target, "attach_type": aname}
    return attach_fd(prog, cgfd, atype, "cgroup", target, details, mechanism=mechanism, flags=flags)
