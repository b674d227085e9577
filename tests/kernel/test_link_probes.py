"""uprobes and kprobes on the real kernel: counting calls, PMU and legacy tracefs events (left nothing
registered afterwards), perf ioctl and bpf_link, pid filters, multi links.  kprobe tests need a kernel with
kprobes: they run in the VM matrix (feature "kprobe") and skip here."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import kernel_skip
from linkprogs import load_counter

import pybpf
from pybpf.errors import KernelError, NotFound, NotSupported
from pybpf.link import (attach_kprobe, attach_kprobe_multi, attach_ksyscall, attach_uprobe, attach_uprobe_multi,
                        elfsym)
from pybpf.link.kprobe import has_kprobes, syscall_function
from pybpf.link.perf import remove_stale_events
from pybpf.sys import perf

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def own_events(kind: str) -> list[str]:
    """Probe events pybpf defined from this process (kind: kprobe or uprobe)."""
    return [e for e in perf.probe_events(kind) if f"_{os.getpid()}_" in e]


def getppid(n: int) -> None:
    for _ in range(n):
        os.getppid()


# --- uprobes -------------------------------------------------------------------------------------------------


@pytest.mark.feature("uprobe")
@pytest.mark.parametrize("legacy", [False, True], ids=["pmu", "uprobe_events"])
@pytest.mark.parametrize("mechanism", [None, "perf_event"])
def test_uprobe_counts_libc_calls(legacy: bool, mechanism: str | None) -> None:
    prog, m = load_counter("kprobe", pid=os.getpid())
    with prog, m:
        with attach_uprobe(prog, "libc.so.6", "getppid", pid=os.getpid(), legacy=legacy, mechanism=mechanism) as lk:
            assert bool(own_events("uprobe")) == legacy
            getppid(5)
            assert lk.kind == "uprobe" and lk.target.endswith("libc.so.6:getppid")
            assert lk.info()["offset"] == elfsym.func_offset(lk.info()["path"], "getppid")
        getppid(2)
        assert m[0] == 5
        assert own_events("uprobe") == []


def test_uretprobe_and_pid_filter() -> None:
    """The program does not filter: the perf event's pid does, so a child calling getppid is not counted."""
    prog, m = load_counter("kprobe")
    with prog, m:
        with attach_uprobe(prog, "libc.so.6", "getppid", pid=os.getpid(), retprobe=True) as lk:
            subprocess.run([sys.executable, "-c", "import os\nfor _ in range(10): os.getppid()"], check=True)
            getppid(3)
            assert lk.kind == "uretprobe"
        assert m[0] == 3


def test_uprobe_on_bash_from_section() -> None:
    prog, m = load_counter("kprobe")
    prog.section = "uprobe/bash:main"  # resolved through PATH, as libbpf does
    with prog, m:
        with prog.attach() as lk:
            for _ in range(3):
                subprocess.run(["bash", "-c", "true"], check=True)
            assert lk.target.endswith("bash:main")
        assert m[0] >= 3  # any bash started meanwhile counts too


def test_uprobe_at_file_offset() -> None:
    path = elfsym.resolve_binary("libc.so.6", os.getpid())
    offset = elfsym.func_offset(path, "getppid")
    prog, m = load_counter("kprobe", pid=os.getpid())
    with prog, m, attach_uprobe(prog, path, offset=offset) as lk:
        getppid(4)
        assert lk.info()["offset"] == offset
        assert m[0] == 4


def test_uprobe_multi() -> None:
    me = os.getpid()  # os.getpid() itself is probed below
    prog, m = load_counter("kprobe", pid=me, expected_attach_type="trace_uprobe_multi")
    with prog, m:
        try:
            lk = attach_uprobe_multi(prog, "libc.so.6", symbols=["getppid", "getpid"], pid=me)
        except NotSupported as e:
            kernel_skip(f"no uprobe.multi links: {e}", feature="uprobe_multi")
        with lk:
            getppid(3)
            for _ in range(2):
                os.getpid()
            info = lk.info()
            assert info.type_name == "uprobe_multi" and info["count"] == 2 and info["pid"] == me
        assert m[0] == 5
        with attach_uprobe_multi(prog, "libc.so.6", "getpp*", pid=me) as lk:
            getppid(2)
        assert m[0] == 7


def test_uprobe_errors_name_what_is_missing() -> None:
    prog, m = load_counter("kprobe")
    with prog, m:
        with pytest.raises(NotFound) as ei:
            attach_uprobe(prog, "libc.so.6", "no_such_function_pybpf", pid=os.getpid())
        assert "no_such_function_pybpf" in str(ei.value)
        with pytest.raises(NotFound) as ei:
            attach_uprobe(prog, "no-such-binary-pybpf", "main")
        assert "no-such-binary-pybpf" in str(ei.value) and "PATH" in str(ei.value)


# --- kprobes (VM kernels) -----------------------------------------------------------------------------------


def require_kprobes() -> None:
    if not has_kprobes():
        kernel_skip("this kernel has no kprobes (CONFIG_KPROBES off)", feature="kprobe")


def test_no_kprobes_is_said_plainly() -> None:
    if has_kprobes():
        pytest.skip("this kernel has kprobes")
    prog, m = load_counter("kprobe")
    with prog, m:
        for attach in (lambda: attach_kprobe(prog, "do_sys_openat2"), lambda: attach_ksyscall(prog, "write"),
                       lambda: attach_kprobe_multi(prog, "vfs_*")):
            with pytest.raises(NotSupported) as ei:
                attach()
            assert "this kernel has no kprobes (CONFIG_KPROBES off)" in str(ei.value)


@pytest.mark.feature("kprobe")
@pytest.mark.parametrize("legacy", [False, True], ids=["pmu", "kprobe_events"])
@pytest.mark.parametrize("retprobe", [False, True], ids=["kprobe", "kretprobe"])
def test_kprobe_counts_syscalls(legacy: bool, retprobe: bool) -> None:
    require_kprobes()
    prog, m = load_counter("kprobe", pid=os.getpid())
    with prog, m:
        with attach_kprobe(prog, syscall_function("getppid"), retprobe=retprobe, legacy=legacy) as lk:
            assert bool(own_events("kprobe")) == legacy
            getppid(6)
            assert lk.kind == ("kretprobe" if retprobe else "kprobe")
        getppid(2)
        assert m[0] == 6
        assert own_events("kprobe") == []


@pytest.mark.feature("kprobe")
def test_kretprobe_maxactive_uses_kprobe_events() -> None:
    require_kprobes()
    prog, m = load_counter("kprobe", pid=os.getpid())
    with prog, m:
        with attach_kprobe(prog, syscall_function("getppid"), retprobe=True, maxactive=8) as lk:
            events = own_events("kprobe")
            assert len(events) == 1 and events[0].startswith("r8:")
            getppid(3)
            assert lk.info()["maxactive"] == 8
        assert m[0] == 3 and own_events("kprobe") == []


@pytest.mark.feature("kprobe")
def test_ksyscall_from_section() -> None:
    require_kprobes()
    prog, m = load_counter("kprobe", pid=os.getpid())
    prog.section = "ksyscall/getppid"
    with prog, m:
        with prog.attach():
            getppid(4)
        assert m[0] == 4


@pytest.mark.feature("kprobe_multi")
def test_kprobe_multi() -> None:
    require_kprobes()
    prog, m = load_counter("kprobe", pid=os.getpid(), expected_attach_type="trace_kprobe_multi")
    with prog, m:
        try:
            lk = attach_kprobe_multi(prog, symbols=[syscall_function("getppid")])
        except (NotSupported, KernelError) as e:
            kernel_skip(f"no kprobe.multi links: {e}", feature="kprobe_multi")
        with lk:
            getppid(5)
            assert lk.info()["count"] == 1
        assert m[0] == 5


def test_kprobe_error_for_unknown_function() -> None:
    prog, m = load_counter("kprobe")
    with prog, m, pytest.raises(pybpf.KernelError):
        attach_kprobe(prog, "no_such_kernel_function_pybpf")


def test_stale_probe_events_of_dead_processes_are_removed() -> None:
    dead = 4194304 + 17  # above any pid the kernel hands out (PID_MAX_LIMIT)
    mine = f"u_{dead}_0_true"
    perf.add_probe_event("uprobe", "pybpf", mine, f"{elfsym.resolve_binary('true')}:0x0")
    try:
        prog, m = load_counter("kprobe", pid=os.getpid())
        with prog, m, attach_uprobe(prog, "libc.so.6", "getppid", legacy=True):
            removed = remove_stale_events()
            assert f"pybpf/{mine}" in removed
            assert len(own_events("uprobe")) == 1  # a live process's event stays
    finally:
        perf.remove_probe_event("uprobe", "pybpf", mine)
    assert not any(mine in e for e in perf.probe_events("uprobe"))
