"""Instructions to text, exactly as ``llvm-objdump-19 -d --no-show-raw-insn --mcpu=v4`` prints them.

Where llvm's text would lose information (a call's pseudo source, an ``ld_imm64`` value offset, an indirect
load's ``imm``) a documented extension is printed instead, so that the text assembler turns every line back into
the same bytes.  Instructions with non-zero reserved fields cannot be written as text and raise
:class:`~pybpf.errors.AsmError`.
"""
from __future__ import annotations

from collections.abc import Iterable

from ..errors import AsmError
from ..sys.abi import (
    BPF_ABS, BPF_ALU, BPF_ALU64, BPF_ATOMIC, BPF_CMPXCHG, BPF_END, BPF_JA, BPF_JMP,
    BPF_JMP32, BPF_LD, BPF_LDX, BPF_LOAD_ACQ, BPF_MEMSX, BPF_MOV, BPF_NEG, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC,
    BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_ST, BPF_STORE_REL, BPF_X, BPF_XCHG,
)
from .instruction import Instruction, decode
from .opcodes import (
    ALU_OPS, ATOMIC_FETCH_OPS, ATOMIC_OPS, CALL, CALLX, EXIT, GOTOL, JMP_OPS, LD_IMM64, MAY_GOTO, MOVSX_BITS,
    SIGNED_ALU_OPS, SIZE_BITS, SWAP_BITS, VALID_CODES, helper_names,
)


def _hex(value: int) -> str:
    return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"


def _rel(value: int) -> str:
    return f"-0x{-value:x}" if value < 0 else f"+0x{value:x}"


def _mem(base: int, off: int) -> str:
    return f"r{base} - 0x{-off:x}" if off < 0 else f"r{base} + 0x{off:x}"


def _target(ins: Instruction, value: int) -> str:
    return ins.reference if ins.reference is not None else _rel(value)


def _require_zero(ins: Instruction, *fields: str) -> None:
    for name in fields:
        if getattr(ins, name):
            raise AsmError(f"{ins!r} has a non-zero reserved field {name!r}: it has no text form")


def format_instruction(ins: Instruction, helpers: bool = False) -> str:
    """The text of one instruction (llvm-objdump's, or symbolic where ``ins.reference`` is set).

    ``helpers=True`` prints helper calls by name (``call bpf_map_lookup_elem``) instead of by number."""
    code = ins.code
    if code not in VALID_CODES:
        raise AsmError(f"unknown opcode 0x{code:02x} in {ins!r}")
    cls = code & 0x07
    if cls == BPF_ALU or cls == BPF_ALU64:
        return _format_alu(ins, cls)
    if cls == BPF_JMP or cls == BPF_JMP32:
        return _format_jmp(ins, cls, helpers)
    if cls == BPF_LD:
        return _format_ld(ins)
    bits = SIZE_BITS[code & 0x18]
    reg = "r" if bits == 64 else "w"
    if cls == BPF_LDX:
        _require_zero(ins, "imm")
        if code & 0xE0 == BPF_MEMSX:
            return f"r{ins.dst} = *(s{bits} *)({_mem(ins.src, ins.off)})"
        return f"{reg}{ins.dst} = *(u{bits} *)({_mem(ins.src, ins.off)})"
    if cls == BPF_ST:
        _require_zero(ins, "src")
        return f"*(u{bits} *)({_mem(ins.dst, ins.off)}) = {_hex(ins.imm)}"
    if code & 0xE0 == BPF_ATOMIC:
        return _format_atomic(ins, bits, reg)
    _require_zero(ins, "imm")
    return f"*(u{bits} *)({_mem(ins.dst, ins.off)}) = {reg}{ins.src}"


def _format_alu(ins: Instruction, cls: int) -> str:
    op = ins.code & 0xF0
    reg = "w" if cls == BPF_ALU else "r"
    dst = f"{reg}{ins.dst}"
    is_x = ins.code & BPF_X
    if op == BPF_END:
        _require_zero(ins, "src", "off")
        if ins.imm not in SWAP_BITS:
            raise AsmError(f"byte swap width {ins.imm} is not 16, 32 or 64 in {ins!r}")
        name = "bswap" if cls == BPF_ALU64 else "be" if is_x else "le"
        return f"r{ins.dst} = {name}{ins.imm} r{ins.dst}"
    if op == BPF_NEG:
        _require_zero(ins, "src", "off", "imm")
        return f"{dst} = -{dst}"
    if op == BPF_MOV:
        if not is_x:
            _require_zero(ins, "src", "off")
            return f"{dst} = {_hex(ins.imm)}"
        if cls == BPF_ALU64 and ins.off == 1:
            return f"{dst} = addr_space_cast(r{ins.src}, {_hex(ins.imm >> 16 & 0xFFFF)}, {_hex(ins.imm & 0xFFFF)})"
        _require_zero(ins, "imm")
        if ins.off == 0:
            return f"{dst} = {reg}{ins.src}"
        if ins.off not in MOVSX_BITS[cls]:
            raise AsmError(f"sign extension from {ins.off} bits is not defined in {ins!r}")
        return f"{dst} = (s{ins.off}){reg}{ins.src}"
    text = SIGNED_ALU_OPS[op] if ins.off == 1 and op in SIGNED_ALU_OPS else ALU_OPS[op]
    if ins.off and text == ALU_OPS[op]:
        raise AsmError(f"{ins!r} has a non-zero reserved field 'off': it has no text form")
    if is_x:
        _require_zero(ins, "imm")
        return f"{dst} {text} {reg}{ins.src}"
    _require_zero(ins, "src")
    return f"{dst} {text} {_hex(ins.imm)}"


def _format_jmp(ins: Instruction, cls: int, helpers: bool) -> str:
    code = ins.code
    if code == CALL:
        return _format_call(ins, helpers)
    if code == EXIT:
        _require_zero(ins, "dst", "src", "off", "imm")
        return "exit"
    if code == CALLX:
        _require_zero(ins, "src", "off", "imm")
        return f"callx r{ins.dst}"
    if code == GOTOL:
        _require_zero(ins, "dst", "src", "off")
        return f"gotol {_target(ins, ins.imm)}"
    if code & 0xF0 == BPF_JA or code == MAY_GOTO:
        _require_zero(ins, "dst", "src", "imm")
        return f"{'goto' if code & 0xF0 == BPF_JA else 'may_goto'} {_target(ins, ins.off)}"
    reg = "w" if cls == BPF_JMP32 else "r"
    if code & BPF_X:
        _require_zero(ins, "imm")
        operand = f"{reg}{ins.src}"
    else:
        _require_zero(ins, "src")
        operand = _hex(ins.imm)
    return f"if {reg}{ins.dst} {JMP_OPS[code & 0xF0]} {operand} goto {_target(ins, ins.off)}"


def _format_call(ins: Instruction, helpers: bool) -> str:
    _require_zero(ins, "dst")
    if ins.src == BPF_PSEUDO_KFUNC_CALL:
        if ins.reference is not None:
            return f"call kfunc({ins.reference})"
        return f"call kfunc({_hex(ins.imm)}, {_hex(ins.off)})" if ins.off else f"call kfunc({_hex(ins.imm)})"
    _require_zero(ins, "off")
    if ins.src == BPF_PSEUDO_CALL:
        return f"call {ins.reference}" if ins.reference is not None else f"call pc{_rel(ins.imm)}"
    if ins.src:
        raise AsmError(f"call with unknown pseudo source {ins.src} in {ins!r}")
    name = helper_names().get(ins.imm) if helpers else None
    return f"call {name}" if name else f"call {_hex(ins.imm)}"


def _format_ld(ins: Instruction) -> str:
    code = ins.code
    if code == LD_IMM64:
        _require_zero(ins, "off")
        return _format_ld_imm64(ins)
    bits = SIZE_BITS[code & 0x18]
    _require_zero(ins, "dst", "off")
    if code & 0xE0 == BPF_ABS:
        _require_zero(ins, "src")
        return f"r0 = *(u{bits} *)skb[{_hex(ins.imm)}]"
    if ins.imm:  # BPF_IND: llvm drops this field; print the kernel's spelling
        return f"r0 = *(u{bits} *)skb[r{ins.src} {'-' if ins.imm < 0 else '+'} 0x{abs(ins.imm):x}]"
    return f"r0 = *(u{bits} *)skb[r{ins.src}]"


def _format_ld_imm64(ins: Instruction) -> str:
    src, ref, imm = ins.src, ins.reference, ins.imm
    if ref is not None:
        if src == BPF_PSEUDO_MAP_FD:
            return f"r{ins.dst} = map[{ref}] ll"
        if src == BPF_PSEUDO_MAP_VALUE:
            off = imm >> 32
            return f"r{ins.dst} = map_value[{ref}{f' + {_hex(off)}' if off else ''}] ll"
        if src == BPF_PSEUDO_FUNC:
            return f"r{ins.dst} = func[{ref}] ll"
        low: str = ref
    elif src == 0:
        return f"r{ins.dst} = {_hex(imm)} ll"
    else:
        low = _hex(imm & 0xFFFFFFFF)
    high = (imm >> 32) & 0xFFFFFFFF
    return f"ld_pseudo\tr{ins.dst}, {_hex(src)}, {low}" + (f", {_hex(high)}" if high else "")


def _format_atomic(ins: Instruction, bits: int, reg: str) -> str:
    op = ins.imm
    if op == BPF_LOAD_ACQ:
        return f"{reg}{ins.dst} = load_acquire((u{bits} *)({_mem(ins.src, ins.off)}))"
    mem = _mem(ins.dst, ins.off)
    src = f"{reg}{ins.src}"
    if op == BPF_STORE_REL:
        return f"store_release((u{bits} *)({mem}), {src})"
    if bits < 32:
        raise AsmError(f"a {bits}-bit atomic can only be load_acquire or store_release, not operation 0x{op:x}, "
                       f"in {ins!r}")
    if op in ATOMIC_OPS:
        return f"lock *(u{bits} *)({mem}) {ATOMIC_OPS[op]} {src}"
    if op in ATOMIC_FETCH_OPS:
        return f"{src} = atomic_fetch_{ATOMIC_FETCH_OPS[op]}((u{bits} *)({mem}), {src})"
    suffix = "_64" if bits == 64 else "32_32"
    if op == BPF_XCHG:
        return f"{src} = xchg{suffix}({mem}, {src})"
    if op == BPF_CMPXCHG:
        return f"{reg}0 = cmpxchg{suffix}({mem}, {reg}0, {src})"
    raise AsmError(f"unknown atomic operation 0x{op:x} in {ins!r}")


def disassemble(code: bytes | bytearray | memoryview, helpers: bool = False) -> list[str]:
    """One line of text per instruction of ``code`` (``ld_imm64`` is one line), as llvm-objdump-19 prints it
    without address and raw bytes.  ``helpers=True`` names helper calls.  Malformed bytes raise AsmError."""
    return [format_instruction(ins, helpers) for ins in decode(code)]


def format_listing(instructions: Iterable[Instruction], helpers: bool = False) -> list[str]:
    """Text lines of ``instructions`` with their symbols as labels (``name:``) and instructions indented by a
    tab: the form :func:`pybpf.asm.parse` reads back into the same instructions."""
    out = []
    for ins in instructions:
        if ins.symbol is not None:
            out.append(f"{ins.symbol}:")
        out.append("\t" + format_instruction(ins, helpers))
    return out
