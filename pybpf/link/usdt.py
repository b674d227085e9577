"""USDT probes (SystemTap SDT ``.note.stapsdt`` notes) for programs built with libbpf's ``<bpf/usdt.bpf.h>``.

The header compiles two maps into the object: ``__bpf_usdt_specs`` (ARRAY of ``struct __bpf_usdt_spec``: where
each argument lives) and ``__bpf_usdt_ip_to_spec_id`` (only read on kernels without BPF cookies).  Attaching
reads the binary's notes, turns each probe's argument string into a spec stored in ``__bpf_usdt_specs``, and
puts a uprobe on every location of the probe with the spec's index as BPF cookie; a semaphore is counted by
the kernel (uprobe ``ref_ctr_offset``), which is what enables probes guarded by ``PROVIDER_NAME_ENABLED()``.

Pure file reading up to the attach; pyelftools is imported on first use.
"""
from __future__ import annotations

import errno as _errno
import os
import re
import struct
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Mapping

from ..errors import BTFError, ELFError, LinkError, NotFound, NotSupported, ParseError
from .base import Link, LinkGroup
from .elfsym import open_elf, resolve_binary

if TYPE_CHECKING:
    from ..maps.map import Map
    from ..program import Program

SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"
_NOTE_NAME = b"stapsdt"
_NT_STAPSDT = 3
MAX_ARGS = 12  # BPF_USDT_MAX_ARG_CNT in usdt.bpf.h

# enum __bpf_usdt_arg_type
ARG_CONST, ARG_REG, ARG_REG_DEREF = 0, 1, 2

# struct __bpf_usdt_arg_spec { __u64 val_off; enum arg_type; short reg_off; bool arg_signed; char arg_bitshift; }
_ARG_SPEC = struct.Struct("<QIh?b")
# struct __bpf_usdt_spec { args[12]; __u64 usdt_cookie; short arg_cnt; } (padded to 8)
_SPEC_TAIL = struct.Struct("<Qh6x")
SPEC_SIZE = MAX_ARGS * _ARG_SPEC.size + _SPEC_TAIL.size

# x86-64 register names (64/32/16/8-bit) -> the member of the kernel's struct pt_regs holding the register
_X86_REGS = {
    "ip": ("rip", "eip"), "ax": ("rax", "eax", "ax", "al"), "bx": ("rbx", "ebx", "bx", "bl"),
    "cx": ("rcx", "ecx", "cx", "cl"), "dx": ("rdx", "edx", "dx", "dl"), "si": ("rsi", "esi", "si", "sil"),
    "di": ("rdi", "edi", "di", "dil"), "bp": ("rbp", "ebp", "bp", "bpl"), "sp": ("rsp", "esp", "sp", "spl"),
    **{f"r{n}": (f"r{n}", f"r{n}d", f"r{n}w", f"r{n}b") for n in range(8, 16)},
}
REGISTER_MEMBERS = {name: member for member, names in _X86_REGS.items() for name in names}

_CONST = re.compile(r"(-?\d+)@\$(-?\d+)")
_REG = re.compile(r"(-?\d+)@%(\w+)")
_DEREF = re.compile(r"(-?\d+)@(-?\d+)?\(%(\w+)\)")


@dataclass(frozen=True)
class UsdtNote:
    """One USDT probe location of an ELF file, addresses adjusted for prelink (``.stapsdt.base``)."""

    provider: str
    name: str
    address: int  # virtual address of the probe instruction
    base: int  # link-time address of .stapsdt.base recorded in the note (0: none)
    semaphore: int  # virtual address of the semaphore (0: none)
    args: str  # the argument string ("8@%rbx -4@%eax")
    offset: int  # file offset of the probe instruction (what the uprobe takes)
    semaphore_offset: int  # file offset of the semaphore (the uprobe's ref_ctr_offset; 0: none)


@dataclass(frozen=True)
class UsdtArg:
    """Where one USDT argument lives, as ``struct __bpf_usdt_arg_spec`` records it."""

    kind: int  # ARG_CONST, ARG_REG or ARG_REG_DEREF
    val_off: int  # the constant, or the offset added to the register before reading memory
    reg_off: int  # offset of the register in struct pt_regs (0 for constants)
    signed: bool
    size: int  # 1, 2, 4 or 8 bytes

    @property
    def bitshift(self) -> int:
        """``64 - size * 8``: the bits bpf_usdt_arg() clears (or sign-extends) above the value."""
        return 64 - self.size * 8


def _note_strings(desc: bytes, where: str) -> tuple[str, str, str]:
    parts = desc.split(b"\0")
    if len(parts) < 4 or not parts[1]:
        raise ELFError(f"{where}: malformed stapsdt note (expected provider, name and arguments strings)")
    args = parts[2].decode(errors="replace")
    return parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), "" if args.startswith(":") else args


def read_notes(path: str) -> list[UsdtNote]:
    """Every USDT probe of ELF file ``path`` (its ``.note.stapsdt`` notes), in file order."""
    f, elf = open_elf(path)
    try:
        try:
            if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
                raise ELFError(f"{path}: USDT probes live in executables and shared objects, not {elf['e_type']}")
            sec = elf.get_section_by_name(".note.stapsdt")
            if sec is None:
                return []
            base_sec = elf.get_section_by_name(".stapsdt.base")
            base_addr = base_sec["sh_addr"] if base_sec is not None else 0
            segments = [(s["p_vaddr"], s["p_vaddr"] + s["p_memsz"], s["p_offset"], bool(s["p_flags"] & 1))
                        for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
            data = sec.data()
            endian = "<" if elf.little_endian else ">"
            addr_size = elf.elfclass // 8
        except (KeyError, ValueError, AttributeError, OSError) as e:
            raise ELFError(f"{path}: malformed ELF headers ({e})") from None
    finally:
        f.close()
    notes: list[UsdtNote] = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        pos = desc_at + (descsz + 3) // 4 * 4
        if desc_at + descsz > len(data):
            raise ELFError(f"{path}: .note.stapsdt note at byte {name_at - 12} runs past the section")
        if data[name_at:name_at + namesz].rstrip(b"\0") != _NOTE_NAME or ntype != _NT_STAPSDT:
            continue
        desc = data[desc_at:desc_at + descsz]
        where = f"{path}: stapsdt note at byte {name_at - 12}"
        if descsz < 3 * addr_size + 3:
            raise ELFError(f"{where}: {descsz}-byte description is too short")
        loc, base, sema = struct.unpack_from(endian + ("QQQ" if addr_size == 8 else "III"), desc)
        provider, name, args = _note_strings(desc[3 * addr_size:], where)
        if base_addr and base:  # prelinked: the section moved, the note kept the link-time address
            loc += base_addr - base
        offset = _file_offset(segments, loc, True, f"{where}: {provider}:{name} at {loc:#x}")
        sema_off = _file_offset(segments, sema, False, f"{where}: semaphore of {provider}:{name} at {sema:#x}") \
            if sema else 0
        notes.append(UsdtNote(provider, name, loc, base, sema, args, offset, sema_off))
    return notes


def _file_offset(segments: list[tuple[int, int, int, bool]], addr: int, code: bool, what: str) -> int:
    for start, end, offset, executable in segments:
        if start <= addr < end:
            if executable != code:
                raise ELFError(f"{what}: lies in {'a data' if code else 'an executable'} segment "
                               f"[{start:#x}, {end:#x})")
            return addr - start + offset
    raise ELFError(f"{what}: in no loadable segment")


@lru_cache(maxsize=1)
def pt_regs_offsets() -> dict[str, int]:
    """Register name (``rax``, ``eax``, ``ax``, ``al``, ``r12d``...) -> offset in the kernel's struct pt_regs,
    read from the kernel's BTF (x86-64 only)."""
    from ..btf import kernel

    if os.uname().machine != "x86_64":
        raise NotSupported("USDT arguments", _errno.EOPNOTSUPP, os.uname().machine,
                           hint="pybpf parses x86-64 USDT argument strings only")
    try:
        btf = kernel.vmlinux()
        return {name: btf.field("pt_regs", member).byte_offset for name, member in REGISTER_MEMBERS.items()}
    except (BTFError, OSError) as e:
        raise NotSupported("USDT arguments", _errno.ENOENT, "struct pt_regs",
                           hint=f"the register layout comes from the kernel's BTF, which could not be read ({e})"
                           ) from None


def parse_args(text: str, where: str = "", regs: Mapping[str, int] | None = None) -> list[UsdtArg]:
    """Parse a USDT argument string (``"8@%rbp -4@%eax -4@112(%rsp) 4@$5"``); ``regs`` maps register names
    to pt_regs offsets (default: :func:`pt_regs_offsets`)."""
    prefix = f"{where}: " if where else ""
    tokens = text.split()
    if len(tokens) > MAX_ARGS:
        raise ParseError(f"{prefix}{len(tokens)} USDT arguments in {text!r}: at most {MAX_ARGS} are supported")
    args = []
    for i, token in enumerate(tokens):
        bad = f"{prefix}USDT argument #{i} {token!r} (in {text!r})"
        m_const, m_reg, m_deref = _CONST.fullmatch(token), _REG.fullmatch(token), _DEREF.fullmatch(token)
        if m_const:
            size_text, kind, val, reg = m_const.group(1), ARG_CONST, int(m_const.group(2)), None
        elif m_reg:
            size_text, kind, val, reg = m_reg.group(1), ARG_REG, 0, m_reg.group(2)
        elif m_deref:
            size_text, kind, val, reg = m_deref.group(1), ARG_REG_DEREF, int(m_deref.group(2) or 0), m_deref.group(3)
        else:
            raise ParseError(f"{bad}: unsupported form (supported: SIZE@$CONST, SIZE@%REG, SIZE@OFF(%REG); "
                             "indexed addressing like OFF(%REG,%REG,SCALE) is not)")
        size = int(size_text)
        if abs(size) not in (1, 2, 4, 8):
            raise ParseError(f"{bad}: size {size} (expected 1, 2, 4 or 8, negative when signed)")
        reg_off = 0
        if reg is not None:
            table = regs if regs is not None else pt_regs_offsets()
            if reg not in table:
                raise ParseError(f"{bad}: unknown register %{reg}")
            reg_off = table[reg]
        if not -(1 << 63) <= val < 1 << 64:
            raise ParseError(f"{bad}: value {val} does not fit in 64 bits")
        args.append(UsdtArg(kind, val, reg_off, size < 0, abs(size)))
    return args


def encode_spec(args: list[UsdtArg], cookie: int = 0) -> bytes:
    """The ``struct __bpf_usdt_spec`` bytes for ``args`` and user cookie ``cookie``."""
    if len(args) > MAX_ARGS:
        raise ParseError(f"{len(args)} USDT arguments: at most {MAX_ARGS} are supported")
    if not 0 <= cookie < 1 << 64:
        raise ValueError(f"usdt cookie {cookie} is not a 64-bit unsigned value")
    out = bytearray(SPEC_SIZE)
    for i, a in enumerate(args):
        _ARG_SPEC.pack_into(out, i * _ARG_SPEC.size, a.val_off & (1 << 64) - 1, a.kind, a.reg_off, a.signed,
                            a.bitshift)
    _SPEC_TAIL.pack_into(out, MAX_ARGS * _ARG_SPEC.size, cookie, len(args))
    return bytes(out)


class _SpecIds:
    """Which indexes of one ``__bpf_usdt_specs`` map are in use (ids of closed USDT links are reused)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.next = 0
        self.free: list[int] = []

    def take(self, what: str) -> int:
        if self.free:
            return self.free.pop()
        if self.next >= self.capacity:
            raise LinkError(f"{what}: all {self.capacity} entries of {SPECS_MAP} are in use "
                            "(define BPF_USDT_MAX_SPEC_CNT larger before including usdt.bpf.h)")
        self.next += 1
        return self.next - 1


_spec_ids: weakref.WeakKeyDictionary[Map, _SpecIds] = weakref.WeakKeyDictionary()


def _specs_map(prog: Program, specs: Map | None) -> Map:
    if specs is None:
        specs = prog.object_maps.get(SPECS_MAP)
        if specs is None:
            raise LinkError(f"program {prog.name!r} has no {SPECS_MAP} map: USDT programs include <bpf/usdt.bpf.h> "
                            "and come from a loaded object (pybpf.load), or pass specs=the object's map")
    if specs.value_size != SPEC_SIZE or specs.key_size != 4:
        raise LinkError(f"map {specs.name!r} is not {SPECS_MAP} as usdt.bpf.h declares it: key/value "
                        f"{specs.key_size}/{specs.value_size} bytes, expected 4/{SPEC_SIZE}")
    return specs


def attach_usdt(prog: Program, binary: str, provider: str, name: str, *, pid: int = -1, cookie: int = 0,
                specs: Map | None = None) -> LinkGroup:
    """Attach a USDT program (``SEC("usdt")``, using ``<bpf/usdt.bpf.h>``) to every location of probe
    ``provider:name`` in ``binary``; ``bpf_usdt_cookie()`` returns ``cookie``.

    ``pid`` limits the probe to one process (-1: all).  The program's object provides the ``__bpf_usdt_specs``
    map (or pass it as ``specs``).  Closing the returned Link removes every uprobe."""
    from ..loader.object import write_slot
    from ..sys import probes
    from .uprobe import attach_uprobe

    path = resolve_binary(binary, pid if pid > 0 else None)
    target = f"{path}:{provider}:{name}"
    notes = [n for n in read_notes(path) if n.provider == provider and n.name == name]
    if not notes:
        raise NotFound("attach usdt", _errno.ENOENT, f"no USDT probe {provider}:{name} in {path}",
                       hint="list a binary's probes with `pybpf inspect --usdt BINARY`")
    spec_map = _specs_map(prog, specs)
    if not probes.feature("bpf_cookie"):
        raise NotSupported("attach usdt", _errno.EOPNOTSUPP, target,
                           hint="pybpf's USDT support needs BPF cookies (Linux 5.15+)")
    specs_by_args = {n.args: parse_args(n.args, f"{path}: {provider}:{name}") for n in notes}
    ids = _spec_ids.setdefault(spec_map, _SpecIds(spec_map.max_entries))
    taken: dict[str, int] = {}
    links: list[Link] = []

    def release() -> None:
        ids.free.extend(taken.values())

    try:
        for args_text, args in specs_by_args.items():
            taken[args_text] = ids.take(target)
            write_slot(spec_map, taken[args_text], encode_spec(args, cookie))
        for n in notes:
            links.append(attach_uprobe(prog, path, None, n.offset, pid=pid, ref_ctr_offset=n.semaphore_offset,
                                       cookie=taken[n.args]))
    except BaseException:
        for lk in links:
            lk.close()
        release()
        raise
    return LinkGroup(links, "usdt", target=target, cleanup=release)
