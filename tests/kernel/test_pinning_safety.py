"""Pinning is safe: a pin path must lie inside a bpffs mount (checked before the kernel is asked, for maps,
programs and links alike); the loader reuses an already-pinned map only when its type, key and value sizes,
max_entries and flags match the object's definition (libbpf's rule), keeping its contents, and otherwise
refuses with an error naming every difference -- as it refuses a pin holding a program, or a directory --
without leaking anything it created on the way."""
from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pybpf.prebuilt
import pytest

import pybpf
from pybpf.errors import LinkError, PermissionDenied
from pybpf.link import attach_tracepoint
from pybpf.loader import ObjectFile
from pybpf.sys import abi, syscall
from pybpf.sys.fs import ensure_bpffs

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

OBJ = "btf_maps"
PINNED = "pybpf_pin_ctr"  # the object's map with pinning = LIBBPF_PIN_BY_NAME (an array, u32 -> u64, 1 entry)


@pytest.fixture
def pin_root(uniq: str) -> Iterator[str]:
    """A fresh directory of ours inside bpffs, removed with everything in it afterwards."""
    root = os.path.join(ensure_bpffs(), uniq)
    os.makedirs(root)
    try:
        yield root
    finally:
        for name in os.listdir(root):
            path = os.path.join(root, name)
            os.rmdir(path) if os.path.isdir(path) else os.unlink(path)
        os.rmdir(root)


def _fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


class CountingSyscall:
    """Counts BPF_OBJ_PIN syscalls made through pybpf.sys.syscall (to prove a refusal came before any)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.pins = 0
        real = syscall._syscall

        def counting(nr: int, cmd: int, *args: Any) -> Any:
            if nr == syscall.NR_BPF and cmd == abi.BPF_OBJ_PIN:
                self.pins += 1
            return real(nr, cmd, *args)
        monkeypatch.setattr(syscall, "_syscall", counting)


@pytest.mark.parametrize("where", ["tmp", "proc", "relative", "dotdot"])
def test_pins_outside_bpffs_are_refused_before_the_kernel(where: str, tmp_path: Path, pin_root: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = {"tmp": str(tmp_path / "pin"), "proc": "/proc/pybpf_pin", "relative": "pybpf_pin",
            "dotdot": f"{pin_root}/../../pybpf_pin"}[where]  # /sys/fs/bpf/x/../../y is /sys/fs/y: sysfs
    calls = CountingSyscall(monkeypatch)
    with pybpf.Map.create("array", 4, 4, 1, name="t_pin_out") as m, \
            pybpf.Program.load("r0 = 0\nexit", "tracepoint", name="t_pin_out") as p, \
            attach_tracepoint(p, "syscalls/sys_enter_getppid") as link:
        for obj in (m, p, link):
            with pytest.raises(PermissionDenied) as ei:
                obj.pin(path)
            msg = str(ei.value)
            assert "is not inside a bpffs mount" in msg and "mount -t bpf bpf /sys/fs/bpf" in msg, msg
        assert link.pinned_path is None
    assert calls.pins == 0 and not os.path.exists(path)
    print(f"\npin refused before the kernel ({where}): {msg}")


def test_symlink_into_bpffs_is_followed(tmp_path: Path, pin_root: str) -> None:
    """What counts is where the path really leads: a symlink to a bpffs directory is a valid pin path."""
    (tmp_path / "link").symlink_to(pin_root)
    with pybpf.Map.create("array", 4, 4, 1, name="t_pin_sym") as m:
        m.pin(str(tmp_path / "link" / "m"))
        assert os.path.exists(os.path.join(pin_root, "m"))
        with pybpf.Map.from_pin(os.path.join(pin_root, "m")) as again:
            assert again.info().id == m.info().id


def test_matching_pin_is_reused_with_its_contents(pin_root: str) -> None:
    with pybpf.load(pybpf.prebuilt.path(OBJ), pin_root=pin_root) as first:
        m = first.maps[PINNED]
        m[0] = 12345
        first_id = m.info().id
    assert os.path.exists(os.path.join(pin_root, PINNED))  # the pin outlives the object
    with pybpf.load(pybpf.prebuilt.path(OBJ), pin_root=pin_root) as second:
        again = second.maps[PINNED]
        assert again.info().id == first_id and again[0] == 12345
    print(f"\npin reuse: map id {first_id} reused by a second load, contents kept")


MISMATCHES = [
    ("type", lambda m: setattr(m, "type", abi.BPF_MAP_TYPE_HASH), "type 2 (object wants 1)"),
    ("key_size", lambda m: setattr(m, "key_size", 8), "key_size 4 (object wants 8)"),
    ("value_size", lambda m: setattr(m, "value_size", 16), "value_size 8 (object wants 16)"),
    ("max_entries", lambda m: setattr(m, "max_entries", 2), "max_entries 1 (object wants 2)"),
    ("map_flags", lambda m: setattr(m, "flags", abi.BPF_F_RDONLY_PROG),
     f"map_flags 0 (object wants {abi.BPF_F_RDONLY_PROG})"),
]


@pytest.mark.parametrize("field, change, message", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_mismatching_pin_is_refused_naming_the_field(field: str, change: Any, message: str, pin_root: str) -> None:
    with pybpf.load(pybpf.prebuilt.path(OBJ), pin_root=pin_root):
        pass
    spec = ObjectFile(pybpf.prebuilt.path(OBJ))
    change(spec.maps[PINNED])
    fds = _fds()
    with pytest.raises(LinkError) as ei:
        pybpf.load(spec, pin_root=pin_root)
    msg = str(ei.value)
    assert f"map {PINNED!r}" in msg and os.path.join(pin_root, PINNED) in msg and "cannot be reused" in msg
    assert message in msg, msg
    assert _fds() == fds  # nothing created on the way is left open
    print(f"\npin mismatch ({field}): {msg}")


def test_pin_holding_a_program_or_a_directory_is_refused(pin_root: str) -> None:
    path = os.path.join(pin_root, PINNED)
    with pybpf.Program.load("r0 = 0\nexit", "socket_filter", name="t_pin_prog") as p:
        p.pin(path)
    with pytest.raises(LinkError, match=r"is not a map \(bpf-prog\)"):
        pybpf.load(pybpf.prebuilt.path(OBJ), pin_root=pin_root)
    os.unlink(path)
    os.mkdir(path)
    with pytest.raises(LinkError, match="is a directory, not a pinned map"):
        pybpf.load(pybpf.prebuilt.path(OBJ), pin_root=pin_root)


def test_pin_root_outside_bpffs_leaks_nothing(tmp_path: Path) -> None:
    """The first pin fails after maps were created: they are all closed again (every map is an fd of ours)."""
    fds = _fds()
    with pytest.raises(PermissionDenied, match="not inside a bpffs mount"):
        pybpf.load(pybpf.prebuilt.path(OBJ), pin_root=str(tmp_path))
    assert _fds() == fds and os.listdir(tmp_path) == []
