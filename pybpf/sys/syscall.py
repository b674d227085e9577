"""The bpf() and perf_event_open() system calls, one small function per command.

Every function here builds a zeroed ``union bpf_attr`` (cffi, ABI mode), sets the fields of one command in
kernel names, makes the call and turns a failure into the matching :class:`~pybpf.errors.KernelError`.  Hot
paths (map element operations) use :class:`ElemOps`, which allocates its attr and buffers once.
"""
from __future__ import annotations

import errno as _errno
import functools
import os
from typing import Any, Iterable, Sequence

from ..errors import VerifierError, kernel_error
from . import abi
from ._cffi_abi import ffi

_libc = ffi.dlopen(None)
_syscall = _libc.syscall
# The same function typed for bpf(cmd, attr, size): four arguments convert twice as fast as six (map hot path).
_bpf4 = ffi.cast("long (*)(long, long, void *, long)", _syscall)
NR_BPF = abi.NR_bpf
ATTR_SIZE = ffi.sizeof("union bpf_attr")

_CMD_NAMES: dict[int, str] = {}


def cmd_name(cmd: int) -> str:
    """``BPF_MAP_CREATE`` for 0, and so on."""
    if not _CMD_NAMES:
        _CMD_NAMES.update({getattr(abi, n): n for n in abi._ENUMS["bpf_cmd"]})
    return _CMD_NAMES.get(cmd, f"bpf cmd {cmd}")


def new_attr() -> Any:
    """A zeroed ``union bpf_attr``."""
    return ffi.new("union bpf_attr *")


def address(cdata: Any) -> int:
    """The address of a cffi buffer, as the integer the kernel's ``__u64`` pointer fields want."""
    return int(ffi.cast("uintptr_t", cdata))


def bpf(cmd: int, attr: Any, detail: str = "", hint: str | None = None) -> int:
    """Call ``bpf(cmd, attr, sizeof(attr))``; return its result or raise the KernelError for errno."""
    ret = _syscall(NR_BPF, cmd, address(attr), ATTR_SIZE, 0, 0)
    if ret < 0:
        raise kernel_error(cmd_name(cmd), ffi.errno, detail, hint)
    return ret


def _cstr(s: str | bytes) -> Any:
    return ffi.new("char[]", s.encode() if isinstance(s, str) else s)


def obj_name(name: str) -> bytes:
    """A program/map name as the kernel accepts it: at most 15 bytes of ``[A-Za-z0-9_.]``."""
    out = bytes(c if (chr(c).isalnum() and c < 128) or c in b"_." else ord("_") for c in name.encode()[:15])
    return out


# --- memlock -----------------------------------------------------------------------------------------------

_memlock_checked = False


def bump_memlock() -> None:
    """Raise RLIMIT_MEMLOCK on kernels that charge BPF memory to it (before 5.11), as libbpf does.

    Kernels that account BPF memory to the memory cgroup are recognised by probing for a helper that arrived
    with that change (bpf_ktime_get_coarse_ns) and are left alone.  Failing to raise the limit (no
    CAP_SYS_RESOURCE) is never fatal: map creation then says what is wrong.  Runs once per process."""
    global _memlock_checked
    if _memlock_checked:
        return
    _memlock_checked = True
    import resource
    import struct

    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY:
        return
    code = struct.pack("<BBhiBBhi", 0x85, 0, 0, abi.BPF_FUNC_ktime_get_coarse_ns, 0x95, 0, 0, 0)
    buf, lic = ffi.from_buffer(code), ffi.new("char[]", b"GPL")
    a = new_attr()
    a.prog_type, a.insn_cnt, a.insns, a.license = abi.BPF_PROG_TYPE_SOCKET_FILTER, 2, address(buf), address(lic)
    fd = _syscall(NR_BPF, abi.BPF_PROG_LOAD, address(a), ATTR_SIZE, 0, 0)
    if fd >= 0:
        os.close(fd)
        return
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass  # not permitted here; the kernel's own error will name the problem if a map does not fit


# --- maps -------------------------------------------------------------------------------------------------


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    map_flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    numa_node: int = 0,
    map_ifindex: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    map_extra: int = 0,
) -> int:
    """BPF_MAP_CREATE: return the new map's fd."""
    bump_memlock()
    a = new_attr()
    a.map_type, a.key_size, a.value_size, a.max_entries = map_type, key_size, value_size, max_entries
    a.map_flags, a.inner_map_fd, a.numa_node, a.map_ifindex = map_flags, inner_map_fd, numa_node, map_ifindex
    a.btf_fd, a.btf_key_type_id, a.btf_value_type_id = btf_fd, btf_key_type_id, btf_value_type_id
    a.btf_vmlinux_value_type_id, a.map_extra = btf_vmlinux_value_type_id, map_extra
    a.map_name = obj_name(name)
    return bpf(abi.BPF_MAP_CREATE, a, f"map {name!r}" if name else "")


def map_freeze(map_fd: int) -> None:
    """BPF_MAP_FREEZE: make the map read-only for user space (e.g. ``.rodata`` after initialisation)."""
    a = new_attr()
    a.map_fd = map_fd
    bpf(abi.BPF_MAP_FREEZE, a)


def map_update_elem(map_fd: int, key: bytes, value: bytes, flags: int = abi.BPF_ANY, detail: str = "") -> None:
    """BPF_MAP_UPDATE_ELEM with raw key and value bytes, whatever codecs a :class:`~pybpf.Map` on the fd uses
    (the loader's initial values: global data, map-in-map and prog-array slots, USDT specs).  Not the hot path:
    :class:`ElemOps` is."""
    kbuf, vbuf = ffi.from_buffer(key), ffi.from_buffer(value)
    a = new_attr()
    a.map_fd, a.key, a.value, a.flags = map_fd, address(kbuf), address(vbuf), flags
    bpf(abi.BPF_MAP_UPDATE_ELEM, a, detail)


def map_delete_elem(map_fd: int, key: bytes, detail: str = "") -> None:
    """BPF_MAP_DELETE_ELEM with raw key bytes (not the hot path: :class:`ElemOps` is)."""
    kbuf = ffi.from_buffer(key)
    a = new_attr()
    a.map_fd, a.key = map_fd, address(kbuf)
    bpf(abi.BPF_MAP_DELETE_ELEM, a, detail)


class ElemOps:
    """Element operations on one map over buffers allocated once (the map hot path).

    The caller writes a key into :attr:`key_buf` (and a value into :attr:`value_buf`), calls an operation and
    reads the result from :attr:`value_buf` (:attr:`next_key_buf` after ``next_key``/``first_key``).  The
    zero-argument operations (``lookup``, ``update``, ``delete``, ``lookup_and_delete``, ``next_key``,
    ``first_key``) each own a pre-filled attr, so a call is the syscall and nothing else: they return the raw
    result, negative on failure (then :func:`last_errno` says why).  :meth:`run` covers flags and keyless maps.
    ``value_size`` is one value as the syscall sees it (per-CPU maps: the rounded size times possible CPUs).
    """

    __slots__ = ("key_size", "value_size", "key_buf", "value_buf", "next_key_buf", "lookup", "update", "delete",
                 "lookup_and_delete", "next_key", "first_key", "_bufs", "_scratch", "_addrs", "__weakref__")

    def __init__(self, map_fd: int, key_size: int, value_size: int):
        self.key_size, self.value_size = key_size, value_size
        key, next_key, value = (ffi.new("char[]", max(n, 1)) for n in (key_size, key_size, value_size))
        self._bufs = (key, next_key, value)
        self.key_buf, self.next_key_buf = ffi.buffer(key, key_size), ffi.buffer(next_key, key_size)
        self.value_buf = ffi.buffer(value, value_size)
        k, n, v = address(key), address(next_key), address(value)
        self._addrs = (k, v)

        def op(cmd: int, key_addr: int, value_addr: int) -> Any:
            a = new_attr()
            a.map_fd, a.key, a.value = map_fd, key_addr, value_addr
            return functools.partial(_bpf4, NR_BPF, cmd, a, ATTR_SIZE)

        self.lookup = op(abi.BPF_MAP_LOOKUP_ELEM, k, v)
        self.update = op(abi.BPF_MAP_UPDATE_ELEM, k, v)
        self.delete = op(abi.BPF_MAP_DELETE_ELEM, k, 0)
        self.lookup_and_delete = op(abi.BPF_MAP_LOOKUP_AND_DELETE_ELEM, k, v)
        self.next_key = op(abi.BPF_MAP_GET_NEXT_KEY, k, n)
        self.first_key = op(abi.BPF_MAP_GET_NEXT_KEY, 0, n)
        self._scratch = new_attr()
        self._scratch.map_fd = map_fd

    def run(self, cmd: int, flags: int = 0, *, key: bool = True, value: bool = True) -> int:
        """One element command on the buffers with ``flags``; ``key``/``value`` False pass NULL (queue/stack,
        bloom filter, delete).  Return 0 or the errno."""
        a = self._scratch
        a.key, a.value, a.flags = self._addrs[0] if key else 0, self._addrs[1] if value else 0, flags
        return 0 if _bpf4(NR_BPF, cmd, a, ATTR_SIZE) >= 0 else ffi.errno


def last_errno() -> int:
    """errno of the last failed call made through this module in this thread (after an ElemOps operation)."""
    return ffi.errno


def map_batch(cmd: int, map_fd: int, in_batch: Any, out_batch: Any, keys: Any, values: Any, count: int,
              elem_flags: int = 0, flags: int = 0) -> tuple[int, bool]:
    """One BPF_MAP_*_BATCH call on caller-owned cffi buffers; return (elements processed, reached the end).

    ``in_batch`` may be ``ffi.NULL`` to start.  ENOENT means the end was reached (count still valid)."""
    a = new_attr()
    b = a.batch
    b.in_batch = address(in_batch) if in_batch is not None and in_batch != ffi.NULL else 0
    b.out_batch = address(out_batch) if out_batch is not None else 0
    b.keys = address(keys) if keys is not None else 0
    b.values = address(values) if values is not None else 0
    b.count, b.map_fd, b.elem_flags, b.flags = count, map_fd, elem_flags, flags
    ret = _syscall(NR_BPF, cmd, address(a), ATTR_SIZE, 0, 0)
    if ret < 0:
        err = ffi.errno
        if err == _errno.ENOENT:
            return b.count, True
        raise kernel_error(cmd_name(cmd), err)
    return b.count, False


# --- programs ---------------------------------------------------------------------------------------------

LOG_BUF_START = 1 << 16
LOG_BUF_MAX = (1 << 32) // 4 - 1  # the kernel's limit (UINT_MAX >> 2)


def prog_load(
    prog_type: int,
    insns: bytes,
    license: str = "GPL",
    name: str = "",
    *,
    expected_attach_type: int = 0,
    prog_flags: int = 0,
    kern_version: int = 0,
    prog_ifindex: int = 0,
    attach_btf_id: int = 0,
    attach_prog_fd: int = 0,
    attach_btf_obj_fd: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    fd_array: Sequence[int] = (),
    log_level: int = 0,
) -> tuple[int, str]:
    """BPF_PROG_LOAD: return (fd, verifier log).

    With ``log_level=0`` the program is loaded without a log; if that fails it is loaded again with
    ``log_level=1`` to fetch the verifier's explanation.  The log buffer starts at 64 KiB and grows (to the
    kernel's reported ``log_true_size`` when it has one) until the log is whole, so it is never truncated.
    Failures raise :class:`VerifierError` carrying the whole log and the program's name.
    """
    bump_memlock()
    if len(insns) % 8:
        raise ValueError(f"program {name!r}: instruction bytes ({len(insns)}) are not a multiple of 8")
    keep = []  # buffers referenced from the attr must outlive the call
    a = new_attr()
    ibuf = ffi.from_buffer(insns)
    lic = _cstr(license)
    keep += [ibuf, lic]
    a.prog_type, a.insn_cnt, a.insns, a.license = prog_type, len(insns) // 8, address(ibuf), address(lic)
    a.kern_version, a.prog_flags, a.prog_ifindex = kern_version, prog_flags, prog_ifindex
    a.expected_attach_type, a.prog_btf_fd, a.attach_btf_id = expected_attach_type, prog_btf_fd, attach_btf_id
    if attach_btf_obj_fd:
        a.attach_btf_obj_fd = attach_btf_obj_fd
    else:
        a.attach_prog_fd = attach_prog_fd
    a.prog_name = obj_name(name)
    if func_info:
        fbuf = ffi.from_buffer(func_info)
        keep.append(fbuf)
        a.func_info, a.func_info_rec_size, a.func_info_cnt = address(fbuf), func_info_rec_size, \
            len(func_info) // func_info_rec_size
    if line_info:
        lbuf = ffi.from_buffer(line_info)
        keep.append(lbuf)
        a.line_info, a.line_info_rec_size, a.line_info_cnt = address(lbuf), line_info_rec_size, \
            len(line_info) // line_info_rec_size
    if fd_array:
        fa = ffi.new("int[]", list(fd_array))
        keep.append(fa)
        a.fd_array = address(fa)

    size = LOG_BUF_START
    level = log_level
    while True:
        log = None
        if level:
            log = ffi.new("char[]", size)
            a.log_level, a.log_size, a.log_buf = level, size, address(log)
        a.log_true_size = 0
        fd = _syscall(NR_BPF, abi.BPF_PROG_LOAD, address(a), ATTR_SIZE, 0, 0)
        err = ffi.errno if fd < 0 else 0
        text = ffi.string(log).decode(errors="replace") if log is not None else ""
        if fd >= 0:
            return fd, text
        if err == _errno.ENOSPC and level and size < LOG_BUF_MAX:
            size = min(max(size * 4, a.log_true_size + 1), LOG_BUF_MAX)
            continue
        if not level and err in (_errno.EACCES, _errno.EINVAL, _errno.EPERM, _errno.E2BIG, _errno.ENOSPC,
                                 _errno.EFAULT, _errno.ENOTSUP, 524):
            level = 1  # fetch the verifier's explanation
            continue
        if text.strip():
            raise VerifierError(name or "(unnamed)", err, text, hint=_lockdown_hint(text))
        raise kernel_error("BPF_PROG_LOAD", err, f"program {name!r}" if name else "")


# helpers the kernel withdraws from every program when locked down (security/lockdown: LOCKDOWN_BPF_WRITE_USER in
# integrity mode, LOCKDOWN_BPF_READ_KERNEL in confidentiality mode); the verifier then calls them unknown
_LOCKDOWN_HELPERS = {"bpf_probe_write_user": "integrity", "bpf_probe_read": "confidentiality",
                     "bpf_probe_read_str": "confidentiality", "bpf_probe_read_kernel": "confidentiality",
                     "bpf_probe_read_kernel_str": "confidentiality"}


def _lockdown_hint(log: str) -> str | None:
    """When the verifier refused a helper that lockdown withdraws and the kernel is locked down, say so."""
    import re

    m = re.search(r"cannot use helper (\w+?)(?:#\d+)?$|unknown func (\w+?)#\d+", log, re.M)
    helper = m and (m.group(1) or m.group(2))
    if not helper or helper not in _LOCKDOWN_HELPERS:
        return None
    try:
        with open("/sys/kernel/security/lockdown") as f:
            mode = re.search(r"\[(\w+)\]", f.read())
    except OSError:
        return None
    if mode is None or mode.group(1) == "none":
        return None
    return (f"the kernel is locked down ({mode.group(1)}), which withdraws {helper} from BPF programs (lockdown "
            f"'{_LOCKDOWN_HELPERS[helper]}' and above); it cannot be used on this kernel")


def prog_test_run(
    prog_fd: int,
    data: bytes = b"",
    ctx: bytes | None = None,
    repeat: int = 0,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
    data_size_out: int | None = None,
    ctx_size_out: int | None = None,
) -> tuple[int, bytes, bytes, int]:
    """BPF_PROG_TEST_RUN: return (retval, data out, ctx out, duration in ns per run).

    Output buffers default to the input size plus XDP's headroom; if the program grew the packet beyond
    them, the call is repeated with the size the kernel reported, so output is never cut short."""
    out_size = data_size_out if data_size_out is not None else (len(data) + 4096 if data else 0)
    cout_size = ctx_size_out if ctx_size_out is not None else (len(ctx) if ctx else 0)
    for _ in range(2):
        a = new_attr()
        t = a.test
        din = ffi.from_buffer(data) if data else None
        dout = ffi.new("char[]", out_size) if out_size else None
        cin = ffi.from_buffer(ctx) if ctx else None
        cout = ffi.new("char[]", cout_size) if cout_size else None
        t.prog_fd, t.repeat, t.flags, t.cpu, t.batch_size = prog_fd, repeat, flags, cpu, batch_size
        if din is not None:
            t.data_in, t.data_size_in = address(din), len(data)
        if dout is not None:
            t.data_out, t.data_size_out = address(dout), out_size
        if cin is not None:
            t.ctx_in, t.ctx_size_in = address(cin), len(ctx or b"")
        if cout is not None:
            t.ctx_out, t.ctx_size_out = address(cout), cout_size
        ret = _syscall(NR_BPF, abi.BPF_PROG_TEST_RUN, address(a), ATTR_SIZE, 0, 0)
        if ret < 0:
            err = ffi.errno
            if err == _errno.ENOSPC and (t.data_size_out > out_size or t.ctx_size_out > cout_size):
                out_size, cout_size = max(out_size, t.data_size_out), max(cout_size, t.ctx_size_out)
                continue
            raise kernel_error("BPF_PROG_TEST_RUN", err)
        dbytes = ffi.buffer(dout, t.data_size_out)[:] if dout is not None else b""
        cbytes = ffi.buffer(cout, t.ctx_size_out)[:] if cout is not None else b""
        return t.retval, dbytes, cbytes, t.duration
    raise kernel_error("BPF_PROG_TEST_RUN", _errno.ENOSPC, "output kept growing")


def prog_attach(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0, replace_fd: int = 0) -> None:
    """BPF_PROG_ATTACH (cgroup, sockmap, flow dissector, lirc... the pre-link attach)."""
    a = new_attr()
    a.target_fd, a.attach_bpf_fd, a.attach_type, a.attach_flags, a.replace_bpf_fd = (
        target_fd, prog_fd, attach_type, flags, replace_fd)
    bpf(abi.BPF_PROG_ATTACH, a)


def prog_detach(target_fd: int, attach_type: int, prog_fd: int = 0) -> None:
    """BPF_PROG_DETACH."""
    a = new_attr()
    a.target_fd, a.attach_bpf_fd, a.attach_type = target_fd, prog_fd, attach_type
    bpf(abi.BPF_PROG_DETACH, a)


def prog_query(target_fd: int, attach_type: int, query_flags: int = 0, max_progs: int = 64) -> tuple[int, list[int]]:
    """BPF_PROG_QUERY: (attach flags, ids of attached programs)."""
    while True:
        a = new_attr()
        ids = ffi.new("__u32[]", max_progs)
        q = a.query
        q.target_fd, q.attach_type, q.query_flags, q.prog_ids, q.prog_cnt = (
            target_fd, attach_type, query_flags, address(ids), max_progs)
        ret = _syscall(NR_BPF, abi.BPF_PROG_QUERY, address(a), ATTR_SIZE, 0, 0)
        if ret < 0:
            err = ffi.errno
            if err == _errno.ENOSPC and q.prog_cnt > max_progs:
                max_progs = q.prog_cnt
                continue
            raise kernel_error("BPF_PROG_QUERY", err)
        return q.attach_flags, list(ids[0:q.prog_cnt])


def prog_bind_map(prog_fd: int, map_fd: int) -> None:
    """BPF_PROG_BIND_MAP: keep ``map_fd`` alive as long as the program (e.g. ``.rodata`` used by no insn)."""
    a = new_attr()
    a.prog_bind_map.prog_fd, a.prog_bind_map.map_fd = prog_fd, map_fd
    bpf(abi.BPF_PROG_BIND_MAP, a)


# --- pinning, ids, info -------------------------------------------------------------------------------------


def obj_pin(fd: int, path: str) -> None:
    """BPF_OBJ_PIN: pin a map/program/link at ``path`` inside a bpffs mount.

    A path outside bpffs is refused (:class:`~pybpf.errors.PermissionDenied` naming its file system) before the
    kernel is called."""
    from .fs import check_pin_path

    check_pin_path(path)
    a = new_attr()
    p = _cstr(os.fsencode(path))
    a.pathname, a.bpf_fd = address(p), fd
    ret = _syscall(NR_BPF, abi.BPF_OBJ_PIN, address(a), ATTR_SIZE, 0, 0)
    if ret < 0:
        err = ffi.errno
        from .fs import is_bpffs

        hint = None if is_bpffs(os.path.dirname(os.path.abspath(path))) else (
            "pins must lie inside a mounted bpffs (mount -t bpf bpf /sys/fs/bpf)")
        raise kernel_error("BPF_OBJ_PIN", err, path, hint)


def obj_get(path: str, file_flags: int = 0) -> int:
    """BPF_OBJ_GET: open a pinned object; return its fd."""
    a = new_attr()
    p = _cstr(os.fsencode(path))
    a.pathname, a.file_flags = address(p), file_flags
    return bpf(abi.BPF_OBJ_GET, a, path)


_NEXT_ID = {"prog": "BPF_PROG_GET_NEXT_ID", "map": "BPF_MAP_GET_NEXT_ID", "btf": "BPF_BTF_GET_NEXT_ID",
            "link": "BPF_LINK_GET_NEXT_ID"}
_FD_BY_ID = {"prog": "BPF_PROG_GET_FD_BY_ID", "map": "BPF_MAP_GET_FD_BY_ID", "btf": "BPF_BTF_GET_FD_BY_ID",
             "link": "BPF_LINK_GET_FD_BY_ID"}


def object_ids(kind: str) -> Iterable[int]:
    """Ids of every loaded ``kind`` object (``prog``, ``map``, ``btf``, ``link``), in increasing order."""
    cmd = getattr(abi, _NEXT_ID[kind])
    a = new_attr()
    addr = address(a)
    current = 0
    while True:
        a.start_id = current
        if _syscall(NR_BPF, cmd, addr, ATTR_SIZE, 0, 0) < 0:
            err = ffi.errno
            if err == _errno.ENOENT:
                return
            raise kernel_error(cmd_name(cmd), err)
        current = a.next_id
        yield current


def fd_by_id(kind: str, obj_id: int, open_flags: int = 0) -> int:
    """BPF_*_GET_FD_BY_ID: an fd for the loaded object with this id."""
    a = new_attr()
    a.start_id, a.open_flags = obj_id, open_flags
    return bpf(getattr(abi, _FD_BY_ID[kind]), a, f"{kind} id {obj_id}")


_INFO_TYPE = {"prog": "struct bpf_prog_info", "map": "struct bpf_map_info", "btf": "struct bpf_btf_info",
              "link": "struct bpf_link_info"}


def obj_info(fd: int, kind: str, info: Any = None) -> Any:
    """BPF_OBJ_GET_INFO_BY_FD: the kernel's ``bpf_<kind>_info`` cdata for ``fd``.

    Pass a prepared ``info`` (with buffer pointers and lengths set) to fetch variable-length parts."""
    if info is None:
        info = ffi.new(_INFO_TYPE[kind] + " *")
    a = new_attr()
    a.info.bpf_fd, a.info.info_len, a.info.info = fd, ffi.sizeof(info[0]), address(info)
    bpf(abi.BPF_OBJ_GET_INFO_BY_FD, a)
    return info


# --- BTF ------------------------------------------------------------------------------------------------------


def btf_load(data: bytes, log_level: int = 0) -> int:
    """BPF_BTF_LOAD: return the BTF object's fd. On failure the kernel's BTF log is in the error."""
    bump_memlock()
    buf = ffi.from_buffer(data)
    size = LOG_BUF_START
    level = log_level
    while True:
        a = new_attr()
        a.btf, a.btf_size = address(buf), len(data)
        log = None
        if level:
            log = ffi.new("char[]", size)
            a.btf_log_buf, a.btf_log_size, a.btf_log_level = address(log), size, level
        fd = _syscall(NR_BPF, abi.BPF_BTF_LOAD, address(a), ATTR_SIZE, 0, 0)
        if fd >= 0:
            return fd
        err = ffi.errno
        if err == _errno.ENOSPC and level and size < LOG_BUF_MAX:
            size = min(max(size * 4, a.btf_log_true_size + 1), LOG_BUF_MAX)
            continue
        if not level:
            level = 1
            continue
        text = ffi.string(log).decode(errors="replace").strip() if log is not None else ""
        raise kernel_error("BPF_BTF_LOAD", err, text.splitlines()[-1] if text else "",
                           hint=("kernel BTF log:\n" + text) if text else None)


def btf_data(btf_id: int) -> bytes:
    """The raw bytes of the loaded BTF object ``btf_id`` (BPF_BTF_GET_FD_BY_ID, then its ``bpf_btf_info``)."""
    fd = fd_by_id("btf", btf_id)
    try:
        size = obj_info(fd, "btf").btf_size
        buf = ffi.new("char[]", size)
        info = ffi.new("struct bpf_btf_info *")
        info.btf, info.btf_size = address(buf), size
        obj_info(fd, "btf", info)
        return ffi.buffer(buf, min(size, info.btf_size))[:]
    finally:
        os.close(fd)


# --- links ------------------------------------------------------------------------------------------------------


def link_create(prog_fd: int, target: int, attach_type: int, flags: int = 0, **kind: Any) -> int:
    """BPF_LINK_CREATE: return the link's fd.

    ``target`` is the target fd or ifindex; ``kind`` sets one sub-structure of ``link_create`` by name and its
    fields, e.g. ``perf_event={"bpf_cookie": 7}``, ``tracing={"target_btf_id": n, "cookie": c}``,
    ``kprobe_multi={...}``, ``tcx={"relative_fd": fd}``, ``target_btf_id=n``, ``iter_info=(buf, len)``.
    Buffers referenced by address must be kept alive by the caller."""
    a = new_attr()
    lc = a.link_create
    lc.prog_fd, lc.target_fd, lc.attach_type, lc.flags = prog_fd, target, attach_type, flags
    for sub, fields in kind.items():
        if sub == "target_btf_id":
            lc.target_btf_id = fields
        elif sub == "iter_info":
            lc.iter_info, lc.iter_info_len = fields
        else:
            part = getattr(lc, sub)
            for k, v in fields.items():
                setattr(part, k, v)
    return bpf(abi.BPF_LINK_CREATE, a)


def link_update(link_fd: int, new_prog_fd: int, old_prog_fd: int = 0, flags: int = 0) -> None:
    """BPF_LINK_UPDATE: swap the program behind a link (with BPF_F_REPLACE, only if it is ``old_prog_fd``)."""
    a = new_attr()
    u = a.link_update
    u.link_fd, u.new_prog_fd, u.old_prog_fd, u.flags = link_fd, new_prog_fd, old_prog_fd, flags
    bpf(abi.BPF_LINK_UPDATE, a)


def link_detach(link_fd: int) -> None:
    """BPF_LINK_DETACH: detach the link from its hook (the fd stays valid, now defunct)."""
    a = new_attr()
    a.link_detach.link_fd = link_fd
    bpf(abi.BPF_LINK_DETACH, a)


def raw_tracepoint_open(prog_fd: int, name: str | None = None, cookie: int = 0) -> int:
    """BPF_RAW_TRACEPOINT_OPEN: attach a raw_tp/tp_btf/fentry-style program; return the link fd."""
    a = new_attr()
    keep = _cstr(name) if name else None
    a.raw_tracepoint.name = address(keep) if keep is not None else 0
    a.raw_tracepoint.prog_fd, a.raw_tracepoint.cookie = prog_fd, cookie
    return bpf(abi.BPF_RAW_TRACEPOINT_OPEN, a, f"tracepoint {name!r}" if name else "")


def iter_create(link_fd: int) -> int:
    """BPF_ITER_CREATE: an fd whose reads run the iterator program behind ``link_fd``."""
    a = new_attr()
    a.iter_create.link_fd = link_fd
    return bpf(abi.BPF_ITER_CREATE, a)


def enable_stats(stats_type: int = abi.BPF_STATS_RUN_TIME) -> int:
    """BPF_ENABLE_STATS: run-time statistics stay on while the returned fd is open."""
    a = new_attr()
    a.enable_stats.type = stats_type
    return bpf(abi.BPF_ENABLE_STATS, a)


def task_fd_query(pid: int, fd: int) -> tuple[int, int, str, int, int]:
    """BPF_TASK_FD_QUERY: (prog_id, fd_type, name, probe_offset, probe_addr) of a perf event fd in ``pid``."""
    a = new_attr()
    buf = ffi.new("char[]", 4096)
    q = a.task_fd_query
    q.pid, q.fd, q.buf, q.buf_len = pid, fd, address(buf), 4096
    bpf(abi.BPF_TASK_FD_QUERY, a)
    return q.prog_id, q.fd_type, ffi.string(buf).decode(errors="replace"), q.probe_offset, q.probe_addr


# --- perf events ----------------------------------------------------------------------------------------------


def perf_event_open(attr: Any, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    flags: int = abi.PERF_FLAG_FD_CLOEXEC, what: str = "") -> int:
    """perf_event_open(2) with a ``struct perf_event_attr *``; return the event fd."""
    attr.size = ffi.sizeof("struct perf_event_attr")
    fd = _syscall(abi.NR_perf_event_open, address(attr), pid, cpu, group_fd, flags)
    if fd < 0:
        err = ffi.errno
        hint = None
        if err == _errno.ENOENT:
            hint = "no such event or PMU on this kernel"
        elif err in (_errno.EACCES, _errno.EPERM):
            hint = ("needs CAP_PERFMON or CAP_SYS_ADMIN (or a lower kernel.perf_event_paranoid)")
        raise kernel_error("perf_event_open", err, what, hint)
    return fd


def new_perf_attr() -> Any:
    """A zeroed ``struct perf_event_attr``."""
    return ffi.new("struct perf_event_attr *")
