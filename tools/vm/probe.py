#!/usr/bin/env python3
"""Report what the running kernel supports for BPF, by trying it (never by version).

    python tools/vm/probe.py [--json] [--require kprobe,btf,...]

Loads a trivial program (``r0 = 0; exit``) of every program type, creates a small map of the common map
types, looks for the kprobe/uprobe PMUs, tracefs probe files and kernel BTF, and attaches a kprobe, a
kretprobe, a tracepoint, a raw tracepoint and kprobe.multi for real.  Feature names match the tests'
``feature(name)`` markers.  Prints a readable report and then one line ``PROBE-JSON {...}``; with
``--require`` exits 1 when a listed feature is missing.  Made to run inside tools/vmtest.py guests, where Python
is ~25x slower than on the host: it imports only pybpf.sys.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pybpf.errors import KernelError
from pybpf.sys import abi, syscall
from pybpf.sys._cffi_abi import ffi

EVENT_SOURCES = Path("/sys/bus/event_source/devices")
KPROBE_SYMBOLS = ("do_nanosleep", "__x64_sys_getpid", "do_sys_openat2")

# r0 = 0; exit
TRIVIAL = (struct.pack("<BBhi", abi.BPF_ALU64 | abi.BPF_MOV | abi.BPF_K, 0, 0, 0)
           + struct.pack("<BBhi", abi.BPF_JMP | abi.BPF_EXIT, 0, 0, 0))

# program types that need an expected attach type to load
ATTACH_FOR_TYPE = {
    "CGROUP_SOCK_ADDR": "BPF_CGROUP_INET4_CONNECT",
    "SK_LOOKUP": "BPF_SK_LOOKUP",
    "CGROUP_SOCKOPT": "BPF_CGROUP_GETSOCKOPT",
    "NETFILTER": "BPF_NETFILTER",
}
# program types that cannot load without a BTF attach target: reported, not probed here
NEEDS_TARGET = {"TRACING", "EXT", "LSM", "STRUCT_OPS"}

# map type -> (key_size, value_size, max_entries, flags by name)
MAP_PARAMS: dict[str, tuple[int, int, int, str]] = {
    "HASH": (4, 4, 1, ""), "ARRAY": (4, 4, 1, ""), "PROG_ARRAY": (4, 4, 1, ""), "PERF_EVENT_ARRAY": (4, 4, 1, ""),
    "PERCPU_HASH": (4, 4, 1, ""), "PERCPU_ARRAY": (4, 4, 1, ""), "STACK_TRACE": (4, 8, 1, ""),
    "CGROUP_ARRAY": (4, 4, 1, ""), "LRU_HASH": (4, 4, 1, ""), "LRU_PERCPU_HASH": (4, 4, 1, ""),
    "LPM_TRIE": (8, 4, 1, "BPF_F_NO_PREALLOC"), "DEVMAP": (4, 4, 1, ""), "SOCKMAP": (4, 4, 1, ""),
    "CPUMAP": (4, 4, 1, ""), "XSKMAP": (4, 4, 1, ""), "SOCKHASH": (4, 4, 1, ""), "DEVMAP_HASH": (4, 4, 1, ""),
    "QUEUE": (0, 4, 1, ""), "STACK": (0, 4, 1, ""), "RINGBUF": (0, 0, 4096, ""), "BLOOM_FILTER": (0, 4, 1, ""),
    "USER_RINGBUF": (0, 0, 4096, ""), "REUSEPORT_SOCKARRAY": (4, 4, 1, ""),
}


def err_name(e: BaseException) -> str:
    return getattr(e, "errno_name", None) or type(e).__name__


def closing(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def load(prog_type: str, attach: str | None = None) -> int:
    flags = abi.BPF_F_SLEEPABLE if prog_type == "SYSCALL" else 0  # syscall programs must be sleepable
    return syscall.prog_load(getattr(abi, f"BPF_PROG_TYPE_{prog_type}"), TRIVIAL, "GPL", "pybpf_probe",
                             expected_attach_type=getattr(abi, attach) if attach else 0, prog_flags=flags)[0]


def enum_names(enum: str, prefix: str) -> list[str]:
    return [n[len(prefix):] for n in abi._ENUMS[enum] if n.startswith(prefix) and not n.startswith("__")
            and not n.endswith("UNSPEC")]


def probe_prog_types() -> dict[str, str]:
    out = {}
    for name in enum_names("bpf_prog_type", "BPF_PROG_TYPE_"):
        if name in NEEDS_TARGET:
            out[name] = "not probed (needs a BTF attach target)"
            continue
        try:
            closing(load(name, ATTACH_FOR_TYPE.get(name)))
            out[name] = "ok"
        except KernelError as e:
            out[name] = e.errno_name
    return out


def probe_map_types() -> dict[str, str]:
    out = {}
    for name in enum_names("bpf_map_type", "BPF_MAP_TYPE_"):
        if name not in MAP_PARAMS:
            continue
        k, v, n, flags = MAP_PARAMS[name]
        try:
            closing(syscall.map_create(getattr(abi, f"BPF_MAP_TYPE_{name}"), k, v, n,
                                       getattr(abi, flags) if flags else 0, "pybpf_probe"))
            out[name] = "ok"
        except KernelError as e:
            out[name] = e.errno_name
    return out


def pmu_type(name: str) -> int | None:
    try:
        return int((EVENT_SOURCES / name / "type").read_text())
    except (OSError, ValueError):
        return None


def retprobe_bit(pmu: str) -> int:
    # format/retprobe reads "config:0"
    return int((EVENT_SOURCES / pmu / "format" / "retprobe").read_text().split(":")[1])


def tracefs() -> Path | None:
    for p in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing")):
        if (p / "events").is_dir():
            return p
    return None


def attach_kprobe(retprobe: bool) -> str:
    """perf_event_open on the kprobe PMU + PERF_EVENT_IOC_SET_BPF of a kprobe program."""
    pmu = pmu_type("kprobe")
    if pmu is None:
        return "no kprobe PMU"
    prog = load("KPROBE")
    try:
        last = ""
        for sym in KPROBE_SYMBOLS:
            name = ffi.new("char[]", sym.encode())
            attr = syscall.new_perf_attr()
            attr.type = pmu
            attr.config = (1 << retprobe_bit("kprobe")) if retprobe else 0
            attr.kprobe_func = syscall.address(name)
            try:
                fd = syscall.perf_event_open(attr, pid=-1, cpu=0, what=sym)
            except KernelError as e:
                last = f"{sym}: {e.errno_name}"
                continue
            try:
                fcntl.ioctl(fd, abi.PERF_EVENT_IOC_SET_BPF, prog)
                return "ok"
            except OSError as e:
                return f"SET_BPF: {os.strerror(e.errno or 0)}"
            finally:
                closing(fd)
        return last
    finally:
        closing(prog)


def perf_link() -> str:
    """BPF_LINK_CREATE with BPF_PERF_EVENT on a tracepoint perf event (5.10 gives EINVAL: use the ioctl)."""
    return _tracepoint(link=True)


def _tracepoint(link: bool = False) -> str:
    tfs = tracefs()
    if tfs is None:
        return "no tracefs"
    try:
        tp_id = int((tfs / "events" / "syscalls" / "sys_enter_getpid" / "id").read_text())
    except (OSError, ValueError):
        try:
            tp_id = int((tfs / "events" / "sched" / "sched_process_exec" / "id").read_text())
        except (OSError, ValueError):
            return "no tracepoint id"
    prog = load("TRACEPOINT")
    try:
        attr = syscall.new_perf_attr()
        attr.type, attr.config = abi.PERF_TYPE_TRACEPOINT, tp_id
        fd = syscall.perf_event_open(attr, pid=-1, cpu=0, what="tracepoint")
        try:
            if link:
                closing(syscall.link_create(prog, fd, abi.BPF_PERF_EVENT))
            else:
                fcntl.ioctl(fd, abi.PERF_EVENT_IOC_SET_BPF, prog)
            return "ok"
        finally:
            closing(fd)
    finally:
        closing(prog)


def raw_tracepoint() -> str:
    prog = load("RAW_TRACEPOINT")
    try:
        closing(syscall.raw_tracepoint_open(prog, "sys_enter"))
        return "ok"
    finally:
        closing(prog)


def kprobe_multi() -> str:
    prog = load("KPROBE", "BPF_TRACE_KPROBE_MULTI")
    try:
        last = ""
        for sym in KPROBE_SYMBOLS:
            name = ffi.new("char[]", sym.encode())
            syms = ffi.new("char *[]", [name])
            try:
                closing(syscall.link_create(prog, 0, abi.BPF_TRACE_KPROBE_MULTI,
                                            kprobe_multi={"syms": syscall.address(syms), "cnt": 1}))
                return "ok"
            except KernelError as e:
                last = f"{sym}: {e.errno_name}"
        return last
    finally:
        closing(prog)


def kprobe_events() -> str:
    """The legacy tracefs interface: create and delete a kprobe event in a private group."""
    tfs = tracefs()
    if tfs is None or not (tfs / "kprobe_events").exists():
        return "no kprobe_events"
    group = f"pybpf_probe_{os.getpid()}"
    last = ""
    for sym in KPROBE_SYMBOLS:
        # os.open/os.write: Python's open(..., "a") seeks, which tracefs refuses with EINVAL on some kernels
        fd = os.open(tfs / "kprobe_events", os.O_WRONLY | os.O_APPEND)
        try:
            try:
                os.write(fd, f"p:{group}/ev {sym}\n".encode())
            except OSError as e:
                last = f"{sym}: {os.strerror(e.errno or 0)}"
                continue
            os.write(fd, f"-:{group}/ev\n".encode())
            return "ok"
        finally:
            os.close(fd)
    return last


def hw_perf() -> str:
    attr = syscall.new_perf_attr()
    attr.type, attr.config = abi.PERF_TYPE_HARDWARE, abi.PERF_COUNT_HW_CPU_CYCLES
    closing(syscall.perf_event_open(attr, pid=-1, cpu=0, what="cpu cycles"))
    return "ok"


def guarded(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except KernelError as e:
        return e.errno_name
    except Exception as e:  # noqa: BLE001 -- a probe must report, not crash the report
        return f"{type(e).__name__}: {e}"


def probe() -> dict[str, Any]:
    try:  # kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; may fail without CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (OSError, ValueError):
        pass
    tfs = tracefs()
    features = {
        "btf": Path("/sys/kernel/btf/vmlinux").exists(),
        "kprobe_pmu": pmu_type("kprobe") is not None,
        "uprobe_pmu": pmu_type("uprobe") is not None,
        "uprobe_events": bool(tfs and (tfs / "uprobe_events").exists()),
    }
    attach = {
        "kprobe": guarded(lambda: attach_kprobe(False)),
        "kretprobe": guarded(lambda: attach_kprobe(True)),
        "kprobe_events": guarded(kprobe_events),
        "kprobe_multi": guarded(kprobe_multi),
        "tracepoint": guarded(_tracepoint),
        "perf_link": guarded(perf_link),
        "raw_tracepoint": guarded(raw_tracepoint),
        "hw_perf": guarded(hw_perf),
    }
    progs = probe_prog_types()
    maps = probe_map_types()
    features.update({k: v == "ok" for k, v in attach.items()})
    return {
        "release": os.uname().release,
        "features": features,
        "attach": attach,
        "prog_types": progs,
        "map_types": maps,
        "tracefs": str(tfs) if tfs else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--require", default="", help="comma-separated features that must be present")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("probe: not root; bpf() will be refused", file=sys.stderr)
    r = probe()
    if not args.json:
        print(f"kernel {r['release']}  (tracefs: {r['tracefs']})")
        print("features:  " + "  ".join(f"{k}={'yes' if v else 'no'}" for k, v in r["features"].items()))
        for k, v in r["attach"].items():
            print(f"  attach {k:15s} {v}")
        ok = [k for k, v in r["prog_types"].items() if v == "ok"]
        print(f"prog types ok ({len(ok)}): {' '.join(ok)}")
        for k, v in r["prog_types"].items():
            if v != "ok":
                print(f"  prog {k:24s} {v}")
        ok = [k for k, v in r["map_types"].items() if v == "ok"]
        print(f"map types ok ({len(ok)}): {' '.join(ok)}")
        for k, v in r["map_types"].items():
            if v != "ok":
                print(f"  map {k:24s} {v}")
    print("PROBE-JSON " + json.dumps(r, sort_keys=True), flush=True)
    missing = [f for f in args.require.split(",") if f and not r["features"].get(f)]
    if missing:
        print(f"probe: required features missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
