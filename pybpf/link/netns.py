"""Per-network-namespace hooks: flow dissector and sk_lookup programs (netns links, Linux 5.8+ / 5.9+; the
flow dissector falls back to BPF_PROG_ATTACH), and netfilter hooks (netfilter links, Linux 6.4+)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..sys import abi, syscall
from ..sys.netns import open_netns
from ..sys.fd import FD
from .base import Link, attach_fd, resolve_attach_type

if TYPE_CHECKING:
    from ..program import Program

_FAMILIES = {"ipv4": abi.NFPROTO_IPV4, "ipv6": abi.NFPROTO_IPV6, "inet": abi.NFPROTO_INET,
             "arp": abi.NFPROTO_ARP, "bridge": abi.NFPROTO_BRIDGE, "netdev": abi.NFPROTO_NETDEV}
_HOOKS = {"prerouting": abi.NF_INET_PRE_ROUTING, "input": abi.NF_INET_LOCAL_IN, "local_in": abi.NF_INET_LOCAL_IN,
          "forward": abi.NF_INET_FORWARD, "output": abi.NF_INET_LOCAL_OUT, "local_out": abi.NF_INET_LOCAL_OUT,
          "postrouting": abi.NF_INET_POST_ROUTING, "ingress": abi.NF_INET_INGRESS}


def _named(table: dict[str, int], value: str | int, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"netfilter {what} must be one of {sorted(table)} or a number, not {value!r}") from None


def attach_netns(prog: Program, netns: str | None = None, attach_type: int | str | None = None, *,
                 mechanism: str | None = None) -> Link:
    """Attach a flow_dissector or sk_lookup program to a network namespace (``ip netns`` name or path;
    default: this thread's).  ``attach_type`` defaults to the program's expected one."""
    atype, aname = resolve_attach_type(prog, attach_type, "flow_dissector, sk_lookup")
    target = netns or "current network namespace"
    nsfd = FD(open_netns(netns))
    legacy_ns = nsfd.dup() if atype == abi.BPF_FLOW_DISSECTOR else None
    return attach_fd(prog, nsfd, atype, "netns", target, {"netns": target, "attach_type": aname},
                     mechanism=mechanism, netns=legacy_ns)


def attach_netfilter(prog: Program, family: str | int = "ipv4", hook: str | int = "local_in", priority: int = 0,
                     *, defrag: bool = False) -> Link:
    """Attach a netfilter program to ``hook`` (``"prerouting"``, ``"local_in"``, ``"forward"``,
    ``"local_out"``, ``"postrouting"`` or NF_INET_*) of ``family`` (``"ipv4"``, ``"ipv6"`` or NFPROTO_*)
    in this thread's network namespace; ``priority`` orders it among the hook's other functions (it must
    not be one of the two extremes), ``defrag`` asks for defragmented packets."""
    pf, hooknum = _named(_FAMILIES, family, "family"), _named(_HOOKS, hook, "hook")
    flags = abi.BPF_F_NETFILTER_IP_DEFRAG if defrag else 0
    fd = syscall.link_create(prog.fd, 0, abi.BPF_NETFILTER,
                             netfilter={"pf": pf, "hooknum": hooknum, "priority": priority, "flags": flags})
    return Link(FD(fd), "netfilter", target=f"{family}/{hook} priority {priority}")
