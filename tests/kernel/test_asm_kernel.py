"""Programs written with pybpf.asm run in the kernel with the results the instruction set defines."""
from __future__ import annotations

import os

import pytest
from conftest import kernel_skip

from pybpf.asm import R0, R1, R6, R10, Instructions, add, assemble, call_func, exit, mov, parse, store

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
