"""Programs written with pybpf.asm run in the kernel with the results the instruction set defines."""
from __future__ import annotations

import os
import re

import pytest
from conftest import kernel_skip

from pybpf.asm import R0, R1, R6, R10, Instructions, add, assemble, call_func, exit, mov, parse, store
from pybpf.sys.abi import BPF_ATOMIC, BPF_STX

pytestmark = pytest.mark.kernel

CPU_V4 = """
    call add100                          # bpf-to-bpf call
    r7 = r0
    r0 = 0
    r2 = -7
    r2 s/= 2                             # -3
    r0 += r2
    r3 = 0x1ff
    r3 = (s8)r3                          # -1
    r0 += r3
    r4 = 0x1234
    r4 = bswap16 r4                      # 0x3412
    r0 += r4
    *(u64 *)(r10 - 8) = 5
    r5 = 3
    r5 = atomic_fetch_add((u64 *)(r10 - 8), r5)
    r6 = *(u64 *)(r10 - 8)
    r0 += r5                             # + 5
    r0 += r6                             # + 8
    gotol skip                           # 32-bit jump forward...
back:
    r0 += r7                             # + 100
    exit
skip:
    r6 = *(s32 *)(r10 - 8)
    goto back                            # ...and back
add100:
    r0 = 100
    exit
"""


@pytest.fixture
def program_cls():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        kernel_skip("needs root for BPF_PROG_LOAD")
    from pybpf.program import Program

    return Program


def test_cpu_v4_program_runs(program_cls) -> None:  # type: ignore[no-untyped-def]
    with program_cls.load(assemble(CPU_V4), "xdp") as prog:
        assert prog.test_run(bytes(64)).retval == (-3 - 1 + 0x3412 + 5 + 8 + 100) & 0xFFFFFFFF


def test_builder_program_with_subprogram_runs(program_cls) -> None:  # type: ignore[no-untyped-def]
    insns = Instructions([
        store(R10, -8, 40, bits=64), call_func("f"), add(R0, 2), exit(),
        mov(R6, R1).with_symbol("f"), mov(R0, 40), exit(),
    ])
    assert insns == parse("""
        *(u64 *)(r10 - 8) = 40
        call f
        r0 += 2
        exit
    f:  r6 = r1
        r0 = 40
        exit
    """)
    with program_cls.load(insns, "xdp") as prog:
        assert prog.test_run(bytes(64)).retval == 42


ORDERED = """
    r1 = 0x1122334455667788 ll
    store_release((u64 *)(r10 - 8), r1)
    r0 = load_acquire((u64 *)(r10 - 8))
    w2 = load_acquire((u8 *)(r10 - 8))
    w3 = load_acquire((u16 *)(r10 - 8))
    w4 = load_acquire((u32 *)(r10 - 8))
    store_release((u8 *)(r10 - 16), w2)
    store_release((u8 *)(r10 - 15), w2)
    store_release((u16 *)(r10 - 14), w3)
    store_release((u32 *)(r10 - 12), w4)
    r5 = *(u64 *)(r10 - 16)
    r6 = 0x5566778877888888 ll
    if r0 != r1 goto fail
    if r2 != 0x88 goto fail                # narrow loads zero-extend
    if r3 != 0x7788 goto fail
    if r4 != 0x55667788 goto fail
    if r5 != r6 goto fail
    r0 = 0x600d
    exit
fail:
    r0 = 1
    exit
"""


@pytest.mark.feature("load_acquire")
def test_load_acquire_and_store_release_match_the_kernel(program_cls) -> None:  # type: ignore[no-untyped-def]
    """Every width of the ordered accesses runs as defined, and the kernel's own disassembly of each (the verifier
    log) assembles back to our bytes."""
    from pybpf.sys import probes

    if not probes.feature("load_acquire"):
        kernel_skip("this kernel has no load-acquire/store-release (Linux 6.15+)", "load_acquire")
    code = assemble(ORDERED)
    with program_cls.load(code, "socket_filter", log_level=2) as prog:
        assert prog.test_run(bytes(64)).retval == 0x600D
        log = prog.verifier_log
    # "2: (db) store_release((u64 *)(r10 -8), r1)    ; R1=..." once per instruction in the first pass
    lines = {int(m[2]): m[1] for m in re.finditer(r"^((\d+): \(\w\w\) [^;\n]*_(?:acquire|release)\(.*?\))\s*(?:;|$)",
                                                    log, re.M)}
    slots = [i for i in range(0, len(code) // 8) if code[i * 8] & 0xE7 == BPF_STX | BPF_ATOMIC]
    assert sorted(lines) == slots and len(slots) == ORDERED.count("_acquire(") + ORDERED.count("_release("), log
    for slot, text in lines.items():
        assert assemble(text) == code[slot * 8:slot * 8 + 8], text
