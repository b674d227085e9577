"""uprobes and uretprobes on user-space functions: the uprobe PMU, legacy tracefs ``uprobe_events``, and
uprobe.multi links (BPF_TRACE_UPROBE_MULTI, Linux 6.6+)."""
from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Sequence

from ..errors import KernelError, NotFound, NotSupported
from ..sys import abi, perf, syscall
from .base import Link
from .elfsym import func_offset, match_offsets, resolve_binary
from .perf import attach_perf_fd, attach_probe_event

if TYPE_CHECKING:
    from ..program import Program


def attach_uprobe(prog: Program, binary: str, func: str | None = None, offset: int = 0, *, pid: int = -1,
                  retprobe: bool = False, ref_ctr_offset: int = 0, cookie: int = 0, legacy: bool | None = None,
                  mechanism: str | None = None) -> Link:
    """Attach a uprobe (uretprobe) program to ``func`` (+ ``offset``) in ``binary``, or at file offset
    ``offset`` when no function is named.

    ``binary`` is a path, a program in PATH, or a library (``libc.so.6``: looked up in ``pid``'s mappings
    first, then where ld.so looks).  ``pid`` limits the probe to one process (-1: all).  ``legacy=True``
    uses a tracefs ``uprobe_events`` event instead of the uprobe PMU."""
    if retprobe and offset and func:
        raise ValueError("uretprobes take no offset into the function")
    path = resolve_binary(binary, pid if pid > 0 else None)
    file_offset = (func_offset(path, func) if func else 0) + offset
    kind = "uretprobe" if retprobe else "uprobe"
    target = f"{path}:{func}" + (f"+{offset:#x}" if offset else "") if func else f"{path}:{file_offset:#x}"
    details = {"path": path, "func": func or "", "offset": file_offset, "pid": pid, "retprobe": retprobe}
    if legacy is None:
        legacy = perf.pmu_type("uprobe") is None
    if not legacy:
        pfd = perf.open_probe("uprobe", path, file_offset, retprobe=retprobe, pid=pid,
                              ref_ctr_offset=ref_ctr_offset, what=f"{kind} {target}")
        return attach_perf_fd(prog, pfd, kind, target, cookie=cookie, mechanism=mechanism, details=details)
    location = f"{path}:{file_offset:#x}" + (f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")
    return attach_probe_event(prog, "uprobe", kind, target, location, retprobe=retprobe, pid=pid, cookie=cookie,
                              mechanism=mechanism, details=details)


def attach_uprobe_multi(prog: Program, binary: str, pattern: str | None = None, *, symbols: Sequence[str] = (),
                        offsets: Sequence[int] = (), ref_ctr_offsets: Sequence[int] = (),
                        cookies: Sequence[int] = (), pid: int = -1, retprobe: bool = False,
                        session: bool = False) -> Link:
    """Attach a uprobe.multi program to many functions of ``binary`` with one link.

    Give a glob ``pattern`` over the binary's function names, or ``symbols``, or file ``offsets``;
    ``ref_ctr_offsets`` and ``cookies`` pair one value with each location."""
    from ..sys._cffi_abi import ffi

    if sum(map(bool, (pattern, symbols, offsets))) != 1:
        raise ValueError("give exactly one of pattern, symbols or offsets")
    if retprobe and session:
        raise ValueError("a uprobe session is entry and return already: retprobe does not apply")
    path = resolve_binary(binary, pid if pid > 0 else None)
    if pattern:
        matched = match_offsets(path, pattern)
        if not matched:
            raise NotFound("attach uprobe.multi", _errno.ENOENT, f"no function of {path} matches {pattern!r}")
        offsets = [off for _, off in matched]
    elif symbols:
        offsets = [func_offset(path, s) for s in symbols]
    count = len(offsets)
    for name, values in (("ref_ctr_offsets", ref_ctr_offsets), ("cookies", cookies)):
        if values and len(values) != count:
            raise ValueError(f"{len(values)} {name} for {count} locations")
    cpath = ffi.new("char[]", path.encode())
    arrays = [ffi.new("__u64[]", list(v)) if v else None for v in (offsets, ref_ctr_offsets, cookies)]
    fields = {"path": syscall.address(cpath), "cnt": count, "pid": max(pid, 0),
              "flags": abi.BPF_F_UPROBE_MULTI_RETURN if retprobe else 0}
    for key, arr in zip(("offsets", "ref_ctr_offsets", "cookies"), arrays):
        fields[key] = syscall.address(arr) if arr is not None else 0
    attach_type = abi.BPF_TRACE_UPROBE_SESSION if session else abi.BPF_TRACE_UPROBE_MULTI
    target = f"{path}:{pattern or ','.join(symbols) or f'{count} offsets'}"
    try:
        fd = syscall.link_create(prog.fd, 0, attach_type, uprobe_multi=fields)
    except KernelError as e:
        if e.errno == _errno.EINVAL:
            raise NotSupported("attach uprobe.multi", e.errno, target,
                               hint="the kernel refused a uprobe.multi link: it needs Linux 6.6+ "
                                    "(BPF_TRACE_UPROBE_MULTI) and a program loaded for it") from None
        raise
    return Link(fd, "uprobe_multi", target=target)
