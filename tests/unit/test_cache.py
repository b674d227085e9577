"""The on-disk cache (pybpf._cache) and what uses it: an entry is used only when it matches its input and is
intact; a corrupt, truncated or foreign entry, a changed input, and an unusable directory all fall back to
computing afresh -- with the same results, and without an error."""
from __future__ import annotations

import os
import weakref
from array import array
from pathlib import Path

import pytest

from pybpf import _cache
from pybpf.btf import BTF, Int, Member, Ptr, Struct, kernel
from pybpf.sys import abi


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty cache directory for the test (``XDG_CACHE_HOME``); returns ``.../pybpf``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "pybpf"


def entries(cache: Path, kind: str) -> list[Path]:
    return sorted(p for p in cache.glob(f"{kind}-*") if not p.name.endswith(".tmp")) if cache.exists() else []


# ---- the store itself ------------------------------------------------------------------------------------


def test_store_and_load(cache_home: Path) -> None:
    assert _cache.load("k", b"key") is None
    _cache.store("k", b"key", b"payload", keep=8)
    assert _cache.load("k", b"key") == b"payload"
    assert _cache.load("k", b"other key") is None
    assert _cache.load("other", b"key") is None
    (path,) = entries(cache_home, "k")
    assert path.stat().st_mode & 0o777 == 0o600 and cache_home.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "other key"])
def test_damaged_entries_are_ignored(cache_home: Path, damage: str) -> None:
    _cache.store("k", b"key", b"payload" * 100, keep=8)
    (path,) = entries(cache_home, "k")
    blob = path.read_bytes()
    if damage == "truncate":
        blob = blob[:-1]
    elif damage == "flip":
        blob = blob[:-10] + bytes([blob[-10] ^ 1]) + blob[-9:]
    elif damage == "empty":
        blob = b""
    elif damage == "garbage":
        blob = os.urandom(len(blob))
    else:  # a valid entry of another key under this key's name
        _cache.store("k", b"another", b"payload" * 100, keep=8)
        (other,) = [p for p in entries(cache_home, "k") if p != path]
        blob = other.read_bytes()
    path.write_bytes(blob)
    assert _cache.load("k", b"key") is None
    _cache.store("k", b"key", b"payload" * 100, keep=8)
    assert _cache.load("k", b"key") == b"payload" * 100


def test_unusable_directory_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    _cache.store("k", b"key", b"payload", keep=8)
    assert _cache.load("k", b"key") is None


def test_directory_others_can_write_is_not_used(cache_home: Path) -> None:
    _cache.store("k", b"key", b"payload", keep=8)
    cache_home.chmod(0o777)
    try:
        assert _cache.load("k", b"key") is None
        _cache.store("k", b"key2", b"payload", keep=8)
        assert len(entries(cache_home, "k")) == 1
    finally:
        cache_home.chmod(0o700)
    assert _cache.load("k", b"key") == b"payload"


def test_cache_can_be_turned_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cache.store("k", b"key", b"payload", keep=8)
    monkeypatch.setenv("PYBPF_NO_CACHE", "1")
    assert _cache.load("k", b"key") is None
    _cache.store("k", b"key2", b"payload", keep=8)
    assert len(entries(cache_home, "k")) == 1


def test_relative_xdg_cache_home_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert _cache.directory() == os.path.join(os.path.expanduser("~"), ".cache", "pybpf")


def test_least_recently_used_entries_are_pruned(cache_home: Path) -> None:
    for i in range(8):
        _cache.store("k", b"key%d" % i, b"x", keep=5)
        os.utime(_cache._file(str(cache_home), "k", b"key%d" % i), ns=(i * 10**9, i * 10**9))  # stored in order
    assert len(entries(cache_home, "k")) == 5
    assert [_cache.load("k", b"key%d" % i) for i in range(8)] == [None] * 3 + [b"x"] * 5


# ---- the kernel BTF index --------------------------------------------------------------------------------


def sample_btf(n: int = 50) -> bytes:
    """A base BTF with ``n`` structs (some sharing a name) and the types they use."""
    b = BTF()
    i = b.add(Int("int", 4, abi.BTF_INT_SIGNED))
    for k in range(n):
        b.add(Struct(f"s{k % 7}", 16, [Member("a", i, 0), Member("p", b.add(Ptr(i)), 64)]))
    return b.to_bytes()


def summary(btf: BTF) -> list[tuple[int, ...]]:
    """What lookups give: the ids of each name, and each type's text."""
    return [tuple(t.id for t in btf.find(f"s{k}")) for k in range(8)] + [(hash(str(t)),) for t in btf]


def test_kernel_btf_index_is_cached_and_used(cache_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(sample_btf())
    expected = summary(BTF.parse(path.read_bytes()))
    cold = kernel.vmlinux(str(path))
    (entry,) = entries(cache_home, "btf-index")
    assert summary(cold) == expected
    kernel._cache.clear()
    inode = entry.stat().st_ino
    warm = kernel.vmlinux(str(path))
    assert warm is not cold and summary(warm) == expected
    assert isinstance(warm._starts, array)  # the index was read back, not rebuilt by a pass over the types
    assert warm.index() == cold.index() == BTF.parse(path.read_bytes()).index()
    assert entries(cache_home, "btf-index") == [entry] and entry.stat().st_ino == inode  # used, not rewritten


@pytest.mark.parametrize("damage", ["corrupt", "wrong index"])
def test_bad_kernel_btf_index_is_rebuilt(cache_home: Path, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(sample_btf())
    expected = summary(BTF.parse(path.read_bytes()))
    kernel.vmlinux(str(path))
    (entry,) = entries(cache_home, "btf-index")
    if damage == "corrupt":
        blob = bytearray(entry.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        entry.write_bytes(blob)
    else:  # intact and keyed right, but not this blob's index (as if the index format changed, not the key)
        _cache.store("btf-index", _kernel_key(path), BTF.parse(sample_btf(40)).index(), keep=8)
    kernel._cache.clear()
    assert summary(kernel.vmlinux(str(path))) == expected
    assert _cache.load("btf-index", _kernel_key(path)) == BTF.parse(path.read_bytes()).index()


def _kernel_key(path: Path) -> bytes:
    from pybpf.btf import btf as btf_module
    from pybpf.btf import types

    return _cache.digest(path.read_bytes()) + _cache.code_key(btf_module.__file__, types.__file__)


def test_changed_kernel_btf_gets_its_own_index(cache_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(sample_btf(50))
    kernel.vmlinux(str(path))
    path.write_bytes(sample_btf(30))
    os.utime(path, ns=(1, 1))  # a new file identity for the in-process cache
    changed = kernel.vmlinux(str(path))
    assert summary(changed) == summary(BTF.parse(sample_btf(30)))
    assert len(entries(cache_home, "btf-index")) == 2


def test_kernel_btf_without_a_usable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = tmp_path / "vmlinux"
    path.write_bytes(sample_btf())
    assert summary(kernel.vmlinux(str(path))) == summary(BTF.parse(path.read_bytes()))


def test_parse_ignores_an_index_that_does_not_fit() -> None:
    data = sample_btf()
    good = BTF.parse(data)
    for bad in (b"", b"\0" * 7, good.index()[:-8], BTF.parse(sample_btf(40)).index(), b"\xff" * len(good.index())):
        assert summary(BTF.parse(data, index=bad)) == summary(good)


# ---- ELF section headers of objects ----------------------------------------------------------------------


def object_bytes(name: str = "execsnoop") -> bytes:
    from pybpf.prebuilt import path as prebuilt

    with open(prebuilt(name), "rb") as f:
        return f.read()


def spec_text(data: bytes) -> str:
    """Everything ObjectFile makes of ``data``, as text (instructions included)."""
    from pybpf.loader import ObjectFile
    from pybpf.loader.format import format_spec

    spec = ObjectFile(data)
    progs = [(p.name, p.instructions.encode() if not any(i.reference for i in p.instructions) else
              [(str(i), i.reference, i.line, i.func, i.core and i.core.access) for i in p.instructions])
             for p in (*spec.programs.values(), *spec.functions.values())]
    return f"{format_spec(spec)}\n{progs}\n{spec.btf and spec.btf.to_bytes()}"


def test_object_headers_are_cached_and_used(cache_home: Path) -> None:
    data = object_bytes()
    cold = spec_text(data)
    (entry,) = entries(cache_home, "elf-headers")
    assert spec_text(data) == cold and entries(cache_home, "elf-headers") == [entry]
    assert spec_text(object_bytes("hello")) != cold and len(entries(cache_home, "elf-headers")) == 2


def test_cached_object_is_read_without_pyelftools(cache_home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    obj = tmp_path / "obj.o"
    obj.write_bytes(object_bytes())
    code = ("import sys; from pybpf.loader import ObjectFile; ObjectFile(sys.argv[1]); "
            "print('elftools' in sys.modules)")
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home.parent))
    runs = [subprocess.run([sys.executable, "-c", code, str(obj)], env=env, capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)]
    assert runs == ["True", "False"]


@pytest.mark.parametrize("damage", ["corrupt", "not headers"])
def test_bad_object_headers_are_rebuilt(cache_home: Path, damage: str) -> None:
    import marshal

    from pybpf.loader import elf

    data = object_bytes()
    expected = spec_text(data)
    (entry,) = entries(cache_home, "elf-headers")
    good = entry.read_bytes()
    key = _cache.digest(data) + _cache.code_key(elf.__file__)
    if damage == "corrupt":
        blob = bytearray(good)
        blob[-5] ^= 0x10
        entry.write_bytes(blob)
    else:  # intact and keyed right, but not what the reader stores
        _cache.store("elf-headers", key, marshal.dumps({"a": [1.5]}), keep=8)
    assert spec_text(data) == expected
    assert entry.read_bytes() == good


# ---- name lookups in the kernel BTF ----------------------------------------------------------------------


def test_kernel_btf_lookups_are_kept_and_used(cache_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(sample_btf())
    first = kernel.vmlinux(str(path))
    answers = ([t.id for t in first.find("s3")], [t.id for t in first.find_prefixed("s")], first.find("none"))
    kernel._keep_lookups(weakref.ref(first), _kernel_key(path), b"")  # what happens at exit
    (entry,) = entries(cache_home, "btf-lookups")
    kernel._cache.clear()
    second = kernel.vmlinux(str(path))
    assert set(second._found) == {"s3", "none"} and set(second._prefixed) == {"s"}  # known without searching
    assert ([t.id for t in second.find("s3")], [t.id for t in second.find_prefixed("s")], second.find("none")) \
        == answers
    kernel._keep_lookups(weakref.ref(second), _kernel_key(path), second.lookups())  # nothing new: not rewritten
    assert entries(cache_home, "btf-lookups") == [entry]


@pytest.mark.parametrize("damage", ["corrupt", "ids out of range", "not lookups"])
def test_bad_kernel_btf_lookups_are_ignored(cache_home: Path, tmp_path: Path, damage: str) -> None:
    import marshal

    path = tmp_path / "vmlinux"
    path.write_bytes(sample_btf())
    btf = kernel.vmlinux(str(path))
    expected = [t.id for t in btf.find("s3")]
    kernel._keep_lookups(weakref.ref(btf), _kernel_key(path), b"")
    (entry,) = entries(cache_home, "btf-lookups")
    if damage == "corrupt":
        blob = bytearray(entry.read_bytes())
        blob[-3] ^= 0x40
        entry.write_bytes(blob)
    elif damage == "ids out of range":
        _cache.store("btf-lookups", _kernel_key(path), marshal.dumps(({"s3": [len(btf) + 5]}, {})), 8)
    else:
        _cache.store("btf-lookups", _kernel_key(path), marshal.dumps([1, 2, 3]), keep=8)
    kernel._cache.clear()
    again = kernel.vmlinux(str(path))
    assert not again._found and [t.id for t in again.find("s3")] == expected


def test_lookups_of_a_changed_btf_are_not_kept() -> None:
    btf = BTF.parse(sample_btf())
    btf.find("s1")
    assert btf.lookups()
    btf.add(Int("extra", 4))
    assert btf.lookups() == b""
    other = BTF.parse(sample_btf())
    other.find("s1")
    fresh = BTF.parse(sample_btf())
    fresh.add(Int("extra", 4))
    fresh.add_lookups(other.lookups())
    assert not fresh._found and [t.id for t in fresh.find("s1")] == [t.id for t in other.find("s1")]


def test_the_running_kernels_btf_read_through_a_mapping(cache_home: Path) -> None:
    """/sys/kernel/btf/vmlinux is mapped where the kernel allows it (not copied): same types as read bytes."""
    if not os.path.exists(kernel.SYSFS_BTF + "/vmlinux"):
        pytest.skip("no /sys/kernel/btf/vmlinux")
    with open(kernel.SYSFS_BTF + "/vmlinux", "rb") as f:
        read = BTF.parse(f.read())
    kernel._cache.clear()
    for _ in range(2):  # without, then with the cached index
        mapped = kernel.vmlinux()
        assert len(mapped) == len(read) and mapped.index() == read.index()
        for name in ("task_struct", "sk_buff", "trace_event_raw_sys_enter"):
            assert [str(t) for t in mapped.find(name)] == [str(t) for t in read.find(name)]
        kernel._cache.clear()


def test_the_running_kernels_btf_is_hashed_once_per_boot(cache_home: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    vmlinux = kernel.SYSFS_BTF + "/vmlinux"
    if not os.path.exists(vmlinux):
        pytest.skip("no /sys/kernel/btf/vmlinux")
    with open(vmlinux, "rb") as f:
        data = f.read()
    hashed: list[int] = []
    real = _cache.digest

    def counting(blob: bytes) -> bytes:
        if len(blob) == len(data):
            hashed.append(1)
        return real(blob)
    monkeypatch.setattr(_cache, "digest", counting)
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    monkeypatch.setattr(kernel, "BOOT_ID", str(boot))
    assert kernel._digest(vmlinux, data) == real(data) and len(hashed) == 1
    assert kernel._digest(vmlinux, data) == real(data) and len(hashed) == 1  # known for this boot
    (entry,) = entries(cache_home, "btf-digest")
    entry.write_bytes(entry.read_bytes()[:-1])  # damaged: hashed again
    assert kernel._digest(vmlinux, data) == real(data) and len(hashed) == 2
    boot.write_text("boot-2\n")  # another boot: hashed again
    assert kernel._digest(vmlinux, data) == real(data) and len(hashed) == 3
    copy = tmp_path / "vmlinux"
    copy.write_bytes(data)  # a file outside sysfs may change: hashed every time
    assert kernel._digest(str(copy), data) == real(data) and kernel._digest(str(copy), data) == real(data)
    assert len(hashed) == 5
