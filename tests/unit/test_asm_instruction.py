"""Instruction/Instructions: encoding, decoding of malformed bytes, predicates and reference resolution."""
from __future__ import annotations

import struct

import pytest
from asm_strategies import instructions
from hypothesis import given
from hypothesis import strategies as st

from pybpf.asm import (
    R0, R1, Instruction, Instructions, call, call_func, call_kfunc, decode, disassemble, exit, ja, jeq, ld_func,
    ld_imm64, ld_map_fd, mov,
)
from pybpf.errors import AsmError, LinkError


@given(st.lists(instructions(llvm=False), max_size=50))
def test_decode_inverts_encode(batch: list[Instruction]) -> None:
    code = Instructions(batch).encode()
    assert decode(code) == batch
    assert len(code) == 8 * Instructions(batch).slots


@given(st.binary(max_size=64))
def test_malformed_bytes_raise_asm_error_only(data: bytes) -> None:
    try:
        disassemble(data)
    except AsmError:
        pass


@pytest.mark.parametrize(("data", "message"), [
    (b"\x95" + bytes(6), "not a whole number"),
    (b"\x18\x01" + bytes(6), "truncated"),
    (b"\x18\x01" + bytes(6) + b"\x05" + bytes(7), "second slot"),
    (b"\xff" + bytes(7), "unknown opcode 0xff"),
    (b"\x95" + bytes(7) + b"\x0d" + bytes(7), "unknown opcode 0x0d at slot 1"),
])
def test_malformed_bytes_are_named(data: bytes, message: str) -> None:
    with pytest.raises(AsmError, match=message):
        decode(data)


def test_reserved_fields_have_no_text_form() -> None:
    with pytest.raises(AsmError, match="reserved field 'imm'"):
        disassemble(struct.pack("<BBhi", 0x95, 0, 0, 1))
    assert "code=0x95" in str(Instruction(0x95, imm=1))  # str() falls back to repr


def test_single_instruction_decode_and_sizes() -> None:
    code = ld_imm64(R1, -2).encode() + exit().encode()
    assert len(code) == 24
    assert Instruction.decode(code) == ld_imm64(R1, -2)
    assert Instruction.decode(code, 16) == exit()
    with pytest.raises(AsmError):
        Instruction.decode(code, 4)
    assert ld_imm64(R1, 1).size == 2 and exit().size == 1


def test_encode_checks_ranges() -> None:
    with pytest.raises(AsmError, match="32 bits"):
        Instruction(0xB7, imm=1 << 32).encode()
    with pytest.raises(AsmError, match="16 bits"):
        Instruction(0x05, off=1 << 15).encode()
    with pytest.raises(AsmError, match="out of range"):
        Instruction(0xB7, dst=16).encode()


def test_predicates() -> None:
    assert call(1).is_helper_call and call(1).is_call and not call(1).is_pseudo_call
    assert call_func("f").is_pseudo_call and call_kfunc(5).is_kfunc_call
    assert ja(1).is_jump and jeq(R0, 0, 1).is_jump and not call(1).is_jump and not exit().is_jump
    assert exit().is_exit
    assert ld_map_fd(R1, "m").is_load_map and ld_map_fd(R1, "m").is_ld_imm64
    assert ld_func(R1, "f").is_load_func and not ld_imm64(R1, 3).is_load_map


def test_replace_and_metadata() -> None:
    ins = mov(R0, 1)
    ins.line, ins.core = ("f.c", 3), object()
    copy = ins.replace(imm=2)
    assert copy.imm == 2 and copy.line == ("f.c", 3) and copy.core is ins.core and ins.imm == 1
    with pytest.raises(TypeError):
        ins.replace(bogus=1)


def test_resolution() -> None:
    prog = Instructions([
        ld_map_fd(R1, "m"), call_func("f"), ja("end"), mov(R0, 0).with_symbol("f"), exit().with_symbol("end"),
    ])
    assert prog.references() == {"m"}
    resolved = prog.resolved(maps={"m": 9})
    assert [i.reference for i in resolved] == ["m", "f", "end", None, None]  # metadata stays
    assert (resolved[0].imm, resolved[1].imm, resolved[2].off) == (9, 1, 1)
    with pytest.raises(LinkError, match="'m'"):
        prog.encode()
    with pytest.raises(AsmError, match="defined twice"):
        Instructions([exit().with_symbol("a"), exit().with_symbol("a")]).encode()
    far = Instructions([ja("x")] + [mov(R0, 0)] * 0x8000 + [exit().with_symbol("x")])
    with pytest.raises(AsmError, match="gotol"):
        far.encode()


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, pybpf.asm; print(sorted(m for m in ('elftools', 'cffi', 'pybpf.asm.elf') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
