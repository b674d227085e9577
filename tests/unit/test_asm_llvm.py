"""Differential tests against llvm-mc-19 and llvm-objdump-19: for every opcode, with hypothesis-drawn operands,
our bytes equal llvm-mc's, our text equals llvm-objdump's, and bytes -> text -> bytes is the identity.

Each test batches hundreds of instructions into one llvm invocation."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from asm_strategies import ALL_CODES, LLVM_CODES, instructions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.asm import Instruction, Instructions, assemble, disassemble, format_instruction

LLVM_MC = shutil.which("llvm-mc-19")
OBJDUMP = shutil.which("llvm-objdump-19")
pytestmark = pytest.mark.skipif(not (LLVM_MC and OBJDUMP), reason="llvm-mc-19/llvm-objdump-19 not installed "
                                "(apt install llvm-19)")

_LINE = re.compile(r"^\s*\d+:\t(.*?)(?: <[^<>\s]+>)?$")


def llvm_assemble(text: str, tmp: Path) -> tuple[bytes, list[str]]:
    """llvm-mc-19's bytes for ``text`` and llvm-objdump-19's text of them."""
    src, obj = tmp / "t.s", tmp / "t.o"
    src.write_text(text)
    subprocess.run([LLVM_MC, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj", str(src), "-o", str(obj)],
                   check=True, capture_output=True, text=True)
    from elftools.elf.elffile import ELFFile

    with obj.open("rb") as f:
        code = ELFFile(f).get_section_by_name(".text").data()
    dump = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", "--mcpu=v4", str(obj)], check=True,
                          capture_output=True, text=True).stdout
    lines = [m[1] for m in map(_LINE.match, dump.splitlines()) if m]
    return code, lines


def check_against_llvm(batch: list[Instruction], tmp: Path) -> None:
    ours = Instructions(batch).encode()
    text = disassemble(ours)
    theirs, dumped = llvm_assemble("\n".join(text) + "\n", tmp)
    assert len(dumped) == len(batch)
    for ins, line, dumped_line in zip(batch, text, dumped):
        assert line == dumped_line, f"{ins!r}: ours {line!r}, llvm-objdump {dumped_line!r}"
    assert ours == theirs, next(
        f"{a!r} {format_instruction(a)!r}: ours {a.encode().hex()}, llvm-mc {b.encode().hex()}"
        for a, b in zip(Instructions.decode(ours), Instructions.decode(theirs)) if a != b)
    assert assemble("\n".join(text)) == ours


_BATCH = settings(max_examples=10, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
#: One instruction of every opcode byte, each with drawn operands.
EVERY_OPCODE = st.tuples(*(instructions(code) for code in LLVM_CODES))


@_BATCH
@given(EVERY_OPCODE)
def test_every_opcode_matches_llvm(tmp_path: Path, batch: tuple[Instruction, ...]) -> None:
    check_against_llvm(list(batch), tmp_path)


@_BATCH
@given(st.lists(instructions(), min_size=100, max_size=300))
def test_random_programs_match_llvm(tmp_path: Path, batch: list[Instruction]) -> None:
    check_against_llvm(batch, tmp_path)


def test_llvm_spellings_assemble_identically(tmp_path: Path) -> None:
    """llvm-mc's own input spellings (decimal, ``r`` destinations of narrow loads, ``call name``-less forms)."""
    text = """
        r0 = 1
        w1 += w2
        r1 -= 5
        w1 s/= w2
        r1 s%= 3
        r1 = -r1
        r1 = (s32)r2
        w1 = (s16)w2
        if r1 > r2 goto +3
        if w1 s< -7 goto -1
        if r1 & 0xffffffff goto +0
        goto 2
        gotol -5
        may_goto +4
        call 1
        callx r1
        exit
        r1 = 0x1234 ll
        r1 = 0xffffffffffffffff ll
        r1 = 0xffffffff
        w1 = 2147483648
        lock *(u64 *)(r1 + 0) += r2
        lock *(u32 *)(r1 + 8) |= w2
        lock *(u64 *)(r1 - 8) &= r2
        lock *(u64 *)(r1 + 0) ^= r2
        r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)
        w2 = atomic_fetch_xor((u32 *)(r1 + 0), w2)
        r2 = xchg_64(r1 + 0, r2)
        w2 = xchg32_32(r1 + 0, w2)
        r0 = cmpxchg_64(r1 + 0, r0, r2)
        w0 = cmpxchg32_32(r1 + 0, w0, w2)
        r0 = be16 r0
        r0 = le64 r0
        r0 = bswap32 r0
        r0 = *(s32 *)(r1 + 4)
        r0 = *(u8 *)(r1 - 4)
        r0 = *(u32 *)(r1 + 32767)
        w0 = *(u16 *)(r1 - 32768)
        *(u32 *)(r10 - 8) = r1
        *(u8 *)(r10 - 8) = w1
        *(u64 *)(r10 - 8) = 5
        *(u16 *)(r10 - 8) = -5
        r0 = *(u8 *)skb[5]
        r0 = *(u16 *)skb[r1]
        r1 <<= 3
        r1 s>>= 3
        w1 ^= 1
        r1 = 010
        r1=r2
        ld_pseudo r1, 1, 7
        ld_pseudo r1, 2, 0xffffffff
        r1 = addr_space_cast(r2, 1, 0)
    """
    theirs, _ = llvm_assemble(text, tmp_path)
    assert assemble(text) == theirs


@settings(max_examples=40, deadline=None)
@given(st.tuples(*(instructions(code, llvm=False) for code in ALL_CODES)))
def test_bytes_text_bytes_identity_with_extensions(batch: tuple[Instruction, ...]) -> None:
    """Forms llvm cannot spell (pseudo calls, kfuncs, ld_imm64 payloads, skb[rN + imm], 32-bit gotol) still
    round-trip through our own text."""
    code = Instructions(batch).encode()
    assert assemble("\n".join(disassemble(code))) == code
    assert assemble("\n".join(disassemble(code, helpers=True))) == code
