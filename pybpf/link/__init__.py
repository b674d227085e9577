"""Attaching programs: :class:`Link` and one module per attach kind.

``attach(prog)`` attaches from the program's SEC() name, as libbpf's auto-attach does; the ``attach_*``
functions attach explicitly.  Each picks the kernel mechanism by trying the modern one (bpf_link) and
falling back to the legacy one on the errno that means "not on this kernel".  Names load lazily.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Link": "base", "LinkGroup": "base", "LinkInfo": "info",
    "attach": "auto",
    "attach_tracepoint": "perf", "attach_perf_event": "perf", "remove_stale_events": "perf",
    "attach_raw_tracepoint": "tracing", "attach_trace": "tracing", "attach_lsm": "tracing", "attach_iter": "tracing",
    "IterLink": "tracing",
    "attach_kprobe": "kprobe", "attach_ksyscall": "kprobe", "attach_kprobe_multi": "kprobe",
    "attach_uprobe": "uprobe", "attach_uprobe_multi": "uprobe",
    "attach_xdp": "xdp", "xdp_query": "xdp",
    "attach_tc": "tc",
    "attach_cgroup": "cgroup",
    "attach_socket": "sock", "attach_reuseport": "sock", "attach_sockmap": "sock",
    "attach_netns": "netns", "attach_netfilter": "netns",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
