"""rtnetlink, just enough for BPF: XDP on a link (IFLA_XDP), the clsact qdisc and cls_bpf filters.

Messages are packed with ``struct`` (nlmsghdr, ifinfomsg, tcmsg, nlattr).  Every request asks for an ACK;
a failure raises the KernelError for its errno carrying the kernel's extended ACK message
(NLMSGERR_ATTR_MSG), which usually says exactly what is wrong ("Underlying driver does not support XDP in
native mode").  A socket belongs to the network namespace it was created in: keep it to undo later what it
did, even after the thread moved to another namespace.
"""
from __future__ import annotations

import errno as _errno
import itertools
import socket
import struct
from typing import NamedTuple

from ..errors import kernel_error
from . import abi

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NLATTR = struct.Struct("=HH")  # len, type
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_MSG_NAMES = {abi.RTM_SETLINK: "RTM_SETLINK", abi.RTM_GETLINK: "RTM_GETLINK", abi.RTM_NEWQDISC: "RTM_NEWQDISC",
              abi.RTM_DELQDISC: "RTM_DELQDISC", abi.RTM_NEWTFILTER: "RTM_NEWTFILTER",
              abi.RTM_DELTFILTER: "RTM_DELTFILTER", abi.RTM_GETTFILTER: "RTM_GETTFILTER"}
_seq = itertools.count(1)


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute (``struct nlattr`` + payload, padded to 4 bytes)."""
    size = _NLATTR.size + len(data)
    return _NLATTR.pack(size, kind) + data + b"\0" * (_align(size) - size)


def attr_u32(kind: int, value: int) -> bytes:
    """A ``__u32`` attribute."""
    return attr(kind, struct.pack("=I", value & 0xFFFFFFFF))


def attr_s32(kind: int, value: int) -> bytes:
    """An ``__s32`` attribute (fds, where -1 means none)."""
    return attr(kind, struct.pack("=i", value))


def attr_str(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute."""
    return attr(kind, value.encode() + b"\0")


def nested(kind: int, *attrs: bytes) -> bytes:
    """A nested attribute (NLA_F_NESTED) holding ``attrs``."""
    return attr(kind | abi.NLA_F_NESTED, b"".join(attrs))


def parse_attrs(data: bytes | memoryview) -> dict[int, bytes]:
    """Attributes of a message body: {type (flags stripped): payload}. Malformed tails are ignored."""
    out: dict[int, bytes] = {}
    view = memoryview(data)
    pos = 0
    while pos + _NLATTR.size <= len(view):
        size, kind = _NLATTR.unpack_from(view, pos)
        if size < _NLATTR.size or pos + size > len(view):
            break
        out[kind & 0x3FFF] = bytes(view[pos + _NLATTR.size:pos + size])
        pos += _align(size)
    return out


def _u32(data: bytes | None) -> int:
    return struct.unpack_from("=I", data)[0] if data and len(data) >= 4 else 0


class XDPState(NamedTuple):
    """What is attached to an interface's XDP hook (``ip link``'s view).

    ``mode`` is XDP_ATTACHED_NONE/DRV/SKB/HW/MULTI; ``prog_id`` the program when one mode is in use."""

    mode: int
    prog_id: int
    drv_prog_id: int
    skb_prog_id: int
    hw_prog_id: int


class TCFilter(NamedTuple):
    """One tc filter: where it sits (handle, priority) and, for cls_bpf, its program."""

    handle: int
    priority: int
    kind: str
    prog_id: int
    name: str
    direct_action: bool


class Rtnl:
    """An rtnetlink (NETLINK_ROUTE) socket in the current network namespace, with BPF-related requests."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                       abi.NETLINK_ROUTE)
        except OSError as e:
            raise kernel_error("socket(AF_NETLINK, NETLINK_ROUTE)", e.errno or _errno.EIO) from None
        for opt in (abi.NETLINK_EXT_ACK, abi.NETLINK_CAP_ACK):
            try:
                self._sock.setsockopt(abi.SOL_NETLINK, opt, 1)
            except OSError:
                pass  # older kernels: plain errors without the extended message
        self._sock.bind((0, 0))

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------------------------

    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        seq = next(_seq)
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body)
        return seq

    def _error(self, msg_type: int, body: bytes, flags: int, what: str) -> None:
        (err,) = struct.unpack_from("=i", body)
        if err == 0:
            return
        detail, hint = what, None
        if flags & abi.NLM_F_ACK_TLVS:
            orig_len = _NLMSGHDR.size if flags & abi.NLM_F_CAPPED else _NLMSGHDR.unpack_from(body, 4)[0]
            tlvs = parse_attrs(body[4 + _align(orig_len):])
            msg = tlvs.get(abi.NLMSGERR_ATTR_MSG, b"").rstrip(b"\0").decode(errors="replace")
            if msg:  # the kernel's own explanation replaces pybpf's generic hint
                detail, hint = (f"{what}: {msg}" if what else msg), ""
        raise kernel_error(f"netlink {_MSG_NAMES.get(msg_type, msg_type)}", -err, detail, hint)

    def request(self, msg_type: int, flags: int, body: bytes, what: str = "") -> list[tuple[int, int, bytes]]:
        """Send one request (NLM_F_REQUEST | NLM_F_ACK | ``flags``); return the replies before the ACK as
        (type, flags, body) - e.g. the echo of a created object with NLM_F_ECHO."""
        seq = self._send(msg_type, abi.NLM_F_REQUEST | abi.NLM_F_ACK | flags, body)
        return self._collect(seq, msg_type, what, dump=False)

    def dump(self, msg_type: int, body: bytes, what: str = "") -> list[tuple[int, int, bytes]]:
        """Send a dump request; return every reply message as (type, flags, body)."""
        seq = self._send(msg_type, abi.NLM_F_REQUEST | abi.NLM_F_DUMP, body)
        return self._collect(seq, msg_type, what, dump=True)

    def _collect(self, seq: int, msg_type: int, what: str, dump: bool) -> list[tuple[int, int, bytes]]:
        out: list[tuple[int, int, bytes]] = []
        while True:
            data = self._sock.recv(1 << 17)
            pos = 0
            while pos + _NLMSGHDR.size <= len(data):
                length, mtype, mflags, mseq, _ = _NLMSGHDR.unpack_from(data, pos)
                if length < _NLMSGHDR.size:
                    break
                body = data[pos + _NLMSGHDR.size:pos + length]
                pos += _align(length)
                if mseq != seq:
                    continue
                if mtype == abi.NLMSG_ERROR:
                    self._error(msg_type, body, mflags, what)
                    return out
                if mtype == abi.NLMSG_DONE:
                    if dump:
                        return out
                    continue
                out.append((mtype, mflags, body))

    # --- XDP ----------------------------------------------------------------------------------------------

    def xdp_attach(self, ifindex: int, prog_fd: int, flags: int = 0, expected_fd: int | None = None) -> None:
        """Attach ``prog_fd`` to the XDP hook of ``ifindex`` (``prog_fd=-1`` detaches).

        ``flags`` are XDP_FLAGS_* (mode, UPDATE_IF_NOEXIST); ``expected_fd`` adds XDP_FLAGS_REPLACE so the
        kernel only acts if that program (-1: none) is the one attached."""
        parts = [attr_s32(abi.IFLA_XDP_FD, prog_fd)]
        if expected_fd is not None:
            flags |= abi.XDP_FLAGS_REPLACE
            parts.append(attr_s32(abi.IFLA_XDP_EXPECTED_FD, expected_fd))
        if flags:
            parts.append(attr_u32(abi.IFLA_XDP_FLAGS, flags))
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0) + nested(abi.IFLA_XDP, *parts)
        self.request(abi.RTM_SETLINK, 0, body, f"XDP on ifindex {ifindex}")

    def xdp_query(self, ifindex: int) -> XDPState:
        """What the XDP hook of ``ifindex`` holds."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)
        for mtype, _, reply in self.request(abi.RTM_GETLINK, 0, body, f"ifindex {ifindex}"):
            if mtype == abi.RTM_NEWLINK:
                xdp = parse_attrs(parse_attrs(reply[_IFINFOMSG.size:]).get(abi.IFLA_XDP, b""))
                mode = xdp.get(abi.IFLA_XDP_ATTACHED, b"\0")[0]
                return XDPState(mode, _u32(xdp.get(abi.IFLA_XDP_PROG_ID)), _u32(xdp.get(abi.IFLA_XDP_DRV_PROG_ID)),
                                _u32(xdp.get(abi.IFLA_XDP_SKB_PROG_ID)), _u32(xdp.get(abi.IFLA_XDP_HW_PROG_ID)))
        return XDPState(abi.XDP_ATTACHED_NONE, 0, 0, 0, 0)

    # --- tc: clsact qdisc and cls_bpf filters ---------------------------------------------------------------

    def clsact_add(self, ifindex: int) -> bool:
        """Add the clsact qdisc to ``ifindex``; return False if it was already there."""
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, abi.TC_H_CLSACT & 0xFFFF0000, abi.TC_H_CLSACT, 0)
        try:
            self.request(abi.RTM_NEWQDISC, abi.NLM_F_CREATE | abi.NLM_F_EXCL, body + attr_str(abi.TCA_KIND, "clsact"),
                         f"clsact qdisc on ifindex {ifindex}")
        except OSError as e:
            if e.errno == _errno.EEXIST:
                return False
            raise
        return True

    def clsact_del(self, ifindex: int) -> None:
        """Remove the clsact qdisc (and every filter in it) from ``ifindex``."""
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, abi.TC_H_CLSACT & 0xFFFF0000, abi.TC_H_CLSACT, 0)
        self.request(abi.RTM_DELQDISC, 0, body + attr_str(abi.TCA_KIND, "clsact"), f"clsact qdisc on ifindex {ifindex}")

    def bpf_filter_add(self, ifindex: int, parent: int, prog_fd: int, name: str, priority: int = 0,
                       handle: int = 0, replace: bool = False) -> TCFilter:
        """Add (or with ``replace`` swap) a direct-action cls_bpf filter running ``prog_fd``; return where
        the kernel put it (its handle and priority are chosen by the kernel when given as 0)."""
        info = ((priority & 0xFFFF) << 16) | socket.htons(abi.ETH_P_ALL)
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, info) + attr_str(abi.TCA_KIND, "bpf") + nested(
            abi.TCA_OPTIONS, attr_u32(abi.TCA_BPF_FD, prog_fd), attr_str(abi.TCA_BPF_NAME, name),
            attr_u32(abi.TCA_BPF_FLAGS, abi.TCA_BPF_FLAG_ACT_DIRECT))
        flags = abi.NLM_F_CREATE | abi.NLM_F_ECHO | (abi.NLM_F_REPLACE if replace else abi.NLM_F_EXCL)
        what = f"cls_bpf filter on ifindex {ifindex}"
        for mtype, _, reply in self.request(abi.RTM_NEWTFILTER, flags, body, what):
            if mtype == abi.RTM_NEWTFILTER:
                return _tc_filter(reply)
        raise kernel_error("netlink RTM_NEWTFILTER", _errno.EPROTO, what, hint="the kernel did not echo the filter")

    def filter_del(self, ifindex: int, parent: int, priority: int, handle: int) -> None:
        """Delete the filter at (``priority``, ``handle``) under ``parent``."""
        if not priority:
            raise ValueError("filter_del needs the filter's priority (0 would delete every filter)")
        info = ((priority & 0xFFFF) << 16) | socket.htons(abi.ETH_P_ALL)
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, info)
        self.request(abi.RTM_DELTFILTER, 0, body, f"filter {priority}:{handle:#x} on ifindex {ifindex}")

    def filters(self, ifindex: int, parent: int) -> list[TCFilter]:
        """The filters under ``parent`` of ``ifindex`` (``tc filter show``)."""
        body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)
        return [_tc_filter(reply) for mtype, _, reply in self.dump(abi.RTM_GETTFILTER, body, f"ifindex {ifindex}")
                if mtype == abi.RTM_NEWTFILTER]


def _tc_filter(body: bytes) -> TCFilter:
    _, _, handle, _, info = _TCMSG.unpack_from(body)
    attrs = parse_attrs(body[_TCMSG.size:])
    kind = attrs.get(abi.TCA_KIND, b"").rstrip(b"\0").decode()
    opts = parse_attrs(attrs.get(abi.TCA_OPTIONS, b""))
    name = opts.get(abi.TCA_BPF_NAME, b"").rstrip(b"\0").decode(errors="replace")
    direct = bool(_u32(opts.get(abi.TCA_BPF_FLAGS)) & abi.TCA_BPF_FLAG_ACT_DIRECT)
    return TCFilter(handle, info >> 16, kind, _u32(opts.get(abi.TCA_BPF_ID)), name, direct)


def ifindex(iface: str | int) -> int:
    """The index of network interface ``iface`` (a name, or an index passed through) in this namespace."""
    if isinstance(iface, int):
        return iface
    try:
        return socket.if_nametoindex(iface)
    except OSError as e:
        raise kernel_error("find network interface", e.errno or _errno.ENODEV, iface,
                           hint="no such interface in this network namespace") from None


def ifname(index: int) -> str:
    """The name of interface ``index`` in this namespace ('' if there is none)."""
    try:
        return socket.if_indextoname(index)
    except OSError:
        return ""
