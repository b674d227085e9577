"""``attach(prog)``: attach a program the way its SEC() name says, as libbpf's auto-attach does, or with
an explicit target for the kinds whose section cannot name one (an interface, a cgroup, a socket...)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BPFError
from ..sys import abi
from .base import Link

if TYPE_CHECKING:
    from ..program import Program

_KPROBE_SPEC = re.compile(r"^([A-Za-z0-9_.]+)(?:\+(0x[0-9a-fA-F]+|\d+))?$")
_UPROBE_SPEC = re.compile(r"^([^:]+):(.+?)(?:\+(0x[0-9a-fA-F]+|\d+))?$")


def _need(target: Any, prog: Program, what: str, example: str) -> Any:
    if target is None or target == "":
        raise ValueError(f"program {prog.name!r} (section {prog.section!r}) attaches to {what}: "
                         f"call attach({example})")
    return target


def _kprobe(prog: Program, spec: str, is_return: bool, **options: Any) -> Link:
    from .kprobe import attach_kprobe

    m = _KPROBE_SPEC.match(_need(spec, prog, "a kernel function", "'do_sys_openat2'"))
    if not m:
        raise ValueError(f"kprobe target {spec!r}: expected FUNCTION or FUNCTION+OFFSET")
    return attach_kprobe(prog, m.group(1), int(m.group(2) or "0", 0), retprobe=is_return, **options)


def _uprobe(prog: Program, spec: str, is_return: bool, **options: Any) -> Link:
    from .uprobe import attach_uprobe

    m = _UPROBE_SPEC.match(_need(spec, prog, "a function of a binary", "'/bin/bash:readline'"))
    if not m:
        raise ValueError(f"uprobe target {spec!r}: expected BINARY:FUNCTION[+OFFSET]")
    return attach_uprobe(prog, m.group(1), m.group(2), int(m.group(3) or "0", 0), retprobe=is_return, **options)


def _uprobe_multi(prog: Program, spec: str, is_return: bool, session: bool, **options: Any) -> Link:
    from .uprobe import attach_uprobe_multi

    binary, sep, pattern = _need(spec, prog, "functions of a binary", "'/usr/lib/libc.so.6:malloc*'").partition(":")
    if not sep or not pattern:
        raise ValueError(f"uprobe.multi target {spec!r}: expected BINARY:PATTERN")
    return attach_uprobe_multi(prog, binary, pattern, retprobe=is_return, session=session, **options)


def _usdt(prog: Program, spec: str, **options: Any) -> Link:
    from .usdt import attach_usdt

    parts = _need(spec, prog, "a USDT probe", "'/usr/bin/python3.11:python:gc__start'").split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"usdt target {spec!r}: expected BINARY:PROVIDER:NAME")
    return attach_usdt(prog, *parts, **options)


def _by_section(prog: Program, kind: str, spec: str, is_return: bool, session: bool,
                options: dict[str, Any]) -> Link:
    if kind == "tp":
        return _func("perf.attach_tracepoint")(prog, _need(spec, prog, "a tracepoint", "'syscalls/sys_enter_execve'"),
                                               **options)
    if kind == "raw_tp":
        return _func("tracing.attach_raw_tracepoint")(prog, _need(spec, prog, "a raw tracepoint", "'sched_switch'"),
                                                      **options)
    if kind in ("trace", "lsm", "iter"):
        return _func(f"tracing.attach_{kind}")(prog, **options)
    if kind == "kprobe":
        return _kprobe(prog, spec, is_return, **options)
    if kind == "ksyscall":
        return _func("kprobe.attach_ksyscall")(prog, _need(spec, prog, "a syscall", "'write'"), retprobe=is_return,
                                               **options)
    if kind == "kprobe_multi":
        return _func("kprobe.attach_kprobe_multi")(prog, _need(spec, prog, "kernel functions", "'vfs_*'"),
                                                   retprobe=is_return, session=session, **options)
    if kind == "uprobe":
        return _uprobe(prog, spec, is_return, **options)
    if kind == "uprobe_multi":
        return _uprobe_multi(prog, spec, is_return, session, **options)
    if kind == "usdt":
        return _usdt(prog, spec, **options)
    if kind == "tcx":
        iface = _need(options.pop("iface", None), prog, "a network interface", "iface='eth0'")
        return _func("tc.attach_tc")(prog, iface, **options)
    raise BPFError(f"program {prog.name!r}: pybpf cannot auto-attach {kind!r} programs yet "
                   f"(section {prog.section!r})")


_IFACE = ("a network interface", "'eth0'")
_CGROUP = ("a cgroup", "'/sys/fs/cgroup/unified/mygroup'")
_NEEDS_TARGET: dict[str, tuple[str, tuple[str, str]]] = {
    "XDP": ("xdp.attach_xdp", _IFACE), "SCHED_CLS": ("tc.attach_tc", _IFACE),
    "SOCKET_FILTER": ("sock.attach_socket", ("a socket", "sock")),
    "SK_REUSEPORT": ("sock.attach_reuseport", ("a SO_REUSEPORT socket", "sock")),
    "SK_MSG": ("sock.attach_sockmap", ("a sockmap", "sockmap")),
    "SK_SKB": ("sock.attach_sockmap", ("a sockmap", "sockmap")),
    "TRACEPOINT": ("perf.attach_tracepoint", ("a tracepoint", "'syscalls/sys_enter_execve'")),
    "RAW_TRACEPOINT": ("tracing.attach_raw_tracepoint", ("a raw tracepoint", "'sched_switch'")),
    **{t: ("cgroup.attach_cgroup", _CGROUP) for t in ("CGROUP_SKB", "CGROUP_SOCK", "CGROUP_SOCK_ADDR",
                                                      "CGROUP_SOCKOPT", "CGROUP_SYSCTL", "CGROUP_DEVICE", "SOCK_OPS")},
}
_NO_TARGET = {"PERF_EVENT": "perf.attach_perf_event", "NETFILTER": "netns.attach_netfilter",
              "LSM": "tracing.attach_lsm", "EXT": "tracing.attach_trace", "TRACING": "tracing.attach_trace"}
_OPTIONAL_TARGET = {"FLOW_DISSECTOR": "netns.attach_netns", "SK_LOOKUP": "netns.attach_netns"}


def _func(path: str) -> Callable[..., Link]:
    import importlib

    module, _, name = path.partition(".")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def _by_type(prog: Program, target: Any, options: dict[str, Any]) -> Link:
    try:
        tname = abi.bpf_prog_type(prog.type).name[len("BPF_PROG_TYPE_"):]
    except ValueError:
        tname = str(prog.type)
    if tname == "TRACING" and prog.expected_attach_type == abi.BPF_TRACE_ITER:
        return _func("tracing.attach_iter")(prog, **options)
    if tname in _NEEDS_TARGET:
        path, need = _NEEDS_TARGET[tname]
        return _func(path)(prog, _need(target, prog, *need), **options)
    if tname in _OPTIONAL_TARGET:
        return _func(_OPTIONAL_TARGET[tname])(prog, target, **options)
    if tname in _NO_TARGET:
        if target is not None:
            raise ValueError(f"program {prog.name!r}: {tname.lower()} programs take no attach target "
                             f"(got {target!r}); pass options by keyword")
        return _func(_NO_TARGET[tname])(prog, **options)
    if tname == "STRUCT_OPS":
        raise BPFError(f"program {prog.name!r} (struct_ops) is not attached itself: register the struct_ops map "
                       "that uses it, Object.attach_struct_ops(map_name)")
    raise BPFError(f"program {prog.name!r} ({tname.lower()}) cannot be attached without a section naming how; "
                   "use one of the pybpf.link.attach_* functions")


def attach(prog: Program, target: Any = None, **options: Any) -> Link:
    """Attach ``prog`` as its section says (``SEC("tracepoint/syscalls/sys_enter_execve")``,
    ``SEC("uretprobe//bin/bash:readline")``, ``SEC("tc/ingress")``...), like libbpf's auto-attach.

    ``target`` overrides the section's target for tracing kinds, and names what network and cgroup programs
    attach to (interface, cgroup path, socket, sockmap, netns); ``options`` go to the ``attach_*`` function
    (``mechanism``, ``pid``, ``mode``, ``cookie``...)."""
    from ..loader.sections import parse_section

    info = parse_section(prog.section) if prog.section else None
    if info is not None and info.attach is not None:
        if info.attach == "tcx" and target is not None:
            options.setdefault("iface", target)
            target = None
        spec = target if target is not None else info.target
        session = ".session" in info.definition.pattern
        return _by_section(prog, info.attach, spec, info.is_return, session, options)
    return _by_type(prog, target, options)
