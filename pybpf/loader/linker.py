"""Linking: a program plus the ``.text`` functions it uses, laid out exactly as libbpf lays them out.

libbpf (``bpf_object__reloc_code``) walks a program's instructions; at the first call (or callback address) of
a function not yet appended, it appends that function at the end and walks it recursively before going on.
The kernel's translated instructions of a pybpf-loaded program are therefore identical to libbpf's.  Calls
stay symbolic (``reference`` = function name, ``symbol`` on each function's first instruction); offsets are
counted by :class:`~pybpf.asm.Instructions` when encoding.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import LinkError

if TYPE_CHECKING:
    from ..asm import Instructions
    from .spec import Line, ObjectSpec, ProgramSpec


class LinkedProgram:
    """A program's final instruction layout (references still symbolic) and its BTF.ext records."""

    __slots__ = ("name", "instructions", "functions")

    def __init__(self, name: str, instructions: Instructions, functions: list[str]):
        self.name = name
        self.instructions = instructions
        self.functions = functions  # the program, then each appended function, in layout order

    def func_info(self) -> list[tuple[int, int]]:
        """(instruction slot, BTF FUNC id) per function, or [] when any function lacks one (as libbpf drops
        func_info whole when the main program's is missing)."""
        out = [(slot, ins.func) for slot, ins in zip(self.instructions.offsets(), self.instructions)
               if ins.func is not None]
        if not out or out[0][0] != 0:
            return []
        return out

    def line_info(self) -> list[tuple[int, Line]]:
        """(instruction slot, source line) for every instruction that has one; [] if the first has none."""
        out = [(slot, ins.line) for slot, ins in zip(self.instructions.offsets(), self.instructions)
               if ins.line is not None]
        if not out or out[0][0] != 0:
            return []
        return out


def link_program(spec: ObjectSpec, name: str) -> LinkedProgram:
    """Lay out program ``name`` of ``spec`` with every function it (transitively) calls appended."""
    from ..asm import Instructions

    prog = spec.programs.get(name)
    if prog is None:
        raise LinkError(f"{spec.name}: no program {name!r} (programs: {', '.join(spec.programs) or 'none'})")
    out = Instructions(ins.replace() for ins in prog.instructions)
    appended = [prog.name]

    def walk(fn: ProgramSpec, start: int) -> None:
        """Append, depth first, the functions ``fn`` (laid out from ``start``) uses that are not there yet."""
        for i in range(start, start + len(fn.instructions)):
            ins = out[i]
            ref = ins.reference
            if ref is None or not (ins.is_pseudo_call or ins.is_load_func) or ref in appended or ref in spec.externs:
                continue
            sub = spec.functions.get(ref)
            if sub is None:
                raise LinkError(f"{spec.name}: program {name!r} calls {ref!r}, which is not a .text function")
            appended.append(ref)
            at = len(out)
            out.extend(ins.replace() for ins in sub.instructions)
            walk(sub, at)

    walk(prog, 0)
    return LinkedProgram(name, out, appended)
