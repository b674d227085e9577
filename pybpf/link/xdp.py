"""XDP on a network interface: a bpf_link (BPF_LINK_CREATE with BPF_XDP, Linux 5.9+) or, on older kernels
or when asked, netlink IFLA_XDP -- which pybpf then undoes itself when the Link closes."""
from __future__ import annotations

import errno as _errno
from contextlib import nullcontext
from typing import TYPE_CHECKING

from ..errors import KernelError, NotFound
from ..sys import abi, netlink, syscall
from ..sys.fd import FD
from .base import Link, legacy_worked, try_link

if TYPE_CHECKING:
    from ..program import Program

NETLINK = "netlink"
MODES = {None: 0, "skb": abi.XDP_FLAGS_SKB_MODE, "generic": abi.XDP_FLAGS_SKB_MODE,
         "drv": abi.XDP_FLAGS_DRV_MODE, "native": abi.XDP_FLAGS_DRV_MODE,
         "hw": abi.XDP_FLAGS_HW_MODE, "offload": abi.XDP_FLAGS_HW_MODE}


def _mode_flags(mode: str | None) -> int:
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"XDP mode must be one of {sorted(m for m in MODES if m)}, not {mode!r}") from None


def attach_xdp(prog: Program, iface: str | int, *, mode: str | None = None, mechanism: str | None = None) -> Link:
    """Attach an XDP program to interface ``iface`` (name or index, in this thread's network namespace).

    ``mode`` is ``"skb"`` (generic), ``"drv"`` (native) or ``"hw"`` (offload); the default lets the kernel
    choose (native when the driver has it).  ``mechanism`` forces ``"bpf_link"`` or ``"netlink"``.  Either
    way attaching fails with EBUSY if another program is there already."""
    flags = _mode_flags(mode)
    index = netlink.ifindex(iface)
    name = iface if isinstance(iface, str) else netlink.ifname(index)
    details = {"ifindex": index, "ifname": name, "mode": mode or "auto"}
    lfd = try_link("xdp", mechanism, NETLINK, lambda: syscall.link_create(prog.fd, index, abi.BPF_XDP, flags))
    if lfd is not None:
        return Link(lfd, "xdp", target=name, details=details)
    link = _attach_netlink(prog, index, name, flags, details)
    legacy_worked("xdp", mechanism)
    return link


def _attach_netlink(prog: Program, index: int, name: str, flags: int, details: dict[str, object]) -> Link:
    rtnl = netlink.Rtnl()
    try:
        rtnl.xdp_attach(index, prog.fd, flags | abi.XDP_FLAGS_UPDATE_IF_NOEXIST)
        state = {"prog_id": prog.info().id}
    except BaseException:
        rtnl.close()
        raise

    def ours() -> FD | None:
        """An fd of the program we attached, if it still exists."""
        try:
            return FD(syscall.fd_by_id("prog", state["prog_id"]))
        except NotFound:
            return None

    def remove() -> None:
        try:
            mine = ours()
            if mine is not None:
                with mine:
                    rtnl.xdp_attach(index, -1, flags, expected_fd=mine.fd)
        except KernelError as e:
            # EEXIST: someone replaced our program (theirs stays); ENODEV: the interface is gone
            if e.errno not in (_errno.EEXIST, _errno.ENODEV, _errno.ENOENT):
                raise
        finally:
            rtnl.close()

    def update(new: Program, old: Program | None) -> None:
        """Swap programs only if the expected one (``old``, else ours; -1: none, ours being gone) is there."""
        if old is not None:
            rtnl.xdp_attach(index, new.fd, flags, expected_fd=old.fd)
        else:
            mine = ours()
            with mine if mine is not None else nullcontext():
                rtnl.xdp_attach(index, new.fd, flags, expected_fd=mine.fd if mine is not None else -1)
        state["prog_id"] = new.info().id

    return Link(None, "xdp", mechanism=NETLINK, target=name, prog_id=state["prog_id"], details=details,
                cleanup=remove, updater=update)


def xdp_query(iface: str | int) -> netlink.XDPState:
    """What is attached to the XDP hook of ``iface`` (mode and program ids), as ``ip link`` shows it."""
    with netlink.Rtnl() as rtnl:
        return rtnl.xdp_query(netlink.ifindex(iface))
