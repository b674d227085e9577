"""Attaching programs: :class:`Link` and one module per attach kind.

``attach(prog)`` attaches from the program's SEC() name, as libbpf's auto-attach does; the ``attach_*``
functions attach explicitly.  Each picks the kernel mechanism by trying the modern one (bpf_link) and
falling back to the legacy one on the errno that means "not on this kernel".  Names load lazily.
"""
from __future__ import annotations

from .._lazy import lazy_exports


_LAZY = {
    "Link": "base", "LinkGroup": "base", "LinkInfo": "info",
    "attach": "auto",
    "attach_tracepoint": "perf", "attach_perf_event": "perf", "remove_stale_events": "perf",
    "attach_raw_tracepoint": "tracing", "attach_trace": "tracing", "attach_lsm": "tracing", "attach_iter": "tracing",
    "IterLink": "tracing",
    "attach_kprobe": "kprobe", "attach_ksyscall": "kprobe", "attach_kprobe_multi": "kprobe",
    "attach_uprobe": "uprobe", "attach_uprobe_multi": "uprobe", "attach_usdt": "usdt",
    "attach_xdp": "xdp", "xdp_query": "xdp",
    "attach_tc": "tc",
    "attach_cgroup": "cgroup",
    "attach_socket": "sock", "attach_reuseport": "sock", "attach_sockmap": "sock",
    "attach_netns": "netns", "attach_netfilter": "netns",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
