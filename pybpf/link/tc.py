"""tc programs (sched_cls) on an interface's ingress or egress: tcx links (Linux 6.6+) or, on older kernels
or when asked, a direct-action cls_bpf filter in the clsact qdisc over netlink.  A netlink attachment is
undone on close: the filter is deleted, and the clsact qdisc too if pybpf added it and it is now empty."""
from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING

from ..errors import KernelError
from ..sys import abi, netlink, syscall
from .base import Link, legacy_worked, try_link

if TYPE_CHECKING:
    from ..program import Program

NETLINK = "netlink"
_DIRECTIONS = {"ingress": (abi.BPF_TCX_INGRESS, abi.TC_H_MIN_INGRESS),
               "egress": (abi.BPF_TCX_EGRESS, abi.TC_H_MIN_EGRESS)}


def _clsact_parent(minor: int) -> int:
    return (abi.TC_H_CLSACT & 0xFFFF0000) | minor


def _direction_of(prog: Program, direction: str | None) -> str:
    if direction is None:
        direction = "egress" if prog.expected_attach_type == abi.BPF_TCX_EGRESS else "ingress"
    if direction not in _DIRECTIONS:
        raise ValueError(f"tc direction must be 'ingress' or 'egress', not {direction!r}")
    return direction


def attach_tc(prog: Program, iface: str | int, direction: str | None = None, *, mechanism: str | None = None,
              priority: int = 0, handle: int = 0) -> Link:
    """Attach a sched_cls program to ``iface``'s ``direction`` (``"ingress"``/``"egress"``; default: from
    the program's expected attach type, else ingress).

    ``mechanism`` forces ``"bpf_link"`` (tcx) or ``"netlink"`` (clsact + cls_bpf); ``priority`` and
    ``handle`` place the cls_bpf filter (0: the kernel picks)."""
    direction = _direction_of(prog, direction)
    attach_type, minor = _DIRECTIONS[direction]
    index = netlink.ifindex(iface)
    name = iface if isinstance(iface, str) else netlink.ifname(index)
    target = f"{name} {direction}"
    details = {"ifindex": index, "ifname": name, "direction": direction}
    lfd = try_link("tcx", mechanism, NETLINK, lambda: syscall.link_create(prog.fd, index, attach_type))
    if lfd is not None:
        return Link(lfd, "tc", target=target, details=details)
    link = _attach_cls_bpf(prog, index, _clsact_parent(minor), target, priority, handle, details)
    legacy_worked("tcx", mechanism)
    return link


def _attach_cls_bpf(prog: Program, index: int, parent: int, target: str, priority: int, handle: int,
                    details: dict[str, object]) -> Link:
    rtnl = netlink.Rtnl()
    created = False
    try:
        created = rtnl.clsact_add(index)
        prog_id = prog.info().id
        filt = rtnl.bpf_filter_add(index, parent, prog.fd, f"{prog.name or 'pybpf'}:[{prog_id}]", priority, handle)
    except BaseException:
        if created:
            rtnl.clsact_del(index)
        rtnl.close()
        raise

    def remove() -> None:
        try:
            rtnl.filter_del(index, parent, filt.priority, filt.handle)
            if created and not any(rtnl.filters(index, _clsact_parent(minor))
                                   for minor in (abi.TC_H_MIN_INGRESS, abi.TC_H_MIN_EGRESS)):
                rtnl.clsact_del(index)
        except KernelError as e:
            if e.errno not in (_errno.ENOENT, _errno.ENODEV, _errno.EINVAL):  # filter, device or qdisc gone
                raise
        finally:
            rtnl.close()

    def update(new: Program, old: Program | None) -> None:
        if old is not None:
            current = {(f.priority, f.handle): f.prog_id for f in rtnl.filters(index, parent)}
            if current.get((filt.priority, filt.handle)) != old.info().id:
                raise KernelError("update tc filter", _errno.EEXIST, target,
                                  hint="the filter no longer runs the program given as old")
        new_id = new.info().id
        rtnl.bpf_filter_add(index, parent, new.fd, f"{new.name or 'pybpf'}:[{new_id}]", filt.priority, filt.handle,
                            replace=True)

    return Link(None, "tc", mechanism=NETLINK, target=target, prog_id=prog_id,
                details={**details, "priority": filt.priority, "handle": filt.handle, "clsact_created": created},
                cleanup=remove, updater=update)
