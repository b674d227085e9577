"""Feature probes: ask the running kernel what it supports by creating or loading something tiny.

Never guess from the kernel version.  Every answer is cached for the life of the process.

    from pybpf.sys import probes
    probes.prog_type(abi.BPF_PROG_TYPE_XDP)        -> True
    probes.map_type(abi.BPF_MAP_TYPE_RINGBUF)      -> True
    probes.helper(abi.BPF_PROG_TYPE_XDP, abi.BPF_FUNC_ringbuf_output)
    probes.feature("btf_enum64")                   -> True / False
"""
from __future__ import annotations

import errno
import functools
import os
import struct
from typing import Any, Callable

from ..errors import KernelError, NotFound, VerifierError
from . import abi, syscall
from ._cffi_abi import ffi

_EXIT0 = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)  # r0 = 0; exit


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, src << 4 | dst, off, imm)


def _isa(*body: bytes) -> bool:
    """Does a socket filter ``r0 = 0; BODY; exit`` load: the instruction-set probes (bpftool's v2/v3 tests)."""
    return _load_ok(abi.BPF_PROG_TYPE_SOCKET_FILTER, _EXIT0[:8] + b"".join(body) + _EXIT0[8:])


def _close(fd: int) -> None:
    os.close(fd)


def _load(prog_type: int, insns: bytes = _EXIT0, **attrs: Any) -> int:
    """Load a probe program; return its fd or raise KernelError."""
    fd, _ = syscall.prog_load(prog_type, insns, "GPL", **attrs)
    return fd


def _load_ok(prog_type: int, insns: bytes = _EXIT0, **attrs: Any) -> bool:
    try:
        _close(_load(prog_type, insns, **attrs))
        return True
    except KernelError:
        return False


def kernel_version_code() -> int:
    """LINUX_VERSION_CODE of the running kernel (what old kernels want as kprobe ``kern_version``).

    Ubuntu and Debian kernels report their upstream base version in /proc/version_signature or
    ``uname -v``, as libbpf reads them."""
    def code(a: int, b: int, c: int) -> int:
        return (a << 16) + (b << 8) + min(c, 255)

    import re

    try:
        with open("/proc/version_signature") as f:
            m = re.search(r"(\d+)\.(\d+)\.(\d+)", f.read().split(" ", 2)[-1])
            if m:
                return code(*map(int, m.groups()))
    except OSError:
        pass
    u = os.uname()
    m = re.search(r"Debian (\d+)\.(\d+)\.(\d+)", u.version) or re.match(r"(\d+)\.(\d+)\.(\d+)", u.release)
    return code(*map(int, m.groups())) if m else 0


# --- program and map types ---------------------------------------------------------------------------------

_PROG_EXTRA: dict[str, dict[str, int]] = {
    "CGROUP_SOCK_ADDR": {"expected_attach_type": abi.BPF_CGROUP_INET4_CONNECT},
    "CGROUP_SOCKOPT": {"expected_attach_type": abi.BPF_CGROUP_GETSOCKOPT},
    "SK_LOOKUP": {"expected_attach_type": abi.BPF_SK_LOOKUP},
    "LIRC_MODE2": {"expected_attach_type": abi.BPF_LIRC_MODE2},
    "SYSCALL": {"prog_flags": abi.BPF_F_SLEEPABLE},
    "NETFILTER": {"expected_attach_type": abi.BPF_NETFILTER},
}


@functools.lru_cache(maxsize=None)
def prog_type(ptype: int) -> bool:
    """True if the kernel can load programs of type ``ptype``."""
    name = abi.bpf_prog_type(ptype).name[len("BPF_PROG_TYPE_"):]
    if name == "UNSPEC":
        return False
    if name in ("TRACING", "LSM", "EXT"):
        # these need a BTF attach target: a bogus one gives a specific verifier message when the type exists
        attrs: dict[str, Any] = {"attach_btf_id": 1, "log_level": 1}
        if name == "TRACING":
            attrs["expected_attach_type"] = abi.BPF_TRACE_RAW_TP  # fentry may be refused where tp_btf works
        elif name == "LSM":
            attrs["expected_attach_type"] = abi.BPF_LSM_MAC
        try:
            _close(_load(ptype, **attrs))
            return True
        except VerifierError as e:
            return any(m in e.log for m in ("attach_btf_id 1 is not a", "Cannot replace kernel functions"))
        except KernelError:
            return False
    if name == "STRUCT_OPS":
        try:
            _close(_load(ptype))
            return True
        except KernelError as e:
            return e.errno == 524
    extra = dict(_PROG_EXTRA.get(name, {}))
    if name == "KPROBE":
        extra["kern_version"] = kernel_version_code()
    return _load_ok(ptype, _EXIT0, **extra)


@functools.lru_cache(maxsize=None)
def map_type(mtype: int) -> bool:
    """True if the kernel can create maps of type ``mtype``."""
    name = abi.bpf_map_type(mtype).name[len("BPF_MAP_TYPE_"):]
    key, value, entries, flags = 4, 4, 1, 0
    kw: dict[str, Any] = {}
    btf_fd = -1
    inner = -1
    if name == "UNSPEC":
        return False
    if name == "STACK_TRACE":
        value = 8
    elif name == "LPM_TRIE":
        key, value, flags = 8, 8, abi.BPF_F_NO_PREALLOC
    elif name in ("CGROUP_STORAGE", "PERCPU_CGROUP_STORAGE", "CGROUP_STORAGE_DEPRECATED"):
        key, value, entries = ffi.sizeof("struct bpf_cgroup_storage_key"), 8, 0
    elif name in ("QUEUE", "STACK"):
        key = 0
    elif name in ("SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE"):
        btf_fd = _local_storage_btf()
        if btf_fd < 0:
            return False
        value, entries, flags = 8, 0, abi.BPF_F_NO_PREALLOC
        kw = {"btf_fd": btf_fd, "btf_key_type_id": 1, "btf_value_type_id": 3}
    elif name in ("RINGBUF", "USER_RINGBUF"):
        key, value, entries = 0, 0, os.sysconf("SC_PAGE_SIZE")
    elif name == "BLOOM_FILTER":
        key = 0
    elif name == "ARENA":
        key, value, entries, flags = 0, 0, 1, abi.BPF_F_MMAPABLE
    elif name in ("ARRAY_OF_MAPS", "HASH_OF_MAPS"):
        try:
            inner = syscall.map_create(abi.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        except KernelError:
            return False
        kw = {"inner_map_fd": inner}
    elif name == "STRUCT_OPS":
        try:
            _close(syscall.map_create(mtype, 4, 4, 1, btf_vmlinux_value_type_id=1))
            return True
        except KernelError as e:
            return e.errno == 524
    try:
        _close(syscall.map_create(mtype, key, value, entries, flags, **kw))
        return True
    except KernelError:
        return False
    finally:
        for fd in (btf_fd, inner):
            if fd >= 0:
                _close(fd)


# --- helpers ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def helper(ptype: int, func_id: int) -> bool:
    """True if programs of type ``ptype`` may call helper ``func_id`` on this kernel.

    A program that only calls the helper is loaded; the verifier's complaint tells an unknown or forbidden
    helper ("invalid func", "unknown func", "program of this type cannot use helper") from an argument error.
    """
    call = struct.pack("<BBhi", 0x85, 0, 0, func_id)
    insns = call + _EXIT0
    extra = dict(_PROG_EXTRA.get(abi.bpf_prog_type(ptype).name[len("BPF_PROG_TYPE_"):], {}))
    try:
        _close(_load(ptype, insns, log_level=1, **extra))
        return True
    except VerifierError as e:
        log = e.log
        return not any(s in log for s in ("invalid func ", "unknown func ", "program of this type cannot use helper"))
    except KernelError:
        return False


# --- BTF kinds --------------------------------------------------------------------------------------------------


def _btf_blob(types: list[int], strings: bytes) -> bytes:
    body = struct.pack(f"<{len(types)}I", *types)
    hdr = struct.pack("<HBBIIIII", abi.BTF_MAGIC, abi.BTF_VERSION, 0, 24, 0, len(body), len(body), len(strings))
    return hdr + body + strings


def _info(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    return (kflag << 31) | (kind << 24) | vlen


def _int_type(name_off: int) -> list[int]:
    return [name_off, _info(abi.BTF_KIND_INT), 4, (abi.BTF_INT_SIGNED << 24) | 32]


def _btf_loads(types: list[int], strings: bytes) -> bool:
    try:
        _close(syscall.btf_load(_btf_blob(types, strings)))
        return True
    except KernelError:
        return False


def _local_storage_btf() -> int:
    """BTF with ``int`` [1], ``struct bpf_spin_lock { int val; }`` [2], ``struct val { int cnt; lock l; }`` [3]."""
    strings = b"\0bpf_spin_lock\0val\0cnt\0l\0"
    types = _int_type(0) + [
        1, _info(abi.BTF_KIND_STRUCT, 1), 4, 15, 1, 0,
        15, _info(abi.BTF_KIND_STRUCT, 2), 8, 19, 1, 0, 23, 2, 32,
    ]
    try:
        return syscall.btf_load(_btf_blob(types, strings))
    except KernelError:
        return -1


def _var_and_datasec(secname: bytes) -> bool:
    strings = b"\0x\0" + secname + b"\0"
    types = _int_type(0) + [1, _info(abi.BTF_KIND_VAR), 1, abi.BTF_VAR_STATIC,
                            3, _info(abi.BTF_KIND_DATASEC, 1), 4, 2, 0, 4]
    return _btf_loads(types, strings)


def _func(linkage: int) -> bool:
    strings = b"\0int\0x\0a\0"
    types = _int_type(1) + [0, _info(abi.BTF_KIND_FUNC_PROTO, 1), 0, 7, 1,
                            5, _info(abi.BTF_KIND_FUNC, linkage), 2]
    return _btf_loads(types, strings)


# --- named features ----------------------------------------------------------------------------------------------


def _link_create_errno(prog_type: int, target: int, attach_type: int, expected: int = 0, **kind: Any) -> int:
    try:
        prog = _load(prog_type, expected_attach_type=expected) if expected else _load(prog_type)
    except KernelError as e:
        return e.errno
    try:
        _close(syscall.link_create(prog, target, attach_type, **kind))
        return 0
    except KernelError as e:
        return e.errno
    finally:
        _close(prog)


def _global_data() -> bool:
    try:
        m = syscall.map_create(abi.BPF_MAP_TYPE_ARRAY, 4, 32, 1)
    except KernelError:
        return False
    try:
        ld = struct.pack("<BBhiBBhi", 0x18, 1 | (abi.BPF_PSEUDO_MAP_VALUE << 4), 0, m, 0, 0, 0, 0)
        st = struct.pack("<BBhi", 0x7A, 1, 0, 42)  # *(u64 *)(r1 + 0) = 42
        return _load_ok(abi.BPF_PROG_TYPE_SOCKET_FILTER, ld + st + _EXIT0)
    finally:
        _close(m)


def _prog_bind_map() -> bool:
    try:
        m = syscall.map_create(abi.BPF_MAP_TYPE_ARRAY, 4, 32, 1)
    except KernelError:
        return False
    try:
        p = _load(abi.BPF_PROG_TYPE_SOCKET_FILTER)
    except KernelError:
        _close(m)
        return False
    try:
        syscall.prog_bind_map(p, m)
        return True
    except KernelError:
        return False
    finally:
        _close(p)
        _close(m)


def _map_ok(mtype: int, k: int, v: int, n: int, flags: int) -> bool:
    try:
        _close(syscall.map_create(mtype, k, v, n, flags))
        return True
    except KernelError:
        return False


def _pmu(name: str) -> bool:
    return os.path.exists(f"/sys/bus/event_source/devices/{name}/type")


_FEATURES: dict[str, Callable[[], bool]] = {
    "btf": lambda: _btf_loads(_int_type(1), b"\0int\0"),
    "btf_func": lambda: _func(0),
    "btf_func_global": lambda: _func(abi.BTF_FUNC_GLOBAL),
    "btf_datasec": lambda: _var_and_datasec(b".data"),
    "btf_qmark_datasec": lambda: _var_and_datasec(b"?.data"),
    "btf_float": lambda: _btf_loads([1, _info(abi.BTF_KIND_FLOAT), 4], b"\0float\0"),
    "btf_decl_tag": lambda: _btf_loads(
        _int_type(0) + [1, _info(abi.BTF_KIND_VAR), 1, abi.BTF_VAR_STATIC,
                        1, _info(abi.BTF_KIND_DECL_TAG), 2, 0xFFFFFFFF], b"\0tag\0"),
    "btf_type_tag": lambda: _btf_loads(
        _int_type(0) + [1, _info(abi.BTF_KIND_TYPE_TAG), 1, 0, _info(abi.BTF_KIND_PTR), 2], b"\0tag\0"),
    "btf_enum64": lambda: _btf_loads([1, _info(abi.BTF_KIND_ENUM64), 8], b"\0enum64\0"),
    "prog_name": lambda: _name_ok(),
    "global_data": _global_data,
    "array_mmap": lambda: _map_ok(abi.BPF_MAP_TYPE_ARRAY, 4, 4, 1, abi.BPF_F_MMAPABLE),
    "exp_attach_type": lambda: _load_ok(abi.BPF_PROG_TYPE_CGROUP_SOCK,
                                        expected_attach_type=abi.BPF_CGROUP_INET_SOCK_CREATE),
    "probe_read_kernel": lambda: helper(abi.BPF_PROG_TYPE_TRACEPOINT, abi.BPF_FUNC_probe_read_kernel),
    "prog_bind_map": _prog_bind_map,
    "bpf_cookie": lambda: helper(abi.BPF_PROG_TYPE_TRACEPOINT, abi.BPF_FUNC_get_attach_cookie),
    "memcg_account": lambda: helper(abi.BPF_PROG_TYPE_SOCKET_FILTER, abi.BPF_FUNC_ktime_get_coarse_ns),
    # bpf_link for perf events: a bad perf fd gives EBADF where the link kind exists, EINVAL where not
    "perf_link": lambda: _link_create_errno(abi.BPF_PROG_TYPE_TRACEPOINT, 0x7FFFFFFF, abi.BPF_PERF_EVENT)
    == errno.EBADF,
    # tcx: an unknown ifindex gives ENODEV where tcx links exist (EINVAL where the attach type is unknown)
    "tcx_link": lambda: _link_create_errno(abi.BPF_PROG_TYPE_SCHED_CLS, 0x7FFFFFF, abi.BPF_TCX_INGRESS,
                                           abi.BPF_TCX_INGRESS) == errno.ENODEV,
    "kprobe_multi_link": lambda: _link_create_errno(
        abi.BPF_PROG_TYPE_KPROBE, 0, abi.BPF_TRACE_KPROBE_MULTI, abi.BPF_TRACE_KPROBE_MULTI,
        kprobe_multi={"cnt": 0}) == errno.EINVAL and _kprobes_exist(),
    "uprobe_multi_link": lambda: _link_create_errno(
        abi.BPF_PROG_TYPE_KPROBE, 0, abi.BPF_TRACE_UPROBE_MULTI, abi.BPF_TRACE_UPROBE_MULTI,
        uprobe_multi={"cnt": 0}) == errno.EINVAL and map_type(abi.BPF_MAP_TYPE_USER_RINGBUF),
    "kprobe_pmu": lambda: _pmu("kprobe"),
    "uprobe_pmu": lambda: _pmu("uprobe"),
    "kprobe_events": lambda: _kprobes_exist(),
    "ringbuf": lambda: map_type(abi.BPF_MAP_TYPE_RINGBUF),
    "module_btf": lambda: os.path.isdir("/sys/kernel/btf") and len(os.listdir("/sys/kernel/btf")) > 1,
    "vmlinux_btf": lambda: os.path.exists("/sys/kernel/btf/vmlinux"),
    # instruction-set levels (llvm's -mcpu=v2/v3/v4) and the ordered accesses that came after v4 (6.15)
    "isa_v2": lambda: _isa(_insn(abi.BPF_JMP | abi.BPF_JLT | abi.BPF_K, imm=1)),  # if r0 < 1 goto +0
    "isa_v3": lambda: _isa(_insn(abi.BPF_JMP32 | abi.BPF_JLT | abi.BPF_K, imm=1)),  # if w0 < 1 goto +0
    "isa_v4": lambda: _isa(_insn(abi.BPF_ALU64 | abi.BPF_MOV | abi.BPF_X, off=8)),  # r0 = (s8)r0
    "load_acquire": lambda: _isa(  # *(u64 *)(r10 - 8) = r0; r0 = load_acquire((u64 *)(r10 - 8))
        _insn(abi.BPF_STX | abi.BPF_MEM | abi.BPF_DW, 10, 0, -8),
        _insn(abi.BPF_STX | abi.BPF_ATOMIC | abi.BPF_DW, 0, 10, -8, abi.BPF_LOAD_ACQ)),
}


def _name_ok() -> bool:
    try:
        fd, _ = syscall.prog_load(abi.BPF_PROG_TYPE_SOCKET_FILTER, _EXIT0, "GPL", "probe_name")
        _close(fd)
        return True
    except KernelError:
        return False


def _kprobes_exist() -> bool:
    if _pmu("kprobe"):
        return True
    for base in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.exists(f"{base}/kprobe_events"):
            return True
    return False


FEATURES: tuple[str, ...] = tuple(_FEATURES)


_BPF_ALLOWED = False


def require_bpf() -> None:
    """Raise the kernel's :class:`~pybpf.errors.PermissionDenied` when this process may not use bpf() at all
    (no capability, unprivileged BPF disabled): every probe fails then, which says nothing about the kernel."""
    global _BPF_ALLOWED
    if not _BPF_ALLOWED:
        _close(syscall.map_create(abi.BPF_MAP_TYPE_ARRAY, 4, 4, 1))
        _BPF_ALLOWED = True


@functools.lru_cache(maxsize=None)
def feature(name: str) -> bool:
    """True if the running kernel has the named feature (one of :data:`FEATURES`)."""
    try:
        probe = _FEATURES[name]
    except KeyError:
        raise ValueError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}") from None
    try:
        return bool(probe())
    except (NotFound, OSError):
        return False
