"""Map element operations on the real kernel: the dict protocol, flags, batches (and their fallback), per-CPU
values, queue/stack/bloom filter, LPM keys, maps of fds, pins, freeze, info and mmap."""
from __future__ import annotations

import gc
import ipaddress
import os
import socket
import struct

import pytest

import pybpf
from pybpf.errors import CodecError, KernelError
from pybpf.maps.codec import LpmKey
from pybpf.maps.map import Map, possible_cpus
from pybpf.sys import abi, fs

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

NCPU = possible_cpus()


def test_dict_protocol_hash() -> None:
    with Map.create("hash", 4, 8, 64, name="t_dict", key="I", value="Q") as m:
        assert len(m) == 0 and list(m) == [] and 3 not in m
        for i in range(10):
            m[i] = i * i
        assert len(m) == 10 and 3 in m and 10 not in m
        assert m[3] == 9 and m.get(3) == 9 and m.get(11) is None and m.get(11, "x") == "x"
        assert sorted(m) == list(range(10)) and sorted(m.keys()) == list(range(10))
        assert sorted(m.values()) == [i * i for i in range(10)]
        assert dict(m.items()) == {i: i * i for i in range(10)}
        del m[3]
        with pytest.raises(KeyError):
            del m[3]
        with pytest.raises(KeyError):
            m[3]
        assert m.delete(4) and not m.delete(4)
        assert m.pop(5) == 25 and 5 not in m
        assert m.pop(5, "gone") == "gone"
        with pytest.raises(KeyError):
            m.pop(5)
        m.clear()
        assert len(m) == 0


def test_update_flags() -> None:
    with Map.create("hash", 4, 4, 8, key="I", value="I") as m:
        m.update(1, 10, abi.BPF_NOEXIST)
        with pytest.raises(KernelError) as ei:
            m.update(1, 11, abi.BPF_NOEXIST)
        assert ei.value.errno_name == "EEXIST"
        with pytest.raises(KernelError) as ei:
            m.update(2, 20, abi.BPF_EXIST)
        assert ei.value.errno_name == "ENOENT"
        m.update(1, 12, abi.BPF_EXIST)
        m.update(2, 20, abi.BPF_ANY)
        assert dict(m.items()) == {1: 12, 2: 20}
        for i in range(3, 9):
            m[i] = i
        with pytest.raises(KernelError) as ei:
            m[100] = 1
        assert ei.value.errno_name == "E2BIG"  # full


def test_spin_lock_flags() -> None:
    """BPF_F_LOCK needs a value with a struct bpf_spin_lock, described by BTF."""
    from pybpf.btf import BTF, Int, Member, Struct

    btf = BTF()
    u32 = btf.add(Int("unsigned int", 4))
    lock = btf.add(Struct("bpf_spin_lock", 4, [Member("val", u32, 0)]))
    btf.add(Struct("val_t", 8, [Member("lock", lock, 0), Member("count", u32, 32)]))
    with Map.create("hash", 4, 8, 4, key="I", btf=btf, key_type=u32, value_type="val_t") as m:
        m.update(1, {"count": 5}, abi.BPF_F_LOCK | abi.BPF_NOEXIST)
        assert m.lookup(1, flags=abi.BPF_F_LOCK).count == 5
        m.update(1, {"count": 6}, abi.BPF_F_LOCK)
        assert m[1].count == 6 and m[1].lock.val == 0


def test_bad_keys_and_values_say_what() -> None:
    with Map.create("hash", 4, 8, 4, name="t_bad", key="I", value="Q") as m:
        with pytest.raises(CodecError, match="t_bad.*key"):
            m[-1] = 1
        with pytest.raises(CodecError, match="value"):
            m[1] = "x"
        with pytest.raises(CodecError):
            m["k"]
    with Map.create("hash", 4, 8, 4) as raw:
        raw[b"abcd"] = b"12345678"
        raw[7] = 9  # ints are native-endian integers of the key/value size
        assert raw[b"abcd"] == b"12345678" and raw[struct.pack("=I", 7)] == struct.pack("=Q", 9)
        with pytest.raises(CodecError):
            raw[b"abc"] = b"12345678"


def test_iteration_survives_concurrent_deletion() -> None:
    with Map.create("hash", 4, 4, 256, key="I", value="I") as m:
        for i in range(200):
            m[i] = i
        seen = []
        for k in m:
            seen.append(k)
            del m[k]  # the kernel restarts from the first key: nothing is seen twice
        assert sorted(seen) == list(range(200)) and len(m) == 0
        for i in range(50):
            m[i] = i
        seen = []
        for k in m.keys():
            seen.append(k)
            if k + 1 in m:
                del m[k + 1]  # deleting keys not yet seen: they are simply not seen
        assert len(seen) == len(set(seen)) and set(seen) <= set(range(50))


@pytest.mark.parametrize("mtype", ["hash", "lru_hash", "percpu_hash", "lru_percpu_hash", "array", "percpu_array"])
def test_batches(mtype: str) -> None:
    n = 1000
    percpu = "percpu" in mtype
    size = n if mtype.endswith("array") else 4 * n  # LRU maps evict before they are full
    with Map.create(mtype, 4, 8, size, key="I", value="Q") as m:
        def val(i: int) -> object:
            return [i * 10 + c for c in range(NCPU)] if percpu else i * 10
        assert m.update_batch({i: val(i) for i in range(n)}) == n
        got = dict(m.lookup_batch())
        assert got == {i: val(i) for i in range(n)}
        assert dict(m.lookup_batch(chunk=7)) == got  # many partial batches; the last one ends with ENOENT
        assert dict(m.items()) == got
        if mtype.endswith("array"):
            return
        assert m.delete_batch([1, 2, 3, 5000]) == 3  # the absent key is skipped
        assert len(m) == n - 3
        taken = dict(m.lookup_and_delete_batch(chunk=64))
        assert len(taken) == n - 3 and taken[10] == val(10) and len(m) == 0


def test_batch_fallback_on_lpm_trie() -> None:
    """LPM tries have no batch operations: the same calls work key by key."""
    with Map.create("lpm_trie", 8, 4, 64, abi.BPF_F_NO_PREALLOC, value="I") as m:
        nets = [f"10.{i}.0.0/16" for i in range(20)]
        assert m.update_batch([(n, i) for i, n in enumerate(nets)]) == 20
        got = dict(m.lookup_batch())
        assert {str(k.network()): v for k, v in got.items()} == {n: i for i, n in enumerate(nets)}
        assert m.delete_batch(["10.0.0.0/16", "10.1.0.0/16", "192.0.2.0/24"]) == 2
        assert len(dict(m.lookup_and_delete_batch())) == 18 and len(m) == 0


def test_lpm_trie_keys() -> None:
    with Map.create("lpm_trie", 8, 4, 16, abi.BPF_F_NO_PREALLOC, value="I") as m:
        m["10.0.0.0/8"] = 8
        m[ipaddress.ip_network("10.1.0.0/16")] = 16
        m[(24, "10.1.2.0")] = 24
        assert m["10.1.2.3"] == 24 and m[ipaddress.ip_address("10.1.9.9")] == 16 and m["10.200.0.1"] == 8
        assert "11.0.0.1" not in m
        keys = sorted(m.keys(), key=lambda k: k.prefixlen)
        assert [str(k.network()) for k in keys] == ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]
        assert isinstance(keys[0], LpmKey) and keys[0].prefixlen == 8 and keys[0].data == bytes([10, 0, 0, 0])
        with pytest.raises(CodecError):
            m["fe80::/64"] = 1  # an IPv6 key in an IPv4 trie
    with Map.create("lpm_trie", 20, 4, 4, abi.BPF_F_NO_PREALLOC, value="I") as m6:
        m6["2001:db8::/32"] = 1
        assert m6["2001:db8::1"] == 1 and m6.get("2001:db9::1") is None


@pytest.mark.parametrize("mtype", ["percpu_array", "percpu_hash", "lru_percpu_hash"])
def test_percpu_values(mtype: str) -> None:
    with Map.create(mtype, 4, 4, 4, key="I", value="I") as m:
        m[0] = list(range(1, NCPU + 1))
        assert m[0] == list(range(1, NCPU + 1))
        m[1] = 7  # one value for every CPU
        assert m[1] == [7] * NCPU
        with pytest.raises(CodecError, match="per-CPU"):
            m[2] = [1] * (NCPU + 1)
    with Map.create(mtype, 4, 12, 2, key="I", value=("=IQ", "a b")) as rec:
        rec[0] = (1, 2)
        assert rec[0] == [(1, 2)] * NCPU and rec[0][0].b == 2


def test_queue_stack_bloom() -> None:
    with Map.create("queue", 0, 4, 3, value="I") as q:
        assert q.peek() is None and q.pop() is None
        for v in (5, 6, 7):
            q.push(v)
        with pytest.raises(KernelError):
            q.push(8)  # full
        q.push(8, abi.BPF_EXIST)  # overwrite the oldest
        assert q.peek() == 6 and [q.pop(), q.pop(), q.pop(), q.pop()] == [6, 7, 8, None]
        with pytest.raises(TypeError):
            len(q)
    with Map.create("stack", 0, 8, 4, value="Q") as s:
        for v in (1, 2, 3):
            s.push(v)
        assert s.peek() == 3 and [s.pop(), s.pop(), s.pop(), s.pop()] == [3, 2, 1, None]
    with Map.create("bloom_filter", 0, 8, 100, value="Q", map_extra=3) as b:
        for v in range(0, 50, 5):
            b.push(v)
        b.add(1000)
        assert all(v in b for v in range(0, 50, 5)) and b.peek(1000)
        assert sum(v in b for v in range(10_000, 10_200)) < 50  # false positives are rare


def test_freeze_pin_info() -> None:
    bpffs = fs.ensure_bpffs()
    path = os.path.join(bpffs, f"pybpf_t_{os.getpid()}")
    with Map.create("array", 4, 8, 4, name="t_pin", key="I", value="Q") as m:
        m[1] = 11
        m.pin(path)
        try:
            with Map.from_pin(path, value="Q") as again:
                assert again.name == "t_pin" and again[1] == 11 and again.info().id == m.info().id
                again[2] = 22
            assert m[2] == 22
            m.freeze()
            with pytest.raises(KernelError) as ei:
                m[0] = 1
            assert ei.value.errno_name == "EPERM"
            info = m.info()
            assert (info.type_name, info.key_size, info.value_size, info.max_entries) == ("array", 4, 8, 4)
            with Map.from_id(info.id, value="Q") as by_id:
                assert by_id[1] == 11
        finally:
            os.unlink(path)


def test_mmap_array() -> None:
    with Map.create("array", 4, 8, 512, abi.BPF_F_MMAPABLE, key="I", value="Q") as m:
        mem = m.mmap()
        words = mem.cast("Q")
        words[3] = 12345
        assert m[3] == 12345
        m[4] = 777
        assert words[4] == 777
        words.release()
        mem.release()
    with Map.create("array", 4, 4, 16, abi.BPF_F_MMAPABLE, key="I", value="I") as ro:
        ro[0] = 5
        ro.freeze()
        mem = ro.mmap()
        assert mem.readonly and mem.cast("I")[0] == 5


def test_mmap_kept_views_do_not_crash_close() -> None:
    m = Map.create("array", 4, 8, 8, abi.BPF_F_MMAPABLE, key="I", value="Q")
    view = m.mmap()
    m.close()  # the view still works: the mapping dies with the last view
    view[0] = 1
    assert view[0] == 1
    del view
    gc.collect()


def test_prog_array_and_tail_call() -> None:
    with Map.create("prog_array", 4, 4, 4, name="t_progs") as progs:
        target = pybpf.Program.load("r0 = 42\nexit", "socket_filter", name="t_target")
        caller = pybpf.Program.load("""
            r6 = r1
            r1 = r6
            r2 = map[progs] ll
            r3 = 1
            call bpf_tail_call
            r0 = 7
            exit
        """, "socket_filter", name="t_caller", maps={"progs": progs})
        with target, caller:
            assert caller.test_run(b"\0" * 64).retval == 7  # empty slot: falls through
            progs[1] = target
            assert progs[1] == target.info().id
            assert caller.test_run(b"\0" * 64).retval == 42
            del progs[1]
            assert caller.test_run(b"\0" * 64).retval == 7
            progs[1] = target.fd  # a raw fd works too
            assert caller.test_run(b"\0" * 64).retval == 42


@pytest.mark.parametrize("outer_type", ["array_of_maps", "hash_of_maps"])
def test_map_in_map(outer_type: str) -> None:
    with Map.create("array", 4, 4, 1, key="I", value="I") as template, \
            Map.create(outer_type, 4, 4, 4, inner_map=template) as outer, \
            Map.create("array", 4, 4, 1, key="I", value="I") as inner:
        inner[0] = 99
        outer[2] = inner
        assert outer[2] == inner.info().id
        with outer.inner_map(2, value="I") as opened:
            assert opened[0] == 99
        outer[3] = template.fd
        assert outer[3] == template.info().id


def test_sockmap_values_are_sockets() -> None:
    with Map.create("sockmap", 4, 8, 2) as sm:  # 8-byte values: lookups give the socket cookie
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        cli = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        try:
            sm[0] = cli  # any object with fileno()
            so_cookie = 57
            assert sm[0] == struct.unpack("=Q", cli.getsockopt(socket.SOL_SOCKET, so_cookie, 8))[0]
            assert 0 in sm and 1 not in sm
        finally:
            for s in (cli, conn, srv):
                s.close()


def test_close_and_gc_release_fds() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        Map.create("hash", 4, 4, 4)  # dropped at once: the garbage collector closes it
    with Map.create("hash", 4, 4, 4) as m:
        m[1] = 1
    assert m.closed
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def test_btf_typed_values_and_reopening_by_id() -> None:
    """A map created with BTF converts values as records; reopened by id, its BTF comes from the kernel."""
    from pybpf.btf import BTF, Array, Int, Member, Struct

    btf = BTF()
    u32 = btf.add(Int("unsigned int", 4))
    i64 = btf.add(Int("long long", 8, abi.BTF_INT_SIGNED))
    char = btf.add(Int("char", 1, abi.BTF_INT_SIGNED))
    comm = btf.add(Array(char, u32, 16))
    btf.add(Struct("task", 32, [Member("pid", u32, 0), Member("delta", i64, 64), Member("comm", comm, 128)]))
    with Map.create("hash", 4, 32, 8, name="t_btf", btf=btf, key_type=u32, value_type="task") as m:
        m[1] = {"pid": 42, "delta": -7, "comm": "bash"}
        rec = m[1]
        assert (rec.pid, rec.delta, rec.comm, type(rec).__name__) == (42, -7, "bash", "task")
        assert m.key_codec.cast == "I" and list(m.keys()) == [1]
        with Map.from_id(m.info().id) as again:
            assert again[1] == rec and again[1].comm == "bash"
            again[2] = rec._replace(pid=43)
        assert m[2].pid == 43
        with Map.from_id(m.info().id, btf=False) as raw:
            assert raw[struct.pack("=I", 1)][:4] == struct.pack("=I", 42)
