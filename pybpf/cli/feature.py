"""``pybpf feature probe``: what the running kernel supports, found by probing (as ``bpftool feature``)."""
from __future__ import annotations

import argparse
import gzip
import os

from ._common import add_json, print_json

_KCONFIG_KEYS = (
    "CONFIG_BPF", "CONFIG_BPF_SYSCALL", "CONFIG_HAVE_EBPF_JIT", "CONFIG_BPF_JIT", "CONFIG_BPF_JIT_ALWAYS_ON",
    "CONFIG_DEBUG_INFO_BTF", "CONFIG_DEBUG_INFO_BTF_MODULES", "CONFIG_CGROUPS", "CONFIG_CGROUP_BPF",
    "CONFIG_CGROUP_NET_CLASSID", "CONFIG_SOCK_CGROUP_DATA", "CONFIG_BPF_EVENTS", "CONFIG_KPROBE_EVENTS",
    "CONFIG_UPROBE_EVENTS", "CONFIG_TRACING", "CONFIG_FTRACE_SYSCALLS", "CONFIG_FUNCTION_ERROR_INJECTION",
    "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_NET", "CONFIG_XDP_SOCKETS", "CONFIG_LWTUNNEL_BPF", "CONFIG_NET_ACT_BPF",
    "CONFIG_NET_CLS_BPF", "CONFIG_NET_CLS_ACT", "CONFIG_NET_SCH_INGRESS", "CONFIG_XFRM", "CONFIG_IP_ROUTE_CLASSID",
    "CONFIG_IPV6_SEG6_BPF", "CONFIG_BPF_LIRC_MODE2", "CONFIG_BPF_STREAM_PARSER", "CONFIG_NETFILTER_XT_MATCH_BPF",
    "CONFIG_BPFILTER", "CONFIG_BPF_LSM", "CONFIG_KPROBES", "CONFIG_FPROBE", "CONFIG_KALLSYMS_ALL",
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pybpf feature probe``."""
    p = sub.add_parser("feature", help="probe what the running kernel supports")
    ps = p.add_subparsers(dest="feature_cmd", metavar="{probe}")
    q = ps.add_parser("probe", help="program and map types, helpers per program type, attach kinds, kernel config")
    q.add_argument("--no-helpers", action="store_true", help="skip the (slower) helper probes")
    add_json(q)
    q.set_defaults(func=cmd_probe)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def kernel_config() -> dict[str, str]:
    """The running kernel's config (/proc/config.gz or /boot/config-RELEASE); empty when neither exists."""
    text = ""
    if os.path.exists("/proc/config.gz"):
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    else:
        path = f"/boot/config-{os.uname().release}"
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:-len(" is not set")]] = "n"
    return out


def probe_all(helpers: bool = True) -> dict:
    """Everything ``pybpf feature probe`` reports, as a dict."""
    from ..sys import abi, probes

    def names(enum: str, prefix: str) -> list[tuple[str, int]]:
        return [(n[len(prefix):].lower(), getattr(abi, n)) for n in abi._ENUMS[enum]
                if not n.startswith("__") and not n.endswith("UNSPEC") and not n.endswith("_DEPRECATED")]

    prog_types = {n: probes.prog_type(v) for n, v in names("bpf_prog_type", "BPF_PROG_TYPE_")}
    map_types = {n: probes.map_type(v) for n, v in names("bpf_map_type", "BPF_MAP_TYPE_")}
    result: dict = {
        "kernel": os.uname().release,
        "features": {f: probes.feature(f) for f in probes.FEATURES},
        "program_types": prog_types,
        "map_types": map_types,
    }
    if helpers:
        funcs = [(n[len("BPF_FUNC_"):], getattr(abi, n)) for n in abi._ENUMS["bpf_func_id"]
                 if n.startswith("BPF_FUNC_") and getattr(abi, n) > 0]
        result["helpers"] = {
            pt: [f"bpf_{fn}" for fn, fid in funcs if probes.helper(getattr(abi, "BPF_PROG_TYPE_" + pt.upper()), fid)]
            for pt, ok in prog_types.items() if ok and pt not in ("tracing", "ext", "lsm", "struct_ops")}
    cfg = kernel_config()
    result["kernel_config"] = {k: cfg.get(k, "n" if cfg else "unknown") for k in _KCONFIG_KEYS}
    return result


def cmd_probe(args: argparse.Namespace) -> int:
    """Print what the kernel supports."""
    r = probe_all(helpers=not args.no_helpers)
    if args.json:
        print_json(r)
        return 0
    print(f"Kernel {r['kernel']}\n\nScanning kernel configuration...")
    for k, v in r["kernel_config"].items():
        print(f"{k} is {'not set' if v == 'n' else v}")
    print("\nScanning features...")
    for k, v in r["features"].items():
        print(f"{k} is {'' if v else 'NOT '}available")
    print("\nScanning eBPF program types...")
    for k, v in r["program_types"].items():
        print(f"eBPF program_type {k} is {'' if v else 'NOT '}available")
    print("\nScanning eBPF map types...")
    for k, v in r["map_types"].items():
        print(f"eBPF map_type {k} is {'' if v else 'NOT '}available")
    for pt, hs in r.get("helpers", {}).items():
        print(f"\neBPF helpers supported for program type {pt}:")
        for h in hs:
            print(f"\t- {h}")
    return 0
