"""LinkInfo: the kernel's ``struct bpf_link_info`` decoded per link type into plain Python values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..sys import abi, syscall


@dataclass(frozen=True)
class LinkInfo:
    """What the kernel reports about a link (BPF_OBJ_GET_INFO_BY_FD), or what pybpf knows about a legacy
    attachment (``id`` 0).  ``type_name`` is ``perf_event``, ``xdp``, ``tcx``... (the kernel's link type
    without ``BPF_LINK_TYPE_``) or, for legacy attachments, their kind; ``details`` holds the per-type
    fields (``tp_name``, ``ifindex``, ``attach_type``, ``cookie``...)."""

    id: int
    type: int
    type_name: str
    prog_id: int
    details: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.details[key]


_STR_BUF = 4096


def _name(enum: str, prefix: str, value: int) -> str:
    try:
        return getattr(abi, enum)(value).name[len(prefix):].lower()
    except ValueError:
        return str(value)


def attach_type_name(value: int) -> str:
    """``cgroup_inet_egress`` for BPF_CGROUP_INET_EGRESS (the number itself when unknown)."""
    return _name("bpf_attach_type", "BPF_", value)


def _string(ffi: Any, buf: Any) -> str:
    return ffi.string(buf).decode(errors="replace")


def _raw_tracepoint(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    buf = ffi.new("char[]", _STR_BUF)
    again = ffi.new("struct bpf_link_info *")
    again.raw_tracepoint.tp_name, again.raw_tracepoint.tp_name_len = syscall.address(buf), _STR_BUF
    syscall.obj_info(fd, "link", again)
    return {"tp_name": _string(ffi, buf), "cookie": again.raw_tracepoint.cookie}


def _tracing(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    t = info.tracing
    return {"attach_type": attach_type_name(t.attach_type), "target_obj_id": t.target_obj_id,
            "target_btf_id": t.target_btf_id, "cookie": t.cookie}


def _cgroup(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    return {"cgroup_id": info.cgroup.cgroup_id, "attach_type": attach_type_name(info.cgroup.attach_type)}


def _iter(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    buf = ffi.new("char[]", _STR_BUF)
    again = ffi.new("struct bpf_link_info *")
    again.iter.target_name, again.iter.target_name_len = syscall.address(buf), _STR_BUF
    syscall.obj_info(fd, "link", again)
    target = _string(ffi, buf)
    out: dict[str, Any] = {"target_name": target}
    if target == "bpf_map_elem" or target.startswith("bpf_sk_storage"):
        out["map_id"] = again.iter.map.map_id
    elif target == "cgroup":
        out.update(cgroup_id=again.iter.cgroup.cgroup_id, order=again.iter.cgroup.order)
    elif target in ("task", "task_file", "task_vma"):
        out.update(tid=again.iter.task.tid, pid=again.iter.task.pid)
    return out


def _netns(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    return {"netns_ino": info.netns.netns_ino, "attach_type": attach_type_name(info.netns.attach_type)}


def _xdp(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    return {"ifindex": info.xdp.ifindex}


def _struct_ops(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    return {"map_id": info.struct_ops.map_id}


def _netfilter(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    n = info.netfilter
    return {"pf": n.pf, "hooknum": n.hooknum, "priority": n.priority, "flags": n.flags}


def _kprobe_multi(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    k = info.kprobe_multi
    out: dict[str, Any] = {"count": k.count, "flags": k.flags, "missed": k.missed,
                           "retprobe": bool(k.flags & abi.BPF_F_KPROBE_MULTI_RETURN)}
    if k.count:
        addrs = ffi.new("__u64[]", k.count)
        again = ffi.new("struct bpf_link_info *")
        again.kprobe_multi.addrs, again.kprobe_multi.count = syscall.address(addrs), k.count
        syscall.obj_info(fd, "link", again)
        out["addrs"] = list(addrs)  # zeros unless kernel addresses are visible (kptr_restrict)
    return out


def _uprobe_multi(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    u = info.uprobe_multi
    n = u.count
    path = ffi.new("char[]", _STR_BUF)
    offsets = ffi.new("__u64[]", max(n, 1))
    again = ffi.new("struct bpf_link_info *")
    m = again.uprobe_multi
    m.path, m.path_size, m.count, m.offsets = syscall.address(path), _STR_BUF, n, syscall.address(offsets)
    syscall.obj_info(fd, "link", again)
    return {"path": _string(ffi, path), "count": n, "offsets": list(offsets[0:n]), "pid": m.pid,
            "flags": m.flags, "retprobe": bool(m.flags & abi.BPF_F_UPROBE_MULTI_RETURN)}


def _perf_event(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    ptype = info.perf_event.type
    if ptype == abi.BPF_PERF_EVENT_UNSPEC:
        return {}  # kernels before 6.6 describe perf_event links no further
    out: dict[str, Any] = {"event_type": _name("bpf_perf_event_type", "BPF_PERF_EVENT_", ptype)}
    buf = ffi.new("char[]", _STR_BUF)
    again = ffi.new("struct bpf_link_info *")
    pe = again.perf_event
    if ptype in (abi.BPF_PERF_EVENT_UPROBE, abi.BPF_PERF_EVENT_URETPROBE):
        pe.uprobe.file_name, pe.uprobe.name_len = syscall.address(buf), _STR_BUF
        syscall.obj_info(fd, "link", again)
        out.update(file_name=_string(ffi, buf), offset=pe.uprobe.offset, cookie=pe.uprobe.cookie,
                   ref_ctr_offset=pe.uprobe.ref_ctr_offset)
    elif ptype in (abi.BPF_PERF_EVENT_KPROBE, abi.BPF_PERF_EVENT_KRETPROBE):
        pe.kprobe.func_name, pe.kprobe.name_len = syscall.address(buf), _STR_BUF
        syscall.obj_info(fd, "link", again)
        out.update(func_name=_string(ffi, buf), offset=pe.kprobe.offset, addr=pe.kprobe.addr,
                   missed=pe.kprobe.missed, cookie=pe.kprobe.cookie)
    elif ptype == abi.BPF_PERF_EVENT_TRACEPOINT:
        pe.tracepoint.tp_name, pe.tracepoint.name_len = syscall.address(buf), _STR_BUF
        syscall.obj_info(fd, "link", again)
        out.update(tp_name=_string(ffi, buf), cookie=pe.tracepoint.cookie)
    elif ptype == abi.BPF_PERF_EVENT_EVENT:
        ev = info.perf_event.event
        out.update(config=ev.config, perf_type=ev.type, cookie=ev.cookie)
    return out


def _ifindex_attach(sub: str) -> Callable[[Any, int, Any], dict[str, Any]]:
    def decode(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
        part = getattr(info, sub)
        return {"ifindex": part.ifindex, "attach_type": attach_type_name(part.attach_type)}
    return decode


def _sockmap(ffi: Any, fd: int, info: Any) -> dict[str, Any]:
    return {"map_id": info.sockmap.map_id, "attach_type": attach_type_name(info.sockmap.attach_type)}


_DECODERS: dict[str, Callable[[Any, int, Any], dict[str, Any]]] = {
    "raw_tracepoint": _raw_tracepoint, "tracing": _tracing, "cgroup": _cgroup, "iter": _iter, "netns": _netns,
    "xdp": _xdp, "struct_ops": _struct_ops, "netfilter": _netfilter, "kprobe_multi": _kprobe_multi,
    "uprobe_multi": _uprobe_multi, "perf_event": _perf_event, "tcx": _ifindex_attach("tcx"),
    "netkit": _ifindex_attach("netkit"), "sockmap": _sockmap,
}


def link_info(fd: int) -> LinkInfo:
    """Decode the kernel's ``bpf_link_info`` for link ``fd``."""
    from ..sys._cffi_abi import ffi

    info = syscall.obj_info(fd, "link")
    type_name = _name("bpf_link_type", "BPF_LINK_TYPE_", info.type)
    decode = _DECODERS.get(type_name)
    details = decode(ffi, fd, info) if decode else {}
    return LinkInfo(info.id, info.type, type_name, info.prog_id, details)

