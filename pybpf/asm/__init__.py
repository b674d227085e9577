"""The eBPF assembler and disassembler: every instruction of cpu v1-v4, as Python objects, text and bytes.

One instruction type, :class:`Instruction`, serves the builder, the text assembler, the disassembler and the ELF
reader/writer; :class:`Instructions` (a list of them) resolves labels, bpf-to-bpf calls and map references into
numbers when encoding.  Building a program in Python::

    from pybpf.asm import Instructions, R0, R1, R2, R10, mov, add, store, ld_map_fd, call, jeq, atomic_add, exit

    prog = Instructions([
        store(R10, -4, 0, bits=32),                 # *(u32 *)(r10 - 4) = 0: the key
        ld_map_fd(R1, "counts"),                    # r1 = map[counts] ll
        mov(R2, R10), add(R2, -4),                  # r2 = &key
        call("bpf_map_lookup_elem"),
        jeq(R0, 0, "out"),                          # if r0 == 0 goto out
        mov(R1, 1), atomic_add(R0, 0, R1),          # lock *(u64 *)(r0 + 0) += r1
        mov(R0, 0).with_symbol("out"),
        exit(),
    ])
    code = prog.encode(maps={"counts": map_fd})

The same program as text (llvm-mc's syntax, see :mod:`pybpf.asm.text` for the extensions)::

    code = assemble('''
        *(u32 *)(r10 - 4) = 0
        r1 = map[counts] ll
        r2 = r10
        r2 += -4
        call bpf_map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
    out:
        r0 = 0
        exit
    ''', maps={"counts": map_fd})

and back: ``disassemble(code)`` gives llvm-objdump-19's text, one string per instruction.
:func:`write_object` (``pybpf asm FILE.s -o FILE.o``) writes an ELF object libbpf loads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .builder import (
    R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10, Register, add,
    addr_space_cast, and_, arsh, atomic_add, atomic_and, atomic_or, atomic_xor, be, bswap, call, call_func,
    call_kfunc, callx, cmpxchg, div, exit, goto, gotol, ja, jeq, jge, jgt, jle, jlt, jne, jset, jsge, jsgt, jsle,
    jslt, ld_abs, ld_btf_id, ld_func, ld_imm64, ld_ind, ld_map_fd, ld_map_idx, ld_map_idx_value, ld_map_value, le,
    load, load_acquire, lsh, may_goto, mod, mov, movsx, mul, neg, or_, rsh, sdiv, smod, store, store_release, sub,
    xchg, xor,
)
from .disasm import disassemble, format_instruction, format_listing
from .instruction import Instruction, Instructions, decode

if TYPE_CHECKING:
    from .elf import write_object
    from .text import Assembly, MapDef, assemble, parse, parse_assembly

__all__ = [
    "Instruction", "Instructions", "decode", "disassemble", "format_instruction", "format_listing", "assemble",
    "parse", "parse_assembly", "Assembly", "MapDef", "write_object", "Register",
    "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10",
    "W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10",
    "add", "sub", "mul", "div", "sdiv", "mod", "smod", "or_", "and_", "xor", "lsh", "rsh", "arsh", "mov", "movsx",
    "neg", "le", "be", "bswap", "addr_space_cast", "ja", "goto", "gotol", "may_goto", "jeq", "jne", "jgt", "jge",
    "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset", "call", "call_func", "call_kfunc", "callx", "exit",
    "load", "store", "atomic_add", "atomic_or", "atomic_and", "atomic_xor", "xchg", "cmpxchg", "load_acquire",
    "store_release", "ld_abs", "ld_ind",
    "ld_imm64", "ld_map_fd", "ld_map_value", "ld_map_idx", "ld_map_idx_value", "ld_btf_id", "ld_func",
]


#: names whose module loads on first use: the text assembler (its regexes cost every load of an object some
#: start-up time) and the ELF writer
_LAZY = {"assemble": "text", "parse": "text", "parse_assembly": "text", "Assembly": "text", "MapDef": "text",
         "write_object": "elf"}
__getattr__ = lazy_exports(__name__, _LAZY)[0]
