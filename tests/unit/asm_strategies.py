"""Hypothesis strategies for valid eBPF instructions of every opcode (shared by the test_asm_* modules)."""
from __future__ import annotations

from hypothesis import strategies as st

from pybpf.asm import Instruction
from pybpf.asm.opcodes import (
    ATOMIC_IMMS, CALL, CALLX, EXIT, GOTOL, JA, LD_IMM64, MAY_GOTO, MOVSX_BITS, ORDERED_OPS, SIZE_BITS, SWAP_BITS,
    VALID_CODES,
)
from pybpf.sys.abi import (
    BPF_ABS, BPF_ALU, BPF_ALU64, BPF_ATOMIC, BPF_DIV, BPF_END, BPF_JMP, BPF_JMP32, BPF_LD, BPF_LDX, BPF_MOD,
    BPF_MOV, BPF_NEG, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL, BPF_ST, BPF_STX, BPF_X,
)

REG = st.integers(0, 10)
OFF = st.integers(-0x8000, 0x7FFF)
IMM = st.integers(-(1 << 31), (1 << 31) - 1)
IMM64 = st.integers(-(1 << 63), (1 << 63) - 1)
ALL_CODES = sorted(VALID_CODES)
#: What llvm-mc-19 knows: not the 8/16-bit BPF_ATOMIC codes, which only load-acquire/store-release use (llvm 20+).
LLVM_CODES = [c for c in ALL_CODES if not (c & 0xE7 == BPF_ATOMIC | BPF_STX and SIZE_BITS[c & 0x18] < 32)]


@st.composite
def instructions(draw: st.DrawFn, code: int | None = None, llvm: bool = True) -> Instruction:
    """A valid instruction with text form.  ``llvm=True`` keeps to what llvm-mc-19 can assemble (no pseudo-call
    or kfunc sources, no ld_imm64 second-slot payload, no ``skb[rN + imm]``, 16-bit ``gotol``, no
    load-acquire/store-release)."""
    if code is None:
        code = draw(st.sampled_from(LLVM_CODES if llvm else ALL_CODES))
    cls = code & 0x07
    op = code & 0xF0
    dst, src, off, imm = draw(REG), draw(REG), draw(OFF), draw(IMM)
    if cls in (BPF_ALU, BPF_ALU64):
        if op == BPF_END:
            return Instruction(code, dst, imm=draw(st.sampled_from(SWAP_BITS)))
        if op == BPF_NEG:
            return Instruction(code, dst)
        x = code & BPF_X
        if op == BPF_MOV:
            if not x:
                return Instruction(code, dst, imm=imm)
            if cls == BPF_ALU64 and draw(st.booleans()):
                return Instruction(code, dst, src, 1, _s32(draw(st.integers(0, 0xFFFFFFFF))))
            return Instruction(code, dst, src, draw(st.sampled_from((0, *MOVSX_BITS[cls]))))
        off = draw(st.sampled_from((0, 1))) if op in (BPF_DIV, BPF_MOD) else 0
        return Instruction(code, dst, src if x else 0, off, 0 if x else imm)
    if cls in (BPF_JMP, BPF_JMP32):
        if code == CALL:
            sources = (0,) if llvm else (0, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL)
            source = draw(st.sampled_from(sources))
            return Instruction(code, src=source, off=off if source == BPF_PSEUDO_KFUNC_CALL else 0, imm=imm)
        if code == CALLX:
            return Instruction(code, dst)
        if code == EXIT:
            return Instruction(code)
        if code == GOTOL:
            return Instruction(code, imm=draw(OFF) if llvm else imm)
        if code in (JA, MAY_GOTO):
            return Instruction(code, off=off)
        x = code & BPF_X
        return Instruction(code, dst, src if x else 0, off, 0 if x else imm)
    if cls == BPF_LD:
        if code == LD_IMM64:
            source = draw(st.integers(0, 6))
            if source == 0:
                return Instruction(code, dst, imm=draw(IMM64))
            high = 0 if llvm else draw(st.integers(0, 0xFFFFFFFF))
            value = high << 32 | draw(st.integers(0, 0xFFFFFFFF))
            return Instruction(code, dst, source, imm=value - ((value >> 63) << 64))
        if code & 0xE0 == BPF_ABS:
            return Instruction(code, imm=imm)
        return Instruction(code, src=src, imm=0 if llvm else imm)
    if cls == BPF_LDX:
        return Instruction(code, dst, src, off)
    if cls == BPF_ST:
        return Instruction(code, dst, off=off, imm=imm)
    if code & 0xE0 == BPF_ATOMIC:
        if SIZE_BITS[code & 0x18] < 32:
            imms = ORDERED_OPS
        else:
            imms = ATOMIC_IMMS - ORDERED_OPS if llvm else ATOMIC_IMMS
        return Instruction(code, dst, src, off, draw(st.sampled_from(sorted(imms))))
    assert cls == BPF_STX
    return Instruction(code, dst, src, off)


def _s32(value: int) -> int:
    return value - ((value >> 31) << 32)
