"""load_acquire / store_release (cpu v4 ordered accesses, Linux 6.15+, llvm 20+): bytes, text, builder, errors.

llvm-19, our differential oracle, does not know them, so the byte forms here are the ones llvm 20's own assembler
tests give for each width; tests/kernel/test_asm_kernel.py checks them against the kernel's verifier log."""
from __future__ import annotations

import pytest

from pybpf.asm import (
    R0, R1, R2, R3, R10, W0, W2, Instruction, Instructions, assemble, atomic_add, disassemble, format_instruction,
    load_acquire, parse, store_release,
)
from pybpf.errors import AsmError

# (text as llvm-objdump and pybpf print it, the instruction's 8 bytes)
FORMS = [
    ("w0 = load_acquire((u8 *)(r1 + 0x0))", "d310000000010000"),
    ("w0 = load_acquire((u16 *)(r1 + 0x0))", "cb10000000010000"),
    ("w0 = load_acquire((u32 *)(r1 + 0x0))", "c310000000010000"),
    ("r0 = load_acquire((u64 *)(r1 + 0x0))", "db10000000010000"),
    ("store_release((u8 *)(r1 + 0x0), w2)", "d321000010010000"),
    ("store_release((u16 *)(r1 + 0x0), w2)", "cb21000010010000"),
    ("store_release((u32 *)(r1 + 0x0), w2)", "c321000010010000"),
    ("store_release((u64 *)(r1 + 0x0), r2)", "db21000010010000"),
]


@pytest.mark.parametrize(("text", "hexbytes"), FORMS)
def test_every_width_assembles_and_disassembles(text: str, hexbytes: str) -> None:
    assert assemble(text).hex() == hexbytes
    assert disassemble(bytes.fromhex(hexbytes)) == [text]


def test_builder_gives_the_same_instructions() -> None:
    built = Instructions([
        load_acquire(W0, R1, 0, 8), load_acquire(W0, R1, 0, 16), load_acquire(W0, R1, 0, 32), load_acquire(R0, R1),
        store_release(R1, 0, W2, 8), store_release(R1, 0, W2, 16), store_release(R1, 0, W2, 32),
        store_release(R1, 0, R2),
    ])
    assert built.encode().hex() == "".join(h for _, h in FORMS)
    assert load_acquire(R3, R10, -8, 16) == parse("w3 = load_acquire((u16 *)(r10 - 8))")[0]


def test_verifier_log_spellings() -> None:
    """The kernel prints rN for every width and ``(r10 -8)``; both read back to the same bytes."""
    log = """
        4: (d3) r2 = load_acquire((u8 *)(r10 -8))
        7: (d3) store_release((u8 *)(r10 -16), r2)
        2: (db) store_release((u64 *)(r10 -8), r1)
    """
    assert assemble(log) == assemble("""
        w2 = load_acquire((u8 *)(r10 - 8))
        store_release((u8 *)(r10 - 16), w2)
        store_release((u64 *)(r10 - 8), r1)
    """)


@pytest.mark.parametrize(("text", "message"), [
    ("w0 = load_acquire((u64 *)(r1 + 0))", "rN destination"),
    ("r0 = load_acquire((s8 *)(r1 + 0))", "unsigned"),
    ("store_release((u64 *)(r1 + 0), w2)", "64-bit"),
    ("store_release((s32 *)(r1 + 0), w2)", "unsigned"),
    ("store_release((u32 *)(w1 + 0), w2)", "64-bit"),
    ("r0 = load_acquire((u32 *)(r1 + 0)", "end of line"),
])
def test_malformed_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(AsmError, match=message):
        parse(text)


def test_builder_refuses_a_narrow_register_for_64_bits() -> None:
    with pytest.raises(AsmError, match="load_acquire"):
        load_acquire(W0, R1, 0, 64)
    with pytest.raises(AsmError, match="store_release"):
        store_release(R1, 0, W2)
    with pytest.raises(AsmError, match="store_release"):
        store_release(R1, 0, R2, 12)


def test_narrow_atomics_other_than_the_ordered_ones_have_no_text() -> None:
    """8/16-bit BPF_ATOMIC exists only for load_acquire/store_release: ``lock *(u8 *)... += `` is malformed."""
    add8 = Instruction(atomic_add(R1, 0, W2).code & ~0x18 | 0x10, 1, 2, 0, atomic_add(R1, 0, W2).imm)
    with pytest.raises(AsmError, match="8-bit atomic"):
        format_instruction(add8)
    with pytest.raises(AsmError, match="32 or 64 bits"):
        parse("lock *(u8 *)(r1 + 0) += w2")
