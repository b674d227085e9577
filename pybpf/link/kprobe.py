"""kprobes and kretprobes: the kprobe PMU, legacy tracefs ``kprobe_events``, syscall probes, kprobe.multi.

The PMU (``/sys/bus/event_source/devices/kprobe``) is used when present; without it -- or when
``maxactive`` is asked for, which only the tracefs syntax carries -- a uniquely named probe event is
defined in ``kprobe_events`` and removed again when the Link closes.
"""
from __future__ import annotations

import errno as _errno
import fnmatch
import functools
import os
from typing import TYPE_CHECKING, Sequence

from ..errors import KernelError, NotFound, NotSupported, kernel_error
from ..sys import abi, perf, syscall
from ..sys.fs import tracefs
from .base import Link
from .perf import attach_perf_fd, attach_probe_event

if TYPE_CHECKING:
    from ..program import Program

NO_KPROBES = "this kernel has no kprobes (CONFIG_KPROBES off)"
_SYSCALL_PREFIX = {"x86_64": "x64", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv", "ppc64le": "powerpc"}


def has_kprobes() -> bool:
    """True if this kernel can kprobe at all (a kprobe PMU or tracefs ``kprobe_events``)."""
    return perf.pmu_type("kprobe") is not None or os.path.exists(perf.probe_events_file("kprobe"))


def _require_kprobes(what: str) -> None:
    if not has_kprobes():
        raise NotSupported(f"attach {what}", _errno.EOPNOTSUPP, hint=NO_KPROBES)


def attach_kprobe(prog: Program, func: str, offset: int = 0, *, retprobe: bool = False, maxactive: int = 0,
                  cookie: int = 0, legacy: bool | None = None, mechanism: str | None = None) -> Link:
    """Attach a kprobe program to kernel function ``func`` (+ ``offset``), or a kretprobe to its return.

    ``legacy=True`` forces a tracefs ``kprobe_events`` event; ``maxactive`` (kretprobes) implies it.
    ``mechanism`` picks how the event gets the program (``"bpf_link"`` or ``"perf_event"``)."""
    if retprobe and offset:
        raise ValueError("kretprobes take no offset")
    if maxactive and not retprobe:
        raise ValueError("maxactive applies to kretprobes only")
    _require_kprobes("kretprobe" if retprobe else "kprobe")
    kind = "kretprobe" if retprobe else "kprobe"
    target = f"{func}+{offset:#x}" if offset else func
    details = {"func_name": func, "offset": offset, "retprobe": retprobe}
    if legacy is None:
        legacy = bool(maxactive) or perf.pmu_type("kprobe") is None
    if not legacy:
        pfd = perf.open_probe("kprobe", func, offset, retprobe=retprobe, what=f"{kind} {target}")
        return attach_perf_fd(prog, pfd, kind, target, cookie=cookie, mechanism=mechanism, details=details)
    return attach_probe_event(prog, "kprobe", kind, target, f"{func}+{offset:#x}", retprobe=retprobe,
                              maxactive=maxactive, cookie=cookie, mechanism=mechanism,
                              details={**details, "maxactive": maxactive})


@functools.lru_cache(maxsize=None)
def syscall_function(name: str) -> str:
    """The kernel function behind syscall ``name`` (``__x64_sys_write`` where syscalls have arch wrappers,
    else ``__se_sys_write``), found by looking for the wrapper of ``bpf`` in /proc/kallsyms."""
    prefix = _SYSCALL_PREFIX.get(os.uname().machine)
    if prefix and _kallsyms_has(f"__{prefix}_sys_bpf"):
        return f"__{prefix}_sys_{name}"
    return f"__se_sys_{name}"


def _kallsyms_has(symbol: str) -> bool:
    try:
        with open("/proc/kallsyms") as f:
            return any(line.split()[2:3] == [symbol] for line in f)
    except OSError:
        return False


def attach_ksyscall(prog: Program, name: str, *, retprobe: bool = False, cookie: int = 0) -> Link:
    """Attach a kprobe (kretprobe) program to syscall ``name`` (``write``, ``clone``...) on this arch."""
    _require_kprobes("kretsyscall" if retprobe else "ksyscall")
    return attach_kprobe(prog, syscall_function(name), retprobe=retprobe, cookie=cookie)


def available_functions(pattern: str) -> list[tuple[str, int]]:
    """Traceable kernel functions matching glob ``pattern`` (``*``, ``?``) as (name, address).

    Addresses come from ``available_filter_functions_addrs`` (Linux 6.5+, readable unless locked down)
    and are 0 where only ``available_filter_functions`` can be read."""
    root = tracefs()
    errors, err = [], _errno.ENOENT
    for fname, with_addr in (("available_filter_functions_addrs", True), ("available_filter_functions", False)):
        path = os.path.join(root, fname)
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            err = e.errno or _errno.EIO
            errors.append(f"{path}: {os.strerror(err)}")
            continue
        out = []
        for line in lines:
            parts = line.split()
            addr, name = (int(parts[0], 16), parts[1]) if with_addr else (0, parts[0])
            if fnmatch.fnmatchcase(name, pattern):
                out.append((name, addr))
        return out
    raise kernel_error("read available_filter_functions", err, "; ".join(errors),
                       hint="kprobe.multi patterns need the function tracer's list of traceable functions")


def attach_kprobe_multi(prog: Program, pattern: str | None = None, *, symbols: Sequence[str] = (),
                        addrs: Sequence[int] = (), cookies: Sequence[int] = (), retprobe: bool = False,
                        session: bool = False) -> Link:
    """Attach a kprobe.multi program to many kernel functions at once (BPF_TRACE_KPROBE_MULTI).

    Give a glob ``pattern`` (resolved against available_filter_functions), or ``symbols``, or ``addrs``;
    ``cookies`` pairs one cookie with each symbol/address.  ``session`` runs the program at entry and exit."""
    from ..sys._cffi_abi import ffi

    if sum(map(bool, (pattern, symbols, addrs))) != 1:
        raise ValueError("give exactly one of pattern, symbols or addrs")
    if retprobe and session:
        raise ValueError("a kprobe session is entry and return already: retprobe does not apply")
    _require_kprobes("kprobe.multi")
    if pattern and not any(c in pattern for c in "*?"):
        symbols = [pattern]
    elif pattern:
        found = available_functions(pattern)
        if not found:
            raise NotFound("attach kprobe.multi", _errno.ENOENT, f"no traceable kernel function matches {pattern!r}")
        if all(a for _, a in found):
            addrs = sorted({a for _, a in found})
        else:
            symbols = sorted({n for n, _ in found})
    count = len(symbols) or len(addrs)
    if cookies and len(cookies) != count:
        raise ValueError(f"{len(cookies)} cookies for {count} functions")
    keep = [ffi.new("char[]", s.encode()) for s in symbols]
    sym_ptrs = ffi.new("char *[]", keep) if symbols else None
    addr_arr = ffi.new("__u64[]", list(addrs)) if addrs else None
    cookie_arr = ffi.new("__u64[]", list(cookies)) if cookies else None
    fields = {"cnt": count, "flags": abi.BPF_F_KPROBE_MULTI_RETURN if retprobe else 0,
              "syms": syscall.address(sym_ptrs) if sym_ptrs is not None else 0,
              "addrs": syscall.address(addr_arr) if addr_arr is not None else 0,
              "cookies": syscall.address(cookie_arr) if cookie_arr is not None else 0}
    attach_type = abi.BPF_TRACE_KPROBE_SESSION if session else abi.BPF_TRACE_KPROBE_MULTI
    target = pattern or ",".join(symbols) or f"{count} addresses"
    try:
        fd = syscall.link_create(prog.fd, 0, attach_type, kprobe_multi=fields)
    except KernelError as e:
        if e.errno == _errno.ESRCH:
            raise NotFound("attach kprobe.multi", _errno.ENOENT, f"{target}: not a traceable kernel function") \
                from None
        if e.errno == _errno.EOPNOTSUPP:
            raise NotSupported("attach kprobe.multi", e.errno, target,
                               hint="this kernel has no kprobe.multi links (CONFIG_FPROBE off, or before 5.18)") \
                from None
        raise
    return Link(fd, "kprobe_multi", target=target)
