"""Instruction constructors that read like the assembly they build.

A register object's width picks the instruction class: ``R1``..``R10`` build 64-bit (ALU64/JMP) instructions,
``W1``..``W10`` 32-bit ones (ALU/JMP32).  An ``int`` operand selects the immediate (BPF_K) form, a register the
register (BPF_X) form.  A ``str`` jump/call target or map is kept as the instruction's ``reference`` and
resolved by :class:`~pybpf.asm.Instructions`.  Labels: ``exit().with_symbol("out")``.
"""
from __future__ import annotations

from ..errors import AsmError
from ..sys.abi import (
    BPF_ABS, BPF_ADD, BPF_ALU, BPF_ALU64, BPF_AND, BPF_ARSH, BPF_ATOMIC, BPF_CMPXCHG, BPF_DIV, BPF_END, BPF_FETCH,
    BPF_IND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JLE, BPF_JLT, BPF_JMP, BPF_JMP32, BPF_JNE, BPF_JSET, BPF_JSGE, BPF_JSGT,
    BPF_JSLE, BPF_JSLT, BPF_K, BPF_LD, BPF_LDX, BPF_LOAD_ACQ, BPF_LSH, BPF_MEM, BPF_MEMSX, BPF_MOD, BPF_MOV, BPF_MUL,
    BPF_NEG, BPF_OR, BPF_PSEUDO_BTF_ID, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE, BPF_PSEUDO_MAP_VALUE, BPF_RSH, BPF_ST, BPF_STORE_REL, BPF_STX,
    BPF_SUB, BPF_TO_BE, BPF_TO_LE, BPF_X, BPF_XCHG, BPF_XOR,
)
from .instruction import Instruction
from .opcodes import BITS_SIZE, CALL, CALLX, EXIT, GOTOL, JA, LD_IMM64, MAY_GOTO, MOVSX_BITS, SWAP_BITS, helper_ids


class Register:
    """A register operand: number 0-10 and width (64 for ``rN``, 32 for the ``wN`` view)."""

    __slots__ = ("num", "bits")

    def __init__(self, num: int, bits: int = 64) -> None:
        if not 0 <= num <= 10 or bits not in (32, 64):
            raise AsmError(f"no register {num} of {bits} bits")
        self.num, self.bits = num, bits

    @property
    def w(self) -> Register:
        """The 32-bit view of this register."""
        return Register(self.num, 32)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Register) and (self.num, self.bits) == (other.num, other.bits)

    def __hash__(self) -> int:
        return hash((self.num, self.bits))

    def __repr__(self) -> str:
        return f"{'r' if self.bits == 64 else 'w'}{self.num}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (Register(i) for i in range(11))
W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10 = (Register(i, 32) for i in range(11))

Operand = Register | int
Target = str | int

_S32 = 1 << 31


def _imm32(value: int) -> int:
    if not -_S32 <= value < 1 << 32:
        raise AsmError(f"immediate {value} does not fit 32 bits")
    return (value & 0xFFFFFFFF) - ((value & _S32) << 1)


def _imm64(value: int) -> int:
    if not -(1 << 63) <= value < 1 << 64:
        raise AsmError(f"immediate {value} does not fit 64 bits")
    return (value & (1 << 64) - 1) - ((value & 1 << 63) << 1)


def _reg(value: Register, bits: int | None = None) -> int:
    if not isinstance(value, Register):
        raise AsmError(f"expected a register, not {value!r}")
    if bits is not None and value.bits != bits:
        raise AsmError(f"expected a {bits}-bit register, not {value!r}")
    return value.num


def _alu(op: int, dst: Register, src: Operand, off: int = 0, jump: bool = False) -> Instruction:
    if jump:
        cls = BPF_JMP if dst.bits == 64 else BPF_JMP32
    else:
        cls = BPF_ALU64 if dst.bits == 64 else BPF_ALU
    if isinstance(src, Register):
        return Instruction(cls | op | BPF_X, _reg(dst), _reg(src, dst.bits), off)
    return Instruction(cls | op | BPF_K, _reg(dst), off=off, imm=_imm32(src))


def add(dst: Register, src: Operand) -> Instruction:
    """``dst += src``."""
    return _alu(BPF_ADD, dst, src)


def sub(dst: Register, src: Operand) -> Instruction:
    """``dst -= src``."""
    return _alu(BPF_SUB, dst, src)


def mul(dst: Register, src: Operand) -> Instruction:
    """``dst *= src``."""
    return _alu(BPF_MUL, dst, src)


def div(dst: Register, src: Operand) -> Instruction:
    """``dst /= src`` (unsigned)."""
    return _alu(BPF_DIV, dst, src)


def sdiv(dst: Register, src: Operand) -> Instruction:
    """``dst s/= src`` (signed, cpu v4)."""
    return _alu(BPF_DIV, dst, src, 1)


def mod(dst: Register, src: Operand) -> Instruction:
    """``dst %= src`` (unsigned)."""
    return _alu(BPF_MOD, dst, src)


def smod(dst: Register, src: Operand) -> Instruction:
    """``dst s%= src`` (signed, cpu v4)."""
    return _alu(BPF_MOD, dst, src, 1)


def or_(dst: Register, src: Operand) -> Instruction:
    """``dst |= src``."""
    return _alu(BPF_OR, dst, src)


def and_(dst: Register, src: Operand) -> Instruction:
    """``dst &= src``."""
    return _alu(BPF_AND, dst, src)


def xor(dst: Register, src: Operand) -> Instruction:
    """``dst ^= src``."""
    return _alu(BPF_XOR, dst, src)


def lsh(dst: Register, src: Operand) -> Instruction:
    """``dst <<= src``."""
    return _alu(BPF_LSH, dst, src)


def rsh(dst: Register, src: Operand) -> Instruction:
    """``dst >>= src`` (logical)."""
    return _alu(BPF_RSH, dst, src)


def arsh(dst: Register, src: Operand) -> Instruction:
    """``dst s>>= src`` (arithmetic)."""
    return _alu(BPF_ARSH, dst, src)


def mov(dst: Register, src: Operand) -> Instruction:
    """``dst = src`` (a 32-bit immediate; use :func:`ld_imm64` for wider constants)."""
    return _alu(BPF_MOV, dst, src)


def movsx(dst: Register, src: Register, bits: int) -> Instruction:
    """``dst = (s8|s16|s32)src``: move sign-extending the low ``bits`` (cpu v4)."""
    ins = _alu(BPF_MOV, dst, src, bits)
    if bits not in MOVSX_BITS[ins.code & 0x07]:
        raise AsmError(f"cannot sign-extend from {bits} bits into {dst!r}")
    return ins


def neg(dst: Register) -> Instruction:
    """``dst = -dst``."""
    return Instruction((BPF_ALU64 if dst.bits == 64 else BPF_ALU) | BPF_NEG | BPF_K, _reg(dst))


def _swap(code: int, dst: Register, bits: int) -> Instruction:
    if bits not in SWAP_BITS:
        raise AsmError(f"byte swaps are 16, 32 or 64 bits wide, not {bits}")
    return Instruction(code, _reg(dst), imm=bits)


def le(dst: Register, bits: int) -> Instruction:
    """``dst = le16|le32|le64 dst``: convert from little endian (truncates on a little-endian machine)."""
    return _swap(BPF_ALU | BPF_END | BPF_TO_LE, dst, bits)


def be(dst: Register, bits: int) -> Instruction:
    """``dst = be16|be32|be64 dst``: convert from big endian."""
    return _swap(BPF_ALU | BPF_END | BPF_TO_BE, dst, bits)


def bswap(dst: Register, bits: int) -> Instruction:
    """``dst = bswap16|32|64 dst``: unconditional byte swap (cpu v4)."""
    return _swap(BPF_ALU64 | BPF_END | BPF_TO_LE, dst, bits)


def addr_space_cast(dst: Register, src: Register, dst_as: int, src_as: int) -> Instruction:
    """``dst = addr_space_cast(src, dst_as, src_as)``: convert a pointer between address spaces (arena)."""
    return Instruction(BPF_ALU64 | BPF_MOV | BPF_X, _reg(dst, 64), _reg(src, 64), 1,
                       _imm32((dst_as & 0xFFFF) << 16 | src_as & 0xFFFF))


# --- jumps and calls ------------------------------------------------------------------------------------


def _jump(code: int, target: Target, field: str = "off") -> Instruction:
    if isinstance(target, str):
        return Instruction(code, reference=target)
    if field == "off":
        return Instruction(code, off=target)
    return Instruction(code, imm=_imm32(target))


def ja(target: Target) -> Instruction:
    """``goto target``: a label or a slot offset relative to the next instruction."""
    return _jump(JA, target)


goto = ja


def gotol(target: Target) -> Instruction:
    """``gotol target``: a jump with a 32-bit offset (cpu v4)."""
    return _jump(GOTOL, target, "imm")


def may_goto(target: Target) -> Instruction:
    """``may_goto target``: jump when the kernel's loop budget is spent."""
    return _jump(MAY_GOTO, target)


def _cond(op: int, dst: Register, src: Operand, target: Target) -> Instruction:
    ins = _alu(op, dst, src, jump=True)
    if isinstance(target, str):
        ins.reference = target
    else:
        ins.off = target
    return ins


def jeq(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst == src goto target``."""
    return _cond(BPF_JEQ, dst, src, target)


def jne(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst != src goto target``."""
    return _cond(BPF_JNE, dst, src, target)


def jgt(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst > src goto target`` (unsigned)."""
    return _cond(BPF_JGT, dst, src, target)


def jge(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst >= src goto target`` (unsigned)."""
    return _cond(BPF_JGE, dst, src, target)


def jlt(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst < src goto target`` (unsigned)."""
    return _cond(BPF_JLT, dst, src, target)


def jle(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst <= src goto target`` (unsigned)."""
    return _cond(BPF_JLE, dst, src, target)


def jsgt(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst s> src goto target``."""
    return _cond(BPF_JSGT, dst, src, target)


def jsge(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst s>= src goto target``."""
    return _cond(BPF_JSGE, dst, src, target)


def jslt(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst s< src goto target``."""
    return _cond(BPF_JSLT, dst, src, target)


def jsle(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst s<= src goto target``."""
    return _cond(BPF_JSLE, dst, src, target)


def jset(dst: Register, src: Operand, target: Target) -> Instruction:
    """``if dst & src goto target``."""
    return _cond(BPF_JSET, dst, src, target)


def call(helper: int | str) -> Instruction:
    """``call helper``: a kernel helper by id or by name (``"bpf_map_lookup_elem"``)."""
    if isinstance(helper, str):
        ident = helper_ids().get(helper)
        if ident is None:
            raise AsmError(f"no helper named {helper!r} (use call_func for bpf-to-bpf calls)")
        helper = ident
    return Instruction(CALL, imm=_imm32(helper))


def call_func(target: Target) -> Instruction:
    """A bpf-to-bpf call of a function symbol, or by a slot offset relative to the next instruction."""
    if isinstance(target, str):
        return Instruction(CALL, src=BPF_PSEUDO_CALL, imm=-1, reference=target)
    return Instruction(CALL, src=BPF_PSEUDO_CALL, imm=_imm32(target))


def call_kfunc(kfunc: Target, btf_fd_index: int = 0) -> Instruction:
    """A kernel function call, by name (resolved at load) or by BTF id (``btf_fd_index`` picks module BTF)."""
    if isinstance(kfunc, str):
        return Instruction(CALL, src=BPF_PSEUDO_KFUNC_CALL, off=btf_fd_index, reference=kfunc)
    return Instruction(CALL, src=BPF_PSEUDO_KFUNC_CALL, off=btf_fd_index, imm=_imm32(kfunc))


def callx(reg: Register) -> Instruction:
    """``callx reg``: llvm's indirect call through a register."""
    return Instruction(CALLX, _reg(reg, 64))


def exit() -> Instruction:  # noqa: A001 - the instruction's name
    """``exit``: return r0 to the caller."""
    return Instruction(EXIT)


# --- memory ---------------------------------------------------------------------------------------------


def load(dst: Register, base: Register, off: int = 0, bits: int = 64, signed: bool = False) -> Instruction:
    """``dst = *(u<bits> *)(base + off)``; ``signed`` sign-extends (``s8``/``s16``/``s32``, cpu v4)."""
    size = BITS_SIZE.get(bits)
    if size is None or (signed and bits == 64) or (bits == 64 and dst.bits == 32):
        raise AsmError(f"cannot load {'s' if signed else 'u'}{bits} into {dst!r}")
    return Instruction(BPF_LDX | (BPF_MEMSX if signed else BPF_MEM) | size, _reg(dst), _reg(base, 64), off)


def store(base: Register, off: int, value: Operand, bits: int = 64) -> Instruction:
    """``*(u<bits> *)(base + off) = value`` (a register or a 32-bit immediate)."""
    size = BITS_SIZE.get(bits)
    if size is None:
        raise AsmError(f"cannot store {bits} bits")
    if isinstance(value, Register):
        return Instruction(BPF_STX | BPF_MEM | size, _reg(base, 64), _reg(value), off)
    return Instruction(BPF_ST | BPF_MEM | size, _reg(base, 64), off=off, imm=_imm32(value))


def _atomic(op: int, base: Register, off: int, src: Register) -> Instruction:
    return Instruction(BPF_STX | BPF_ATOMIC | BITS_SIZE[src.bits], _reg(base, 64), _reg(src), off, op)


def atomic_add(base: Register, off: int, src: Register, fetch: bool = False) -> Instruction:
    """``lock *(u64 *)(base + off) += src`` (32-bit with a ``wN`` source); ``fetch`` returns the old value in
    ``src``."""
    return _atomic(BPF_ADD | (BPF_FETCH if fetch else 0), base, off, src)


def atomic_or(base: Register, off: int, src: Register, fetch: bool = False) -> Instruction:
    """``lock *(u64 *)(base + off) |= src``; ``fetch`` returns the old value in ``src``."""
    return _atomic(BPF_OR | (BPF_FETCH if fetch else 0), base, off, src)


def atomic_and(base: Register, off: int, src: Register, fetch: bool = False) -> Instruction:
    """``lock *(u64 *)(base + off) &= src``; ``fetch`` returns the old value in ``src``."""
    return _atomic(BPF_AND | (BPF_FETCH if fetch else 0), base, off, src)


def atomic_xor(base: Register, off: int, src: Register, fetch: bool = False) -> Instruction:
    """``lock *(u64 *)(base + off) ^= src``; ``fetch`` returns the old value in ``src``."""
    return _atomic(BPF_XOR | (BPF_FETCH if fetch else 0), base, off, src)


def xchg(base: Register, off: int, src: Register) -> Instruction:
    """``src = xchg(base + off, src)``: swap memory and register atomically."""
    return _atomic(BPF_XCHG, base, off, src)


def cmpxchg(base: Register, off: int, src: Register) -> Instruction:
    """``r0 = cmpxchg(base + off, r0, src)``: store ``src`` if memory equals r0; r0 gets the old value."""
    return _atomic(BPF_CMPXCHG, base, off, src)


def _ordered_size(bits: int, reg: Register, what: str) -> int:
    size = BITS_SIZE.get(bits)
    if size is None or (bits == 64 and reg.bits == 32):
        raise AsmError(f"cannot {what} u{bits} with {reg!r}")
    return size


def load_acquire(dst: Register, base: Register, off: int = 0, bits: int = 64) -> Instruction:
    """``dst = load_acquire((u<bits> *)(base + off))``: no later memory access moves before this load (cpu v4,
    Linux 6.15+); narrower loads zero-extend."""
    size = _ordered_size(bits, dst, "load_acquire")
    return Instruction(BPF_STX | BPF_ATOMIC | size, _reg(dst), _reg(base, 64), off, BPF_LOAD_ACQ)


def store_release(base: Register, off: int, src: Register, bits: int = 64) -> Instruction:
    """``store_release((u<bits> *)(base + off), src)``: no earlier memory access moves after this store (cpu v4,
    Linux 6.15+)."""
    size = _ordered_size(bits, src, "store_release")
    return Instruction(BPF_STX | BPF_ATOMIC | size, _reg(base, 64), _reg(src), off, BPF_STORE_REL)


def ld_abs(bits: int, offset: int) -> Instruction:
    """``r0 = *(u<bits> *)skb[offset]`` (legacy packet access, socket filters)."""
    return Instruction(BPF_LD | BPF_ABS | BITS_SIZE[bits], imm=_imm32(offset))


def ld_ind(bits: int, src: Register, offset: int = 0) -> Instruction:
    """``r0 = *(u<bits> *)skb[src + offset]`` (legacy packet access)."""
    return Instruction(BPF_LD | BPF_IND | BITS_SIZE[bits], src=_reg(src, 64), imm=_imm32(offset))


# --- 64-bit immediates ----------------------------------------------------------------------------------


def ld_imm64(dst: Register, value: int) -> Instruction:
    """``dst = value ll``: a 64-bit constant."""
    return Instruction(LD_IMM64, _reg(dst, 64), imm=_imm64(value))


def _pseudo(src: int, dst: Register, value: Target, high: int = 0) -> Instruction:
    if isinstance(value, str):
        return Instruction(LD_IMM64, _reg(dst, 64), src, imm=_imm64(high << 32), reference=value)
    return Instruction(LD_IMM64, _reg(dst, 64), src, imm=_imm64(high << 32 | value & 0xFFFFFFFF))


def ld_map_fd(dst: Register, map: Target) -> Instruction:  # noqa: A002
    """``dst = map[map] ll``: a map by name (resolved at load) or by fd."""
    return _pseudo(BPF_PSEUDO_MAP_FD, dst, map)


def ld_map_value(dst: Register, map: Target, offset: int = 0) -> Instruction:  # noqa: A002
    """``dst = map_value[map + offset] ll``: the address of a map's value (array maps, global data)."""
    return _pseudo(BPF_PSEUDO_MAP_VALUE, dst, map, offset & 0xFFFFFFFF)


def ld_map_idx(dst: Register, index: int) -> Instruction:
    """A map by its index in the program's fd array (``BPF_PSEUDO_MAP_IDX``)."""
    return _pseudo(BPF_PSEUDO_MAP_IDX, dst, index)


def ld_map_idx_value(dst: Register, index: int, offset: int = 0) -> Instruction:
    """A map value by the map's fd-array index (``BPF_PSEUDO_MAP_IDX_VALUE``)."""
    return _pseudo(BPF_PSEUDO_MAP_IDX_VALUE, dst, index, offset & 0xFFFFFFFF)


def ld_btf_id(dst: Register, ksym: Target) -> Instruction:
    """The address of a kernel variable: by name (resolved at load) or by BTF id (``BPF_PSEUDO_BTF_ID``)."""
    return _pseudo(BPF_PSEUDO_BTF_ID, dst, ksym)


def ld_func(dst: Register, func: Target) -> Instruction:
    """``dst = func[func] ll``: a function's address (callbacks), by symbol or relative slot offset."""
    return _pseudo(BPF_PSEUDO_FUNC, dst, func)
