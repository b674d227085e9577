"""Stack-trace maps: a raw tracepoint program run through BPF_PROG_TEST_RUN records its own kernel stack and
the calling (Python) thread's user stack with bpf_get_stackid; the addresses are symbolised through
/proc/kallsyms and the process's ELF files."""
from __future__ import annotations

import pytest

import pybpf
from pybpf.maps.map import Map
from pybpf.maps.symbols import KernelSymbols, ProcessSymbols, kernel_symbols
from pybpf.sys import abi

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

GET_STACKID = """
    r2 = map[stacks] ll
    r3 = %d
    call bpf_get_stackid
    exit
"""


def _stack_id(stacks: Map, flags: int) -> int:
    with pybpf.Program.load(GET_STACKID % flags, "raw_tracepoint", maps={"stacks": stacks}) as prog:
        sid = prog.test_run().retval
    assert sid < 1 << 31, f"bpf_get_stackid failed: {sid - (1 << 32)}"
    return sid


def test_kernel_stack_symbolised() -> None:
    syms = kernel_symbols()
    if not syms.available:
        pytest.skip("/proc/kallsyms hides addresses (kptr_restrict)")
    with Map.create("stack_trace", 4, 8 * 127, 64, name="t_stacks") as stacks:
        sid = _stack_id(stacks, 0)
        frames = stacks.stack(sid)
        assert frames and all(f >= 1 << 63 for f in frames)  # kernel addresses
        names = stacks.stack_symbols(sid)
        assert any("bpf_prog_test_run" in n or "__sys_bpf" in n for n in names), names
        assert stacks[sid][:len(frames)] == tuple(frames)  # the raw value: a tuple of 127 addresses
        del stacks[sid]
        with pytest.raises(KeyError):
            stacks.stack(sid)


def test_user_stack_symbolised() -> None:
    import os

    with Map.create("stack_trace", 4, 8 * 127, 64) as stacks:
        sid = _stack_id(stacks, abi.BPF_F_USER_STACK)
        frames = stacks.stack(sid)
        assert frames and all(f < 1 << 47 for f in frames)
        names = stacks.stack_symbols(sid, pid=os.getpid())
        # the innermost frame is the syscall instruction inside libc (reached through cffi/libffi)
        assert "syscall" in names[0] and "libc" in names[0], names


def test_build_id_stack() -> None:
    with Map.create("stack_trace", 4, 32 * 16, 16, abi.BPF_F_STACK_BUILD_ID) as stacks:
        sid = _stack_id(stacks, abi.BPF_F_USER_STACK)
        frames = stacks.stack(sid)
        assert frames and all(f.status in (abi.BPF_STACK_BUILD_ID_VALID, abi.BPF_STACK_BUILD_ID_IP)
                              for f in frames)
        assert any(f.status == abi.BPF_STACK_BUILD_ID_VALID and len(f.build_id) == 20 for f in frames)


def test_symbol_tables_directly(tmp_path: object) -> None:
    import os

    path = os.path.join(str(tmp_path), "kallsyms")
    with open(path, "w") as f:
        f.write("ffffffff81000000 T _stext\nffffffff81000100 t helper\nffffffffc0000000 t mod_fn\t[mymod]\n"
                "0000000000000000 A fixed_percpu_data\n")
    ks = KernelSymbols(path)
    assert ks(0xFFFFFFFF81000104) == "helper+0x4" and ks(0xFFFFFFFFC0000010) == "mod_fn+0x10 [mymod]"
    assert ks(0x1000) == "0x1000"
    me = ProcessSymbols(os.getpid())
    import ctypes

    addr = ctypes.cast(ctypes.CDLL(None).getpid, ctypes.c_void_p).value
    loc = me.resolve(addr)
    assert loc is not None and loc.name.endswith("getpid") and loc.offset == 0 and "libc" in loc.module
