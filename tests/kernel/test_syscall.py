"""The kernel door on the real kernel: maps, program load and test runs, verifier logs, pins, ids, fds."""
from __future__ import annotations

import gc
import os
import struct

import pytest

import pybpf
from pybpf.sys import abi, fs, syscall

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

EXIT_0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hash_map_roundtrip() -> None:
    with pybpf.Map.create("hash", 4, 8, 16, name="t_hash", key="I", value="Q") as m:
        m[1] = 10
        m.update(2, 20, abi.BPF_NOEXIST)
        with pytest.raises(pybpf.KernelError) as ei:
            m.update(2, 21, abi.BPF_NOEXIST)
        assert ei.value.errno_name == "EEXIST"
        assert dict(m.items()) == {1: 10, 2: 20}
        assert len(m) == 2 and 1 in m and 3 not in m and m.get(3, "x") == "x"
        del m[1]
        with pytest.raises(KeyError):
            del m[1]
        with pytest.raises(KeyError):
            m[1]
        assert list(m) == [2]
        info = m.info()
        assert (info.type_name, info.name, info.key_size, info.value_size, info.max_entries) == \
            ("hash", "t_hash", 4, 8, 16)


def test_iteration_survives_deletion() -> None:
    with pybpf.Map.create("hash", 4, 4, 64, key="I", value="I") as m:
        for i in range(50):
            m[i] = i
        seen = []
        for k in m.keys():
            seen.append(k)
            m.delete(k)  # deleting the current key makes the kernel restart from the first key
        assert sorted(seen) == list(range(50)) and len(m) == 0


def test_percpu_array_and_queue() -> None:
    ncpu = pybpf.maps.map.possible_cpus()
    with pybpf.Map.create("percpu_array", 4, 4, 2, key="I", value="I") as m:
        m[0] = list(range(1, ncpu + 1))
        assert m[0] == list(range(1, ncpu + 1))
        assert m[1] == [0] * ncpu
    with pybpf.Map.create("queue", 0, 4, 4, value="I") as q:
        for v in (5, 6, 7):
            q.push(v)
        assert q.peek() == 5 and [q.pop(), q.pop(), q.pop(), q.pop()] == [5, 6, 7, None]


def test_program_test_run() -> None:
    code = insn(0xB7, 0, imm=2) + insn(0x95)  # r0 = XDP_PASS
    with pybpf.Program.load(code, "xdp", name="t_pass") as p:
        res = p.test_run(b"\xaa" * 64)
        assert res.retval == abi.XDP_PASS and res.data == b"\xaa" * 64
        info = p.info()
        assert info.name == "t_pass" and info.type_name == "xdp" and info.xlated_len == 16
        assert p.xlated() == code


def test_map_counter_program() -> None:
    """A hand-encoded socket filter increments a map counter through bpf_map_lookup_elem."""
    with pybpf.Map.create("array", 4, 8, 1, key="I", value="Q") as m:
        ld_map = insn(0x18, 1, abi.BPF_PSEUDO_MAP_FD, imm=m.fd) + insn(0)
        code = (
            insn(0x62, 10, off=-4, imm=0)          # *(u32 *)(r10 - 4) = 0
            + ld_map                               # r1 = map
            + insn(0xBF, 2, 10)                    # r2 = r10
            + insn(0x07, 2, imm=-4)                # r2 += -4
            + insn(0x85, imm=abi.BPF_FUNC_map_lookup_elem)
            + insn(0x15, 0, off=2, imm=0)          # if r0 == 0 goto +2
            + insn(0xB7, 1, imm=1)                 # r1 = 1
            + insn(0xDB, 0, 1, imm=abi.BPF_ADD)    # lock *(u64 *)(r0 + 0) += r1
            + insn(0xB7, 0, imm=0) + insn(0x95)
        )
        with pybpf.Program.load(code, "socket_filter", name="t_count") as p:
            p.test_run(b"\0" * 64, repeat=7)
            assert m[0] == 7
            assert p.info().map_ids == (m.info().id,)


def test_verifier_error_carries_whole_log() -> None:
    with pytest.raises(pybpf.VerifierError) as ei:
        pybpf.Program.load(insn(0x95), "xdp", name="t_bad")
    e = ei.value
    assert e.program == "t_bad" and "R0 !read_ok" in e.log and "R0 !read_ok" in str(e)
    assert e.errno_name == "EACCES"


def test_verifier_log_grows_past_initial_buffer() -> None:
    """A log_level=2 load of a long program writes far more than 64 KiB: the log must come back whole."""
    body = b"".join(insn(0x07, 0, imm=1) for _ in range(3000))  # r0 += 1 (3000 times)
    code = insn(0xB7, 0, imm=0) + body + insn(0x95)
    with pybpf.Program.load(code, "socket_filter", name="t_log", log_level=2) as p:
        log = p.verifier_log
    assert len(log) > syscall.LOG_BUF_START
    assert log.rstrip().splitlines()[-1].startswith("processed 3002 insns")


def test_pin_and_reopen(uniq: str) -> None:
    base = os.path.join(fs.ensure_bpffs(), uniq)
    os.makedirs(base)
    try:
        with pybpf.Map.create("array", 4, 4, 4, name="t_pin", key="I", value="I") as m:
            m[3] = 33
            m.pin(f"{base}/m")
            with pybpf.Map.from_pin(f"{base}/m", key="I", value="I") as again:
                assert again[3] == 33 and again.name == "t_pin"
        with pybpf.Program.load(EXIT_0, "socket_filter", name="t_pinp") as p:
            p.pin(f"{base}/p")
            pid = p.info().id
        with pybpf.Program.from_pin(f"{base}/p") as p2:
            assert p2.info().id == pid and p2.name == "t_pinp"
    finally:
        for f in os.listdir(base):
            os.unlink(os.path.join(base, f))
        os.rmdir(base)


def test_pin_outside_bpffs_says_so(tmp_path) -> None:
    with pybpf.Map.create("array", 4, 4, 1) as m:
        with pytest.raises(pybpf.KernelError) as ei:
            m.pin(str(tmp_path / "x"))
    assert "bpffs" in str(ei.value)


def test_ids_and_fd_by_id() -> None:
    with pybpf.Map.create("array", 4, 4, 1, name="t_ids") as m:
        mid = m.info().id
        assert mid in set(syscall.object_ids("map"))
        with pybpf.Map.from_id(mid) as m2:
            assert m2.name == "t_ids"
    with pytest.raises(pybpf.NotFound):
        pybpf.Map.from_id(0xFFFFFFF)


def test_errors_name_command_and_errno() -> None:
    with pytest.raises(pybpf.KernelError) as ei:
        pybpf.Map.create("hash", 0, 4, 1)  # zero key size
    assert ei.value.command == "BPF_MAP_CREATE" and ei.value.errno_name == "EINVAL"
    with pytest.raises(ValueError):
        pybpf.Map.create("no_such_type", 4, 4, 1)


def test_fds_are_released() -> None:
    before = open_fds()
    for _ in range(200):
        m = pybpf.Map.create("array", 4, 4, 1)
        p = pybpf.Program.load(EXIT_0, "socket_filter")
        m.close()
        m.close()  # idempotent
        with p:
            pass
    for _ in range(100):
        pybpf.Map.create("array", 4, 4, 1)  # dropped: closed by the garbage collector
    gc.collect()
    assert open_fds() == before


def test_memlock_left_alone_where_memcg_accounts() -> None:
    """Kernels with memory-cgroup accounting (this one) need no RLIMIT_MEMLOCK bump; pybpf leaves it as is."""
    import resource

    from pybpf.sys import probes

    before = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    syscall._memlock_checked = False
    pybpf.Map.create("array", 4, 4, 1).close()
    if probes.feature("memcg_account"):
        assert resource.getrlimit(resource.RLIMIT_MEMLOCK) == before
