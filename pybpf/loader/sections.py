"""The SEC() naming conventions: which program type, expected attach type, load flags and auto-attach kind
a section name means -- the same table, in the same order and with the same matching rules, as libbpf's.

Matching (as libbpf): a pattern ending in ``/`` matches names starting with it; a pattern ending in ``+``
matches the exact name or the name followed by ``/extras``; any other pattern matches exactly.  The first
matching entry wins.
"""
from __future__ import annotations

from enum import IntFlag
from typing import NamedTuple

from ..errors import SectionError
from ..sys import abi


class SecFlag(IntFlag):
    """How a section's programs are loaded (libbpf's sec_def flags)."""

    NONE = 0
    EXP_ATTACH_OPT = 1  # expected_attach_type may be dropped on kernels that do not know it
    ATTACHABLE = 2  # expected_attach_type is set at load
    ATTACHABLE_OPT = ATTACHABLE | EXP_ATTACH_OPT
    ATTACH_BTF = 4  # the attach target is a BTF id found from the name after '/'
    SLEEPABLE = 8  # loaded with BPF_F_SLEEPABLE
    XDP_FRAGS = 16  # loaded with BPF_F_XDP_HAS_FRAGS
    USDT = 32


class SecDef(NamedTuple):
    """One row of the table: a section pattern and what it means."""

    pattern: str
    prog_type: str  # BPF_PROG_TYPE_* suffix
    attach_type: str | None  # bpf_attach_type name, or None for 0
    flags: SecFlag
    attach: str | None = None  # auto-attach kind: "kprobe", "uprobe", "tp", "raw_tp", "trace", "lsm", "iter"...

    def matches(self, name: str) -> bool:
        """libbpf's sec_def_matches()."""
        pat = self.pattern
        if pat.endswith("/"):
            return name.startswith(pat)
        if pat.endswith("+"):
            stem = pat[:-1]
            return name == stem or name.startswith(stem + "/")
        return name == pat


N, A, AO, BTF, S, FR, U = (SecFlag.NONE, SecFlag.ATTACHABLE, SecFlag.ATTACHABLE_OPT, SecFlag.ATTACH_BTF,
                           SecFlag.SLEEPABLE, SecFlag.XDP_FRAGS, SecFlag.USDT)

# fmt: off
SECTION_DEFS: tuple[SecDef, ...] = (
    SecDef("socket", "SOCKET_FILTER", None, N),
    SecDef("sk_reuseport/migrate", "SK_REUSEPORT", "BPF_SK_REUSEPORT_SELECT_OR_MIGRATE", A),
    SecDef("sk_reuseport", "SK_REUSEPORT", "BPF_SK_REUSEPORT_SELECT", A),
    SecDef("kprobe+", "KPROBE", None, N, "kprobe"),
    SecDef("uprobe+", "KPROBE", None, N, "uprobe"),
    SecDef("uprobe.s+", "KPROBE", None, S, "uprobe"),
    SecDef("kretprobe+", "KPROBE", None, N, "kprobe"),
    SecDef("uretprobe+", "KPROBE", None, N, "uprobe"),
    SecDef("uretprobe.s+", "KPROBE", None, S, "uprobe"),
    SecDef("kprobe.multi+", "KPROBE", "BPF_TRACE_KPROBE_MULTI", N, "kprobe_multi"),
    SecDef("kretprobe.multi+", "KPROBE", "BPF_TRACE_KPROBE_MULTI", N, "kprobe_multi"),
    SecDef("kprobe.session+", "KPROBE", "BPF_TRACE_KPROBE_SESSION", N, "kprobe_multi"),
    SecDef("uprobe.multi+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", N, "uprobe_multi"),
    SecDef("uretprobe.multi+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", N, "uprobe_multi"),
    SecDef("uprobe.session+", "KPROBE", "BPF_TRACE_UPROBE_SESSION", N, "uprobe_multi"),
    SecDef("uprobe.multi.s+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", S, "uprobe_multi"),
    SecDef("uretprobe.multi.s+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", S, "uprobe_multi"),
    SecDef("uprobe.session.s+", "KPROBE", "BPF_TRACE_UPROBE_SESSION", S, "uprobe_multi"),
    SecDef("ksyscall+", "KPROBE", None, N, "ksyscall"),
    SecDef("kretsyscall+", "KPROBE", None, N, "ksyscall"),
    SecDef("usdt+", "KPROBE", None, U, "usdt"),
    SecDef("usdt.s+", "KPROBE", None, U | S, "usdt"),
    SecDef("tc/ingress", "SCHED_CLS", "BPF_TCX_INGRESS", N, "tcx"),
    SecDef("tc/egress", "SCHED_CLS", "BPF_TCX_EGRESS", N, "tcx"),
    SecDef("tcx/ingress", "SCHED_CLS", "BPF_TCX_INGRESS", N, "tcx"),
    SecDef("tcx/egress", "SCHED_CLS", "BPF_TCX_EGRESS", N, "tcx"),
    SecDef("tc", "SCHED_CLS", None, N),
    SecDef("classifier", "SCHED_CLS", None, N),
    SecDef("action", "SCHED_ACT", None, N),
    SecDef("netkit/primary", "SCHED_CLS", "BPF_NETKIT_PRIMARY", N),
    SecDef("netkit/peer", "SCHED_CLS", "BPF_NETKIT_PEER", N),
    SecDef("tracepoint+", "TRACEPOINT", None, N, "tp"),
    SecDef("tp+", "TRACEPOINT", None, N, "tp"),
    SecDef("tracepoint.s+", "TRACEPOINT", None, S, "tp"),
    SecDef("tp.s+", "TRACEPOINT", None, S, "tp"),
    SecDef("raw_tracepoint+", "RAW_TRACEPOINT", None, N, "raw_tp"),
    SecDef("raw_tp+", "RAW_TRACEPOINT", None, N, "raw_tp"),
    SecDef("raw_tracepoint.s+", "RAW_TRACEPOINT", None, S, "raw_tp"),
    SecDef("raw_tp.s+", "RAW_TRACEPOINT", None, S, "raw_tp"),
    SecDef("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", None, N, "raw_tp"),
    SecDef("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", None, N, "raw_tp"),
    SecDef("tp_btf+", "TRACING", "BPF_TRACE_RAW_TP", BTF, "trace"),
    SecDef("tp_btf.s+", "TRACING", "BPF_TRACE_RAW_TP", BTF | S, "trace"),
    SecDef("fentry+", "TRACING", "BPF_TRACE_FENTRY", BTF, "trace"),
    SecDef("fmod_ret+", "TRACING", "BPF_MODIFY_RETURN", BTF, "trace"),
    SecDef("fexit+", "TRACING", "BPF_TRACE_FEXIT", BTF, "trace"),
    SecDef("fentry.s+", "TRACING", "BPF_TRACE_FENTRY", BTF | S, "trace"),
    SecDef("fmod_ret.s+", "TRACING", "BPF_MODIFY_RETURN", BTF | S, "trace"),
    SecDef("fexit.s+", "TRACING", "BPF_TRACE_FEXIT", BTF | S, "trace"),
    SecDef("freplace+", "EXT", None, BTF, "trace"),
    SecDef("lsm+", "LSM", "BPF_LSM_MAC", BTF, "lsm"),
    SecDef("lsm.s+", "LSM", "BPF_LSM_MAC", BTF | S, "lsm"),
    SecDef("lsm_cgroup+", "LSM", "BPF_LSM_CGROUP", BTF),
    SecDef("iter+", "TRACING", "BPF_TRACE_ITER", BTF, "iter"),
    SecDef("iter.s+", "TRACING", "BPF_TRACE_ITER", BTF | S, "iter"),
    SecDef("syscall", "SYSCALL", None, S),
    SecDef("xdp.frags/devmap", "XDP", "BPF_XDP_DEVMAP", FR),
    SecDef("xdp/devmap", "XDP", "BPF_XDP_DEVMAP", A),
    SecDef("xdp.frags/cpumap", "XDP", "BPF_XDP_CPUMAP", FR),
    SecDef("xdp/cpumap", "XDP", "BPF_XDP_CPUMAP", A),
    SecDef("xdp.frags", "XDP", "BPF_XDP", FR),
    SecDef("xdp", "XDP", "BPF_XDP", AO),
    SecDef("perf_event", "PERF_EVENT", None, N),
    SecDef("lwt_in", "LWT_IN", None, N),
    SecDef("lwt_out", "LWT_OUT", None, N),
    SecDef("lwt_xmit", "LWT_XMIT", None, N),
    SecDef("lwt_seg6local", "LWT_SEG6LOCAL", None, N),
    SecDef("sockops", "SOCK_OPS", "BPF_CGROUP_SOCK_OPS", AO),
    SecDef("sk_skb/stream_parser", "SK_SKB", "BPF_SK_SKB_STREAM_PARSER", AO),
    SecDef("sk_skb/stream_verdict", "SK_SKB", "BPF_SK_SKB_STREAM_VERDICT", AO),
    SecDef("sk_skb/verdict", "SK_SKB", "BPF_SK_SKB_VERDICT", AO),
    SecDef("sk_skb", "SK_SKB", None, N),
    SecDef("sk_msg", "SK_MSG", "BPF_SK_MSG_VERDICT", AO),
    SecDef("lirc_mode2", "LIRC_MODE2", "BPF_LIRC_MODE2", AO),
    SecDef("flow_dissector", "FLOW_DISSECTOR", "BPF_FLOW_DISSECTOR", AO),
    SecDef("cgroup_skb/ingress", "CGROUP_SKB", "BPF_CGROUP_INET_INGRESS", AO),
    SecDef("cgroup_skb/egress", "CGROUP_SKB", "BPF_CGROUP_INET_EGRESS", AO),
    SecDef("cgroup/skb", "CGROUP_SKB", None, N),
    SecDef("cgroup/sock_create", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_CREATE", A),
    SecDef("cgroup/sock_release", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_RELEASE", A),
    SecDef("cgroup/sock", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_CREATE", AO),
    SecDef("cgroup/post_bind4", "CGROUP_SOCK", "BPF_CGROUP_INET4_POST_BIND", A),
    SecDef("cgroup/post_bind6", "CGROUP_SOCK", "BPF_CGROUP_INET6_POST_BIND", A),
    SecDef("cgroup/bind4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_BIND", A),
    SecDef("cgroup/bind6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_BIND", A),
    SecDef("cgroup/connect4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_CONNECT", A),
    SecDef("cgroup/connect6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_CONNECT", A),
    SecDef("cgroup/connect_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_CONNECT", A),
    SecDef("cgroup/sendmsg4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP4_SENDMSG", A),
    SecDef("cgroup/sendmsg6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP6_SENDMSG", A),
    SecDef("cgroup/sendmsg_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_SENDMSG", A),
    SecDef("cgroup/recvmsg4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP4_RECVMSG", A),
    SecDef("cgroup/recvmsg6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP6_RECVMSG", A),
    SecDef("cgroup/recvmsg_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_RECVMSG", A),
    SecDef("cgroup/getpeername4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_GETPEERNAME", A),
    SecDef("cgroup/getpeername6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_GETPEERNAME", A),
    SecDef("cgroup/getpeername_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_GETPEERNAME", A),
    SecDef("cgroup/getsockname4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_GETSOCKNAME", A),
    SecDef("cgroup/getsockname6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_GETSOCKNAME", A),
    SecDef("cgroup/getsockname_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_GETSOCKNAME", A),
    SecDef("cgroup/sysctl", "CGROUP_SYSCTL", "BPF_CGROUP_SYSCTL", A),
    SecDef("cgroup/getsockopt", "CGROUP_SOCKOPT", "BPF_CGROUP_GETSOCKOPT", A),
    SecDef("cgroup/setsockopt", "CGROUP_SOCKOPT", "BPF_CGROUP_SETSOCKOPT", A),
    SecDef("cgroup/dev", "CGROUP_DEVICE", "BPF_CGROUP_DEVICE", AO),
    SecDef("struct_ops+", "STRUCT_OPS", None, N),
    SecDef("struct_ops.s+", "STRUCT_OPS", None, S),
    SecDef("sk_lookup", "SK_LOOKUP", "BPF_SK_LOOKUP", A),
    SecDef("netfilter", "NETFILTER", "BPF_NETFILTER", N),
)
# fmt: on


class SectionInfo(NamedTuple):
    """What a program's section name means for loading and auto-attaching it."""

    section: str
    prog_type: int
    expected_attach_type: int
    flags: SecFlag
    attach: str | None  # auto-attach kind, None when the program cannot be auto-attached
    target: str  # the part after the first '/', e.g. "syscalls/sys_enter_execve" ('' when absent)
    definition: SecDef

    @property
    def sleepable(self) -> bool:
        """Loaded with BPF_F_SLEEPABLE."""
        return bool(self.flags & SecFlag.SLEEPABLE)

    @property
    def prog_flags(self) -> int:
        """The BPF_PROG_LOAD prog_flags this section implies."""
        f = abi.BPF_F_SLEEPABLE if self.flags & SecFlag.SLEEPABLE else 0
        if self.flags & SecFlag.XDP_FRAGS and self.prog_type == abi.BPF_PROG_TYPE_XDP:
            f |= abi.BPF_F_XDP_HAS_FRAGS
        return f

    @property
    def is_return(self) -> bool:
        """True for kretprobe/uretprobe/kretsyscall/kretprobe.multi/uretprobe.multi sections."""
        return self.definition.pattern.startswith(("kret", "uret"))


def find_sec_def(section: str) -> SecDef | None:
    """The first table row matching ``section``, or None."""
    for d in SECTION_DEFS:
        if d.matches(section):
            return d
    return None


def parse_section(section: str) -> SectionInfo:
    """What ``section`` means; raises :class:`SectionError` naming the section when libbpf would not know it."""
    d = find_sec_def(section)
    if d is None:
        raise SectionError(f"section {section!r}: not a program section pybpf (or libbpf) knows; "
                           f"see pybpf.loader.sections.SECTION_DEFS for the conventions")
    prog_type = getattr(abi, "BPF_PROG_TYPE_" + d.prog_type)
    attach_type = 0
    if d.attach_type is not None:
        if not hasattr(abi, d.attach_type):
            raise SectionError(f"section {section!r}: attach type {d.attach_type} is unknown to this pybpf")
        attach_type = int(getattr(abi, d.attach_type))
    _, _, target = section.partition("/")
    return SectionInfo(section, prog_type, attach_type, d.flags, d.attach, target, d)
