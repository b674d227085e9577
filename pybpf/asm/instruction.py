"""The one instruction type (:class:`Instruction`) and the instruction sequence that resolves symbolic references
and counts slot offsets (:class:`Instructions`)."""
from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from ..errors import AsmError, LinkError
from ..sys.abi import (
    BPF_CALL, BPF_EXIT, BPF_JMP, BPF_JMP32, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL,
    BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE, BPF_PSEUDO_MAP_VALUE,
)
from .opcodes import CALL, EXIT, GOTOL, LD_IMM64, VALID_CODES

_SLOT = struct.Struct("<BBhI")
_WIDE = struct.Struct("<BBhIBBhI")
_MAP_SOURCES = frozenset({BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE})
_S32 = 1 << 31
_S64 = 1 << 63


def _signed32(value: int) -> int:
    return (value & 0xFFFFFFFF) - ((value & _S32) << 1)


class Instruction:
    """One eBPF instruction: its fields plus metadata that stays symbolic until load.

    ``imm`` is signed 32-bit, except for ``ld_imm64`` where it holds the whole 64-bit constant (for a map value
    load: the value offset in the upper half, the map fd in the lower).  ``symbol`` is a name defined here (label,
    function entry), ``reference`` a name used here (jump/call target, map, function, kfunc, extern); ``line``,
    ``func`` and ``core`` are opaque to the assembler (line info, BTF FUNC, CO-RE relocation).
    """

    __slots__ = ("code", "dst", "src", "off", "imm", "symbol", "reference", "line", "func", "core")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0, *,
                 symbol: str | None = None, reference: str | None = None,
                 line: Any = None, func: Any = None, core: Any = None) -> None:
        self.code, self.dst, self.src, self.off, self.imm = code, dst, src, off, imm
        self.symbol, self.reference, self.line, self.func, self.core = symbol, reference, line, func, core

    # --- shape -------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Slots this instruction takes: 2 for ``ld_imm64``, else 1."""
        return 2 if self.code == LD_IMM64 else 1

    @property
    def is_ld_imm64(self) -> bool:
        """A 64-bit immediate load (two slots), whatever its pseudo source."""
        return self.code == LD_IMM64

    @property
    def is_load_map(self) -> bool:
        """An ``ld_imm64`` of a map (fd, value, idx or idx value)."""
        return self.code == LD_IMM64 and self.src in _MAP_SOURCES

    @property
    def is_load_func(self) -> bool:
        """An ``ld_imm64`` of a function's address (``BPF_PSEUDO_FUNC``)."""
        return self.code == LD_IMM64 and self.src == BPF_PSEUDO_FUNC

    @property
    def is_call(self) -> bool:
        """Any ``call`` with an immediate target: helper, bpf-to-bpf or kfunc."""
        return self.code == CALL

    @property
    def is_helper_call(self) -> bool:
        """A call of a kernel helper by id (``src`` = 0)."""
        return self.code == CALL and self.src == 0

    @property
    def is_pseudo_call(self) -> bool:
        """A bpf-to-bpf call (``src`` = BPF_PSEUDO_CALL, ``imm`` = relative slot offset)."""
        return self.code == CALL and self.src == BPF_PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        """A kernel function call (``src`` = BPF_PSEUDO_KFUNC_CALL, ``imm`` = BTF id)."""
        return self.code == CALL and self.src == BPF_PSEUDO_KFUNC_CALL

    @property
    def is_jump(self) -> bool:
        """A branch within the program (``goto``, ``gotol``, ``may_goto``, conditional jumps); not call/exit."""
        return self.code & 0x07 in (BPF_JMP, BPF_JMP32) and self.code & 0xF0 not in (BPF_CALL, BPF_EXIT)

    @property
    def is_exit(self) -> bool:
        """The ``exit`` instruction."""
        return self.code == EXIT

    # --- bytes -------------------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The 8 (or 16, for ``ld_imm64``) little-endian bytes of this instruction, numbers as they are now."""
        if not (0 <= self.dst <= 15 and 0 <= self.src <= 15 and 0 <= self.code <= 255):
            raise AsmError(f"register or opcode out of range in {self!r}")
        if not -0x8000 <= self.off <= 0x7FFF:
            raise AsmError(f"offset {self.off} does not fit 16 bits in {self!r}")
        regs = self.src << 4 | self.dst
        imm = self.imm
        if self.code == LD_IMM64:
            if not -_S64 <= imm < 1 << 64:
                raise AsmError(f"immediate {imm} does not fit 64 bits in {self!r}")
            return _WIDE.pack(self.code, regs, self.off, imm & 0xFFFFFFFF, 0, 0, 0, (imm >> 32) & 0xFFFFFFFF)
        if not -_S32 <= imm < 1 << 32:
            raise AsmError(f"immediate {imm} does not fit 32 bits in {self!r}")
        return _SLOT.pack(self.code, regs, self.off, imm & 0xFFFFFFFF)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> Instruction:
        """The instruction starting at byte ``offset`` of ``data``; raises :class:`AsmError` if it is malformed."""
        return _decode_at(memoryview(data).cast("B"), offset)

    # --- values ------------------------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Instruction:
        """A copy with the given fields changed (``ins.replace(imm=3, reference=None)``)."""
        new = Instruction.__new__(Instruction)
        for name in Instruction.__slots__:
            setattr(new, name, changes.pop(name) if name in changes else getattr(self, name))
        if changes:
            raise TypeError(f"Instruction has no field {next(iter(changes))!r}")
        return new

    def with_symbol(self, name: str) -> Instruction:
        """Define the label or function ``name`` at this instruction; returns the instruction itself."""
        self.symbol = name
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instruction):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in Instruction.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        meta = "".join(f", {n}={getattr(self, n)!r}" for n in Instruction.__slots__[5:] if getattr(self, n) is not None)
        return (f"Instruction(code=0x{self.code:02x}, dst={self.dst}, src={self.src}, off={self.off}, "
                f"imm={self.imm}{meta})")

    def __str__(self) -> str:
        from .disasm import format_instruction

        try:
            return format_instruction(self)
        except AsmError:
            return repr(self)


def _decode_at(view: memoryview, offset: int) -> Instruction:
    slot = offset // 8
    if offset % 8 or offset < 0 or offset + 8 > len(view):
        raise AsmError(f"no whole instruction at byte {offset} of {len(view)} bytes (slot {slot})")
    code, regs, off, imm = _SLOT.unpack_from(view, offset)
    if code not in VALID_CODES:
        raise AsmError(f"unknown opcode 0x{code:02x} at slot {slot}", token=bytes(view[offset:offset + 8]).hex(" "))
    if code == LD_IMM64:
        if offset + 16 > len(view):
            raise AsmError(f"ld_imm64 at slot {slot} is truncated: its second slot is missing")
        code2, regs2, off2, hi = _SLOT.unpack_from(view, offset + 8)
        if code2 or regs2 or off2:
            raise AsmError(f"ld_imm64 at slot {slot} has a malformed second slot (opcode, registers and offset "
                           "must be 0)", token=bytes(view[offset + 8:offset + 16]).hex(" "))
        value = hi << 32 | imm
        return Instruction(code, regs & 0xF, regs >> 4, off, value - ((value & _S64) << 1))
    return Instruction(code, regs & 0xF, regs >> 4, off, _signed32(imm))


def decode(data: bytes | bytearray | memoryview) -> Instructions:
    """Decode raw little-endian instructions into :class:`Instructions` (``ld_imm64`` is one instruction).

    Raises :class:`AsmError` for a length that is not a multiple of 8, a truncated ``ld_imm64`` or an unknown
    opcode."""
    view = memoryview(data).cast("B")
    if len(view) % 8:
        raise AsmError(f"{len(view)} bytes is not a whole number of 8-byte instructions")
    out = Instructions()
    append = out.append
    offset = 0
    end = len(view)
    while offset < end:
        ins = _decode_at(view, offset)
        append(ins)
        offset += 16 if ins.code == LD_IMM64 else 8
    return out


class Instructions(list[Instruction]):
    """A sequence of :class:`Instruction` that resolves references to symbols defined inside it.

    Offsets are counted in 8-byte slots, here and nowhere else: :meth:`offsets` gives each instruction's slot,
    :meth:`symbol_offsets` each symbol's, and :meth:`encode` turns references into numbers."""

    decode = staticmethod(decode)

    def offsets(self) -> list[int]:
        """The slot offset of each instruction (an ``ld_imm64`` takes two slots)."""
        out = []
        slot = 0
        for ins in self:
            out.append(slot)
            slot += 2 if ins.code == LD_IMM64 else 1
        return out

    @property
    def slots(self) -> int:
        """The total length in 8-byte slots."""
        return sum(2 if ins.code == LD_IMM64 else 1 for ins in self)

    def symbol_offsets(self) -> dict[str, int]:
        """Each symbol defined here -> its slot offset; raises :class:`AsmError` if one is defined twice."""
        out: dict[str, int] = {}
        slot = 0
        for ins in self:
            if ins.symbol is not None:
                if ins.symbol in out:
                    raise AsmError(f"symbol {ins.symbol!r} is defined twice")
                out[ins.symbol] = slot
            slot += 2 if ins.code == LD_IMM64 else 1
        return out

    def references(self) -> set[str]:
        """Names referenced here but not defined here (maps, externs, functions of other sections)."""
        defined = {ins.symbol for ins in self if ins.symbol is not None}
        return {ins.reference for ins in self if ins.reference is not None and ins.reference not in defined}

    def resolved(self, maps: Mapping[str, int] | None = None,
                 externs: Mapping[str, int] | None = None) -> Instructions:
        """A copy where every reference became a number (metadata kept).

        Local symbols give jump offsets (``off``; ``imm`` for ``gotol``), pseudo-call and ``ld_imm64`` func
        offsets, all relative to the next slot; ``maps`` gives the fd of map loads (the lower 32 bits of ``imm``,
        a map value's offset stays in the upper); ``externs`` gives the ``imm`` of anything else (a kfunc's or
        ksym's BTF id).  Raises :class:`LinkError` naming each reference it cannot resolve."""
        symbols = self.symbol_offsets()
        out = Instructions()
        missing = []
        slot = 0
        for index, ins in enumerate(self):
            ref = ins.reference
            if ref is not None:
                try:
                    ins = resolve_reference(ins, slot, symbols, maps, externs)
                except KeyError:
                    missing.append(f"{ref!r} (instruction {index}, slot {slot})")
            out.append(ins)
            slot += 2 if ins.code == LD_IMM64 else 1
        if missing:
            raise LinkError("unresolved reference" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
        return out

    def encode(self, maps: Mapping[str, int] | None = None, externs: Mapping[str, int] | None = None) -> bytes:
        """The raw little-endian bytes with every reference resolved (see :meth:`resolved`)."""
        return b"".join(ins.encode() for ins in self.resolved(maps, externs))

    def __str__(self) -> str:
        from .disasm import format_listing

        return "\n".join(format_listing(self))

    def __repr__(self) -> str:
        return f"Instructions({list.__repr__(self)})"


def resolve_reference(ins: Instruction, slot: int, symbols: Mapping[str, int],
                      maps: Mapping[str, int] | None = None, externs: Mapping[str, int] | None = None) -> Instruction:
    """A copy of ``ins`` (at ``slot``) with its reference turned into a number: ``symbols`` maps names to slots,
    ``maps`` to fds, ``externs`` to immediates.  Raises KeyError when none defines it."""
    ref = ins.reference
    assert ref is not None
    target = symbols.get(ref)
    if target is not None:
        rel = target - slot - 1
        if ins.code == GOTOL or ins.is_pseudo_call or ins.is_load_func:
            return ins.replace(imm=rel)
        if ins.is_jump:
            if not -0x8000 <= rel <= 0x7FFF:
                raise AsmError(f"jump to {ref!r} at slot {slot} is out of range ({rel} slots); use gotol")
            return ins.replace(off=rel)
        raise LinkError(f"{ins} at slot {slot} cannot refer to the code symbol {ref!r}")
    if ins.is_load_map and maps is not None and ref in maps:
        return ins.replace(imm=(ins.imm >> 32 << 32) | (maps[ref] & 0xFFFFFFFF))
    if externs is not None and ref in externs:
        return ins.replace(imm=externs[ref])
    raise KeyError(ref)

