"""Raw tracepoints, BTF-typed tracing (tp_btf, fentry/fexit/fmod_ret, LSM, freplace) and iterators."""
from __future__ import annotations

import errno as _errno
import io
import os
from typing import TYPE_CHECKING, Any

from ..errors import KernelError, NotSupported
from ..sys import abi, syscall
from ..sys.fd import FD
from ..sys.fs import securityfs
from .base import Link, open_path

if TYPE_CHECKING:
    from ..maps.map import Map
    from ..program import Program

# expected_attach_type -> link kind (what Link.kind says)
_TRACE_KINDS = {
    abi.BPF_TRACE_RAW_TP: "tp_btf", abi.BPF_TRACE_FENTRY: "fentry", abi.BPF_TRACE_FEXIT: "fexit",
    abi.BPF_MODIFY_RETURN: "fmod_ret", abi.BPF_LSM_MAC: "lsm",
}


def attach_raw_tracepoint(prog: Program, name: str, *, cookie: int = 0) -> Link:
    """Attach a raw_tracepoint program to the kernel tracepoint ``name`` (``sched_switch``, ``sys_enter``)."""
    fd = syscall.raw_tracepoint_open(prog.fd, name, cookie)
    return Link(fd, "raw_tracepoint", target=name)


def attach_trace(prog: Program, *, cookie: int = 0) -> Link:
    """Attach a BTF-typed tracing program (tp_btf, fentry, fexit, fmod_ret, lsm, freplace) to the target it
    was loaded for (its attach_btf_id): BPF_LINK_CREATE, or BPF_RAW_TRACEPOINT_OPEN where the kernel's
    LINK_CREATE does not take tracing programs (EINVAL), as libbpf falls back."""
    kind = _TRACE_KINDS.get(prog.expected_attach_type, "freplace" if prog.type == abi.BPF_PROG_TYPE_EXT else "trace")
    target = prog.attach_to
    if kind == "lsm":
        _require_bpf_lsm()
    if prog.expected_attach_type in _TRACE_KINDS:
        try:
            fd = syscall.link_create(prog.fd, 0, prog.expected_attach_type, tracing={"cookie": cookie})
            return Link(fd, kind, target=target)
        except KernelError as e:
            if e.errno != _errno.EINVAL or cookie:
                raise
    return Link(syscall.raw_tracepoint_open(prog.fd, None, cookie), kind, target=target)


def _require_bpf_lsm() -> None:
    """The kernel accepts BPF LSM links even when the BPF LSM is not active, and the program never runs:
    say so instead (when securityfs tells)."""
    try:
        with open(os.path.join(securityfs(), "lsm")) as f:
            active = f.read().strip().split(",")
    except (OSError, KernelError):
        return
    if "bpf" not in active:
        raise NotSupported("attach lsm", _errno.EOPNOTSUPP, f"active LSMs: {','.join(active)}",
                           hint="the BPF LSM is not active on this kernel: boot with lsm=" + ",".join(active + ["bpf"]))


def attach_lsm(prog: Program) -> Link:
    """Attach a BPF LSM program to the hook it was loaded for."""
    return attach_trace(prog)


class IterLink(Link):
    """An iterator link: each :meth:`open` starts a new pass of the iterator program over its objects."""

    def open(self) -> io.BufferedReader:
        """A new readable file whose contents the iterator program writes (BPF_ITER_CREATE)."""
        fd = syscall.iter_create(self.fd)
        return io.open(fd, "rb", closefd=True)

    def read(self) -> bytes:
        """One whole pass of the iterator."""
        with self.open() as f:
            try:
                return f.read()
            except OSError as e:
                raise KernelError("read iterator", e.errno or _errno.EIO, self.target) from None


def attach_iter(prog: Program, *, map: Map | int | None = None, cgroup: str | int | None = None,
                cgroup_order: int = 0, task_pid: int = 0, task_tid: int = 0) -> IterLink:
    """Attach an ``iter/`` program; read it with :meth:`IterLink.read` or :meth:`IterLink.open`.

    Parameters narrow the iteration where the iterator takes them: ``map`` for ``bpf_map_elem`` and
    ``bpf_sk_storage_map`` iterators, ``cgroup`` (path or fd) and ``cgroup_order`` (BPF_CGROUP_ITER_*) for
    cgroup iterators, ``task_pid``/``task_tid`` for task, task_file and task_vma iterators."""
    from ..sys._cffi_abi import ffi

    info = ffi.new("union bpf_iter_link_info *")
    opened: FD | None = None
    if map is not None:
        info.map.map_fd = map if isinstance(map, int) else map.fd
    elif cgroup is not None:
        if isinstance(cgroup, str):
            opened = open_path(cgroup, "cgroup")
        info.cgroup.cgroup_fd, info.cgroup.order = opened.fd if opened else cgroup, cgroup_order
    elif task_pid or task_tid:
        info.task.pid, info.task.tid = task_pid, task_tid
    parametrised = map is not None or cgroup is not None or task_pid or task_tid
    try:
        kw: dict[str, Any] = {"iter_info": (syscall.address(info), ffi.sizeof(info[0]))} if parametrised else {}
        fd = syscall.link_create(prog.fd, 0, abi.BPF_TRACE_ITER, 0, **kw)
    finally:
        if opened:
            opened.close()
    return IterLink(FD(fd), "iter", target=prog.attach_to or prog.name)
