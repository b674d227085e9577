"""perf events for BPF attachment: tracepoint ids, the kprobe/uprobe PMUs, tracefs probe events, ioctls.

Everything here is a thin, typed door: open an event, attach or enable it, add or remove a tracefs probe
event.  Deciding *which* mechanism to use is pybpf.link's job.
"""
from __future__ import annotations

import errno as _errno
import fcntl
import os

from ..errors import KernelError, NotFound, NotSupported, kernel_error
from . import abi, syscall
from .fd import FD
from .fs import tracefs

PMU_DIR = "/sys/bus/event_source/devices"


def _read_int(path: str, what: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise NotFound(f"read {path}", _errno.ENOENT, what) from None
    except OSError as e:
        raise kernel_error(f"read {path}", e.errno or _errno.EIO, what) from None


def tracepoint_id(category: str, name: str) -> int:
    """The perf event id of tracepoint ``category/name`` (tracefs ``events/<category>/<name>/id``)."""
    path = os.path.join(tracefs(), "events", category, name, "id")
    if not os.path.exists(path):
        raise NotFound("find tracepoint", _errno.ENOENT, f"{category}/{name}",
                       hint=f"no such tracepoint in this kernel ({path} is missing); "
                            "see available_events in tracefs")
    return _read_int(path, f"tracepoint {category}/{name}")


def pmu_type(pmu: str) -> int | None:
    """The perf type number of a dynamic PMU (``kprobe``, ``uprobe``), or None if this kernel has none."""
    path = os.path.join(PMU_DIR, pmu, "type")
    try:
        with open(path) as f:
            return int(f.read())
    except OSError:
        return None


def pmu_format_bit(pmu: str, field: str) -> int:
    """The first config bit of a PMU format field (``retprobe`` is ``config:0``; ``ref_ctr_offset`` 32)."""
    path = os.path.join(PMU_DIR, pmu, "format", field)
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError as e:
        raise NotSupported(f"read {path}", e.errno or _errno.ENOENT,
                           hint=f"the {pmu} PMU has no {field!r} format field on this kernel") from None
    return int(text.partition(":")[2].partition("-")[0])


def open_event(attr: object, pid: int = -1, cpu: int = 0, what: str = "") -> FD:
    """perf_event_open a prepared ``struct perf_event_attr *``; return the owned event fd."""
    return FD(syscall.perf_event_open(attr, pid=pid, cpu=cpu, what=what))


def open_tracepoint(tp_id: int, pid: int = -1, cpu: int = 0, what: str = "") -> FD:
    """A perf event on tracepoint id ``tp_id`` (all processes by default), ready for PERF_EVENT_IOC_SET_BPF."""
    attr = syscall.new_perf_attr()
    attr.type, attr.config = abi.PERF_TYPE_TRACEPOINT, tp_id
    return open_event(attr, pid, cpu, what)


def open_probe(pmu: str, target: str, offset: int = 0, *, retprobe: bool = False, pid: int = -1,
               ref_ctr_offset: int = 0, what: str = "") -> FD:
    """A kprobe/uprobe perf event through the ``pmu`` PMU.

    For kprobes ``target`` is a kernel function (or empty with ``offset`` an address); for uprobes it is
    the binary's path and ``offset`` the file offset.  ``pid`` filters uprobes to one process."""
    from ._cffi_abi import ffi

    ptype = pmu_type(pmu)
    if ptype is None:
        raise NotSupported(f"perf_event_open {pmu}", _errno.ENOENT, what,
                           hint=f"this kernel has no {pmu} PMU ({PMU_DIR}/{pmu} is missing)")
    attr = syscall.new_perf_attr()
    attr.type = ptype
    if retprobe:
        attr.config |= 1 << pmu_format_bit(pmu, "retprobe")
    if ref_ctr_offset:
        attr.config |= ref_ctr_offset << pmu_format_bit(pmu, "ref_ctr_offset")
    name = ffi.new("char[]", os.fsencode(target))
    attr.config1 = syscall.address(name)
    attr.config2 = offset
    return open_event(attr, pid=pid, cpu=0 if pid < 0 else -1, what=what)


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as e:
        err = e.errno or _errno.EIO
        hint = None
        if err == _errno.EEXIST:
            hint = "a BPF program is already attached to this perf event"
        elif err == _errno.EPROTO:
            hint = "add PERF_SAMPLE_CALLCHAIN or drop exclude_callchain_* on the event"
        raise kernel_error(what, err, hint=hint) from None


def set_bpf(perf_fd: int, prog_fd: int) -> None:
    """PERF_EVENT_IOC_SET_BPF: run ``prog_fd`` on the event (the pre-bpf_link way)."""
    _ioctl(perf_fd, abi.PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF")


def enable(perf_fd: int) -> None:
    """PERF_EVENT_IOC_ENABLE."""
    _ioctl(perf_fd, abi.PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")


def disable(perf_fd: int) -> None:
    """PERF_EVENT_IOC_DISABLE."""
    _ioctl(perf_fd, abi.PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE")


# --- tracefs probe events (kprobe_events / uprobe_events) ------------------------------------------------------


def probe_events_file(kind: str) -> str:
    """The tracefs control file for ``kind`` (``kprobe`` or ``uprobe``): ``.../kprobe_events``."""
    return os.path.join(tracefs(), f"{kind}_events")


def _last_error_log_line() -> str:
    try:
        with open(os.path.join(tracefs(), "error_log")) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _append(path: str, line: str, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotSupported(what, _errno.ENOENT, hint=f"{path} is missing: this kernel lacks the probe type") \
            from None
    except OSError as e:
        raise kernel_error(what, e.errno or _errno.EIO, path) from None
    try:
        os.write(fd, line.encode())
    except OSError as e:
        detail = _last_error_log_line()
        raise kernel_error(what, e.errno or _errno.EIO, f"{line!r}" + (f": {detail}" if detail else "")) from None
    finally:
        os.close(fd)


def add_probe_event(kind: str, group: str, event: str, location: str, *, retprobe: bool = False,
                    maxactive: int = 0) -> int:
    """Define a tracefs probe event ``group/event`` at ``location`` and return its tracepoint id.

    ``kind`` is ``kprobe`` (location ``func+0x10``) or ``uprobe`` (location ``/path:0x1234``); ``maxactive``
    (kretprobes only) bounds concurrent return probes.  Remove it with :func:`remove_probe_event`."""
    prefix = "r" if retprobe else "p"
    if maxactive:
        prefix += str(maxactive)
    _append(probe_events_file(kind), f"{prefix}:{group}/{event} {location}\n", f"add {kind} event {group}/{event}")
    try:
        return tracepoint_id(group, event)
    except KernelError:
        remove_probe_event(kind, group, event)
        raise


def remove_probe_event(kind: str, group: str, event: str) -> None:
    """Remove a tracefs probe event defined by :func:`add_probe_event`; a missing event is not an error."""
    try:
        _append(probe_events_file(kind), f"-:{group}/{event}\n", f"remove {kind} event {group}/{event}")
    except NotFound:
        pass
    except KernelError as e:
        if e.errno != _errno.ENOENT:
            raise


def probe_events(kind: str) -> list[str]:
    """The lines of tracefs ``<kind>_events`` (every probe event currently defined)."""
    try:
        with open(probe_events_file(kind)) as f:
            return [ln.rstrip("\n") for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


def online_cpus() -> list[int]:
    """The online CPUs (``/sys/devices/system/cpu/online``)."""
    with open("/sys/devices/system/cpu/online") as f:
        text = f.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
