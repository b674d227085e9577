"""Tables derived from the kernel's opcode constants (:mod:`pybpf.sys.abi`): which opcode bytes exist, and the
operator spelling of each ALU/jump operation in the assembly syntax llvm and the kernel print."""
from __future__ import annotations

import functools

from ..sys.abi import (
    BPF_ABS, BPF_ADD, BPF_ALU, BPF_ALU64, BPF_AND, BPF_ARSH, BPF_ATOMIC, BPF_B, BPF_CALL, BPF_CMPXCHG, BPF_DIV,
    BPF_DW, BPF_END, BPF_EXIT, BPF_FETCH, BPF_H, BPF_IMM, BPF_IND, BPF_JA, BPF_JCOND, BPF_JEQ, BPF_JGE, BPF_JGT,
    BPF_JLE, BPF_JLT, BPF_JMP, BPF_JMP32, BPF_JNE, BPF_JSET, BPF_JSGE, BPF_JSGT, BPF_JSLE, BPF_JSLT, BPF_K, BPF_LD,
    BPF_LDX, BPF_LOAD_ACQ, BPF_LSH, BPF_MEM, BPF_MEMSX, BPF_MOD, BPF_MOV, BPF_MUL, BPF_NEG, BPF_OR, BPF_RSH,
    BPF_ST, BPF_STORE_REL, BPF_STX, BPF_SUB, BPF_W, BPF_X, BPF_XCHG, BPF_XOR,
)

#: Compound-assignment operator of each two-operand ALU operation (``r1 += r2``).
ALU_OPS: dict[int, str] = {
    BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=", BPF_LSH: "<<=",
    BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_ARSH: "s>>=",
}
#: ALU operations whose ``off`` = 1 selects the signed variant (``s/=``, ``s%=``).
SIGNED_ALU_OPS: dict[int, str] = {BPF_DIV: "s/=", BPF_MOD: "s%="}
#: Comparison operator of each conditional jump (``if r1 s< r2 goto``).
JMP_OPS: dict[int, str] = {
    BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&", BPF_JNE: "!=", BPF_JSGT: "s>", BPF_JSGE: "s>=",
    BPF_JLT: "<", BPF_JLE: "<=", BPF_JSLT: "s<", BPF_JSLE: "s<=",
}
#: Operator of each non-fetching atomic operation (``lock *(u64 *)(r1 + 0) += r2``), by the ``imm`` of BPF_ATOMIC.
ATOMIC_OPS: dict[int, str] = {BPF_ADD: "+=", BPF_OR: "|=", BPF_AND: "&=", BPF_XOR: "^="}
#: Name of each fetching atomic operation (``atomic_fetch_add``), by the ``imm`` of BPF_ATOMIC.
ATOMIC_FETCH_OPS: dict[int, str] = {
    BPF_ADD | BPF_FETCH: "add", BPF_OR | BPF_FETCH: "or", BPF_AND | BPF_FETCH: "and", BPF_XOR | BPF_FETCH: "xor",
}
#: The ``imm`` of the ordered accesses of cpu v4, load-acquire and store-release (Linux 6.15+, llvm 20+; llvm-19
#: has neither).  Unlike the read-modify-write atomics they come in all four widths.
ORDERED_OPS = frozenset({BPF_LOAD_ACQ, BPF_STORE_REL})
#: Every ``imm`` a 32/64-bit BPF_ATOMIC instruction may carry (8/16-bit ones: only :data:`ORDERED_OPS`).
ATOMIC_IMMS = frozenset({*ATOMIC_OPS, *ATOMIC_FETCH_OPS, BPF_XCHG, BPF_CMPXCHG, *ORDERED_OPS})
#: Access width in bits of each BPF_SIZE value, and back.
SIZE_BITS: dict[int, int] = {BPF_B: 8, BPF_H: 16, BPF_W: 32, BPF_DW: 64}
BITS_SIZE: dict[int, int] = {bits: size for size, bits in SIZE_BITS.items()}
#: Valid ``off`` of a sign-extending register move (``r1 = (s8)r2``) per class.
MOVSX_BITS: dict[int, tuple[int, ...]] = {BPF_ALU: (8, 16), BPF_ALU64: (8, 16, 32)}
#: Valid ``imm`` (bit width) of a byte swap.
SWAP_BITS = (16, 32, 64)

LD_IMM64 = BPF_LD | BPF_IMM | BPF_DW
CALL = BPF_JMP | BPF_CALL
CALLX = BPF_JMP | BPF_CALL | BPF_X  # llvm's indirect call, register in dst
EXIT = BPF_JMP | BPF_EXIT
JA = BPF_JMP | BPF_JA
GOTOL = BPF_JMP32 | BPF_JA
MAY_GOTO = BPF_JMP | BPF_JCOND


def _valid_codes() -> frozenset[int]:
    codes = {LD_IMM64, CALL, CALLX, EXIT, JA, GOTOL, MAY_GOTO}
    for cls in (BPF_ALU, BPF_ALU64):
        for op in (*ALU_OPS, BPF_MOV):
            codes |= {cls | op | BPF_K, cls | op | BPF_X}
        codes.add(cls | BPF_NEG | BPF_K)
    codes |= {BPF_ALU | BPF_END | BPF_K, BPF_ALU | BPF_END | BPF_X, BPF_ALU64 | BPF_END | BPF_K}
    for cls in (BPF_JMP, BPF_JMP32):
        for op in JMP_OPS:
            codes |= {cls | op | BPF_K, cls | op | BPF_X}
    for size in SIZE_BITS:
        codes |= {BPF_LDX | BPF_MEM | size, BPF_ST | BPF_MEM | size, BPF_STX | BPF_MEM | size}
        if size != BPF_DW:
            codes |= {BPF_LD | BPF_ABS | size, BPF_LD | BPF_IND | size, BPF_LDX | BPF_MEMSX | size}
        codes.add(BPF_STX | BPF_ATOMIC | size)  # 8/16 bits: load-acquire and store-release only
    return frozenset(codes)


#: Every opcode byte of the instruction set (cpu v1-v4 plus llvm's ``callx``); anything else is malformed.
VALID_CODES = _valid_codes()


@functools.cache
def helper_ids() -> dict[str, int]:
    """Every helper by its C name (``bpf_map_lookup_elem``) -> its id, from the kernel's ``enum bpf_func_id``."""
    from ..sys import abi

    return {"bpf_" + name[len("BPF_FUNC_"):]: getattr(abi, name) for name in abi._ENUMS["bpf_func_id"]
            if name not in ("BPF_FUNC_unspec", "__BPF_FUNC_MAX_ID")}


@functools.cache
def helper_names() -> dict[int, str]:
    """Every helper id -> its C name; the inverse of :func:`helper_ids`."""
    return {value: name for name, value in helper_ids().items()}
