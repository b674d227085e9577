"""Assembler speed: pybpf.asm vs llvm-mc-19 on the same generated file, side by side.

    python bench/bench_asm.py [N]      # N instructions (default 100000)

Prints the time of each, the ratio, and the disassembly time of pybpf vs llvm-objdump-19."""
from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pybpf.asm import Instructions, assemble, decode, disassemble
from pybpf.asm.opcodes import CALL, GOTOL, LD_IMM64, VALID_CODES
from pybpf.sys.abi import BPF_IND, BPF_LD


def generate(n: int, seed: int = 1) -> str:
    """``n`` random valid instructions as llvm-mc text (every opcode; operands drawn at random)."""
    from pybpf.asm import Instruction, format_instruction
    from pybpf.errors import AsmError

    rng = random.Random(seed)
    codes = sorted(VALID_CODES)
    lines: list[str] = []
    while len(lines) < n:
        ins = Instruction(rng.choice(codes), rng.randrange(11), rng.randrange(11), rng.randrange(-50, 50),
                          rng.choice((0, 1, 8, 16, 32, 64, 0xE1, 0xF1, rng.randrange(-2**31, 2**31))))
        if ins.code in (CALL, LD_IMM64):
            ins.src = 0  # pseudo sources print as extensions llvm-mc cannot read
        elif ins.code & 0xE7 == BPF_LD | BPF_IND:
            ins.imm = 0  # llvm-mc has no skb[rN + imm]
        elif ins.code == GOTOL:
            ins.imm = ins.off  # llvm-mc reads gotol offsets as 16-bit
        try:
            lines.append(format_instruction(ins))
        except AsmError:
            continue  # reserved fields set: draw again
    return "\n".join(lines) + "\n"


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    llvm_mc, objdump = shutil.which("llvm-mc-19"), shutil.which("llvm-objdump-19")
    text = generate(n)
    with tempfile.TemporaryDirectory() as tmp:
        src, obj = Path(tmp) / "b.s", Path(tmp) / "b.o"
        src.write_text(text)
        ours = timed(lambda: assemble(text))
        code = assemble(text)
        print(f"assemble {n} instructions: pybpf {ours:.3f} s", end="")
        if llvm_mc:
            theirs = timed(lambda: subprocess.run([llvm_mc, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj",
                                                  str(src), "-o", str(obj)], check=True))
            print(f", llvm-mc-19 {theirs:.3f} s, ratio pybpf/llvm {ours / theirs:.2f}x")
        else:
            print(" (llvm-mc-19 not installed)")
        ours = timed(lambda: disassemble(code))
        print(f"disassemble: pybpf {ours:.3f} s", end="")
        if objdump and llvm_mc:
            theirs = timed(lambda: subprocess.run([objdump, "-d", "--no-show-raw-insn", "--mcpu=v4", str(obj)],
                                                  check=True, stdout=subprocess.DEVNULL))
            print(f", llvm-objdump-19 {theirs:.3f} s, ratio pybpf/llvm {ours / theirs:.2f}x")
        else:
            print()
        print(f"decode only: pybpf {timed(lambda: decode(code)):.3f} s; "
              f"encode only: {timed(lambda: Instructions(decode(code)).encode()):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
