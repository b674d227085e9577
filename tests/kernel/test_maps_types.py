"""Every map type the running kernel can create: created through Map.create, checked against what the kernel
reports, and exercised where user space can touch its elements (storage maps keyed by fds included)."""
from __future__ import annotations

import os
import socket

import pytest

from conftest import kernel_skip
from pybpf.errors import KernelError
from pybpf.maps.map import Map, possible_cpus
from pybpf.sys import abi, fs, syscall
from pybpf.sys.fd import FD

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

PAGE = os.sysconf("SC_PAGE_SIZE")
F = abi

# type -> (key_size, value_size, max_entries, flags, extra create keywords)
SIMPLE = {
    "hash": (4, 8, 16, 0, {}),
    "array": (4, 8, 16, 0, {}),
    "prog_array": (4, 4, 4, 0, {}),
    "perf_event_array": (4, 4, 4, 0, {}),
    "percpu_hash": (4, 8, 16, 0, {}),
    "percpu_array": (4, 8, 16, 0, {}),
    "stack_trace": (4, 8 * 127, 16, 0, {}),
    "cgroup_array": (4, 4, 4, 0, {}),
    "lru_hash": (4, 8, 16, 0, {}),
    "lru_percpu_hash": (4, 8, 16, 0, {}),
    "lpm_trie": (8, 4, 16, F.BPF_F_NO_PREALLOC, {}),
    "devmap": (4, 4, 4, 0, {}),
    "sockmap": (4, 4, 4, 0, {}),
    "cpumap": (4, 4, possible_cpus(), 0, {}),
    "xskmap": (4, 4, 4, 0, {}),
    "sockhash": (4, 4, 4, 0, {}),
    "cgroup_storage": (16, 8, 0, 0, {}),
    "reuseport_sockarray": (4, 4, 4, 0, {}),
    "percpu_cgroup_storage": (16, 8, 0, 0, {}),
    "queue": (0, 8, 16, 0, {}),
    "stack": (0, 8, 16, 0, {}),
    "devmap_hash": (4, 4, 4, 0, {}),
    "ringbuf": (0, 0, 4 * PAGE, 0, {}),
    "bloom_filter": (0, 8, 64, 0, {"map_extra": 3}),
    "user_ringbuf": (0, 0, 4 * PAGE, 0, {}),
    "arena": (0, 0, 4, F.BPF_F_MMAPABLE, {}),
}
STORAGE = ("sk_storage", "task_storage", "inode_storage", "cgrp_storage")
SPECIAL = ("array_of_maps", "hash_of_maps", "struct_ops")
ALL_TYPES = [n[len("BPF_MAP_TYPE_"):].lower() for n in abi._ENUMS["bpf_map_type"]
             if n not in ("BPF_MAP_TYPE_UNSPEC", "__MAX_BPF_MAP_TYPE") and "DEPRECATED" not in n]


def test_every_type_is_covered() -> None:
    assert set(ALL_TYPES) == set(SIMPLE) | set(STORAGE) | set(SPECIAL)


def _create(mtype: str, *args: object, feature: str | None = None, **kw: object) -> Map:
    try:
        return Map.create(mtype, *args, name=f"t_{mtype}"[:15], **kw)  # type: ignore[arg-type]
    except KernelError as e:
        if e.errno_name in ("EINVAL", "ENOTSUPP", "EOPNOTSUPP", "E2BIG"):
            kernel_skip(f"this kernel cannot create a {mtype} map: {e}", feature)
        raise


@pytest.mark.parametrize("mtype", sorted(SIMPLE))
def test_create(mtype: str) -> None:
    key_size, value_size, max_entries, flags, extra = SIMPLE[mtype]
    with _create(mtype, key_size, value_size, max_entries, flags, **extra) as m:
        info = m.info()
        assert info.type_name == mtype and (info.key_size, info.value_size) == (key_size, value_size)
        assert info.name == f"t_{mtype}"[:15] and info.map_flags & flags == flags  # devmaps add RDONLY_PROG
        if mtype in ("hash", "lru_hash", "devmap_hash"):
            m[1] = 1
            assert 1 in m and len(m) == 1
        if mtype == "arena":
            mem = m.mmap()
            assert len(mem) == 4 * PAGE
            mem.release()


@pytest.mark.parametrize("outer", ["array_of_maps", "hash_of_maps"])
def test_create_map_in_map(outer: str) -> None:
    with Map.create("hash", 4, 4, 4) as inner, _create(outer, 4, 4, 4, inner_map=inner) as m:
        assert m.info().type_name == outer
        m[0] = inner
        assert m[0] == inner.info().id


def test_create_struct_ops() -> None:
    from pybpf.btf.kernel import vmlinux

    vm = vmlinux()
    value = vm.find_one("bpf_struct_ops_tcp_congestion_ops")
    btf, _, _ = _storage_btf()  # the kernel wants some object BTF alongside, whatever it holds
    with FD(syscall.btf_load(btf.to_bytes())) as btf_fd, \
            _create("struct_ops", 4, vm.size_of(value), 1, btf_vmlinux_value_type_id=value.id,
                    btf_fd=btf_fd.fd) as m:
        info = m.info()
        assert info.type_name == "struct_ops" and info.btf_vmlinux_value_type_id == value.id


def _cgroup2() -> str:
    for point, kind in fs.mounts():
        if kind == "cgroup2":
            return point
    kernel_skip("no cgroup2 mount")
    return ""


def _storage_btf() -> tuple[object, int, int]:
    from pybpf.btf import BTF, Int, Member, Struct

    btf = BTF()
    i32 = btf.add(Int("int", 4, abi.BTF_INT_SIGNED))
    u64 = btf.add(Int("unsigned long long", 8))
    val = btf.add(Struct("val", 16, [Member("count", u64, 0), Member("tag", i32, 64)]))
    return btf, i32, val


@pytest.mark.parametrize("mtype", STORAGE)
def test_create_storage_keyed_by_fds(mtype: str) -> None:
    """Local storage maps need BTF for their value; user space reads and writes them through an fd of the
    owner (a socket, a pidfd, a file, a cgroup directory)."""
    btf, key_t, val_t = _storage_btf()
    with _create(mtype, 4, 16, 0, F.BPF_F_NO_PREALLOC, btf=btf, key_type=key_t, value_type=val_t,
                 feature="lsm" if mtype == "inode_storage" else None) as m:
        assert m.info().type_name == mtype and m.info().btf_id
        if mtype == "sk_storage":
            owner: object = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        elif mtype == "task_storage":
            owner = os.pidfd_open(os.getpid())
        elif mtype == "cgrp_storage":
            owner = os.open(_cgroup2(), os.O_RDONLY | os.O_DIRECTORY)
        else:
            return  # inode storage: elements are only reachable from BPF LSM programs
        try:
            m[owner] = {"count": 41, "tag": -1}
            assert m[owner] == (41, -1) and m[owner].count == 41
            m[owner] = m[owner]._replace(count=42)
            assert m[owner].count == 42
            del m[owner]
            assert owner not in m
        finally:
            owner.close() if isinstance(owner, socket.socket) else os.close(owner)  # type: ignore[arg-type]
