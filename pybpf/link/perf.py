"""Programs on perf events: tracepoints, sampling events (cpu-clock...), and the attach step shared with
kprobes and uprobes.

A perf event gets its program through a bpf_link (BPF_LINK_CREATE with BPF_PERF_EVENT) where the kernel has
one, else through PERF_EVENT_IOC_SET_BPF (kernels before 5.15 answer the link with EINVAL); the choice is
made by trying, and remembered for the process.
"""
from __future__ import annotations

import errno as _errno
import itertools
import os
import re
from typing import TYPE_CHECKING, Any, Callable

from ..errors import NotSupported
from ..sys import abi, perf, syscall
from ..sys.fd import FD
from .base import Link, LinkGroup, legacy_worked, try_link

if TYPE_CHECKING:
    from ..program import Program

PERF_IOCTL = "perf_event"
EVENT_GROUP = "pybpf"  # tracefs group of the probe events pybpf defines (kprobe_events, uprobe_events)
_event_seq = itertools.count()


def attach_perf_fd(prog: Program, pfd: FD, kind: str, target: str, *, cookie: int = 0,
                   mechanism: str | None = None, cleanup: Callable[[], None] | None = None,
                   details: dict[str, Any] | None = None) -> Link:
    """Run ``prog`` on the perf event ``pfd`` (owned by the returned Link from now on) and enable it.

    ``mechanism`` forces ``"bpf_link"`` or ``"perf_event"`` (the ioctl); ``cleanup`` runs after the event is
    closed (to remove a tracefs probe event).  On failure ``pfd`` is closed and ``cleanup`` run."""
    try:
        lfd = try_link("perf_event", mechanism, PERF_IOCTL, lambda: syscall.link_create(
            prog.fd, pfd.fd, abi.BPF_PERF_EVENT, perf_event={"bpf_cookie": cookie}))
        if lfd is not None:
            try:
                perf.enable(pfd.fd)
            finally:
                pfd.close()  # the link holds the event now
            return Link(lfd, kind, target=target, cleanup=cleanup, details=details)
        if cookie:
            raise NotSupported("attach with bpf_cookie", _errno.EOPNOTSUPP, f"{kind} {target}",
                               hint="BPF cookies need perf_event bpf_links (Linux 5.15+); this kernel has none")
        perf.set_bpf(pfd.fd, prog.fd)
        perf.enable(pfd.fd)
        legacy_worked("perf_event", mechanism)
    except BaseException:
        pfd.close()
        if cleanup is not None:
            cleanup()
        raise
    return Link(pfd, kind, mechanism=PERF_IOCTL, target=target, cleanup=cleanup, prog_id=prog.info().id,
                details=details)


def event_name(prefix: str, target: str) -> str:
    """A probe event name unique to this process and call, valid in tracefs (at most 63 characters)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", os.path.basename(target))
    return f"{prefix}_{os.getpid()}_{next(_event_seq)}_{base}"[:63]


def remove_stale_events() -> list[str]:
    """Remove the probe events pybpf defined (group ``pybpf``) for processes that no longer exist -- left
    behind by a process killed before it could close its Links; return their names.  Processes are looked
    up in this pid namespace, so run it from the one that made them."""
    removed = []
    for probe in ("kprobe", "uprobe"):
        for line in perf.probe_events(probe):
            m = re.match(rf"^\S+:{EVENT_GROUP}/(\w_(\d+)_\w*)\s", line)
            if m and not os.path.exists(f"/proc/{m.group(2)}"):
                perf.remove_probe_event(probe, EVENT_GROUP, m.group(1))
                removed.append(f"{EVENT_GROUP}/{m.group(1)}")
    return removed


def attach_probe_event(prog: Program, probe: str, kind: str, target: str, location: str, *, retprobe: bool,
                       maxactive: int = 0, pid: int = -1, cookie: int = 0, mechanism: str | None = None,
                       details: dict[str, Any]) -> Link:
    """Define a uniquely named tracefs ``<probe>_events`` event at ``location`` (``func+0x0`` for kprobes,
    ``/path:0x1234`` for uprobes), attach ``prog`` to it, and remove the event when the Link closes."""
    event = event_name(probe[0], target)
    tp_id = perf.add_probe_event(probe, EVENT_GROUP, event, location, retprobe=retprobe, maxactive=maxactive)

    def remove() -> None:
        perf.remove_probe_event(probe, EVENT_GROUP, event)

    try:
        pfd = perf.open_tracepoint(tp_id, pid=pid, cpu=0 if pid < 0 else -1,
                                   what=f"{kind} {target} (event {EVENT_GROUP}/{event})")
    except BaseException:
        remove()
        raise
    return attach_perf_fd(prog, pfd, kind, target, cookie=cookie, mechanism=mechanism, cleanup=remove,
                          details={**details, "event": f"{EVENT_GROUP}/{event}"})


def attach_tracepoint(prog: Program, category: str, name: str | None = None, *, cookie: int = 0,
                      mechanism: str | None = None) -> Link:
    """Attach a tracepoint program to ``category/name`` (``"syscalls", "sys_enter_execve"`` or
    ``"syscalls/sys_enter_execve"``)."""
    if name is None:
        category, _, name = category.partition("/")
        if not name:
            raise ValueError(f"tracepoint {category!r}: expected 'category/name'")
    target = f"{category}/{name}"
    pfd = perf.open_tracepoint(perf.tracepoint_id(category, name), what=f"tracepoint {target}")
    return attach_perf_fd(prog, pfd, "tracepoint", target, cookie=cookie, mechanism=mechanism,
                          details={"tp_name": name, "category": category})


def attach_perf_event(prog: Program, perf_type: int = abi.PERF_TYPE_SOFTWARE,
                      config: int = abi.PERF_COUNT_SW_CPU_CLOCK, *, sample_period: int = 0, sample_freq: int = 0,
                      cpus: list[int] | None = None, pid: int = -1, cookie: int = 0,
                      mechanism: str | None = None) -> LinkGroup:
    """Attach a perf_event program to a sampling event on each CPU (or on process ``pid``, any CPU).

    Give ``sample_period`` (events between samples; nanoseconds for cpu-clock) or ``sample_freq`` (Hz,
    default 99).  Hardware events (PERF_TYPE_HARDWARE) need a PMU the machine may not expose."""
    if sample_period and sample_freq:
        raise ValueError("give sample_period or sample_freq, not both")
    targets = [-1] if pid >= 0 and cpus is None else (cpus if cpus is not None else perf.online_cpus())
    links: list[Link] = []
    try:
        for cpu in targets:
            attr = syscall.new_perf_attr()
            attr.type, attr.config = perf_type, config
            if sample_period:
                attr.sample_period = sample_period
            else:
                attr.freq, attr.sample_freq = 1, sample_freq or 99
            what = f"perf event type {perf_type} config {config} on cpu {cpu}" + (f" pid {pid}" if pid >= 0 else "")
            pfd = perf.open_event(attr, pid=pid, cpu=cpu, what=what)
            links.append(attach_perf_fd(prog, pfd, "perf_event", f"cpu {cpu}", cookie=cookie, mechanism=mechanism,
                                        details={"perf_type": perf_type, "config": config, "cpu": cpu, "pid": pid}))
    except BaseException:
        for lk in links:
            lk.close()
        raise
    return LinkGroup(links, "perf_event", target=f"type {perf_type} config {config}")
