#!/usr/bin/env python3
"""Coverage-guided fuzzing of pybpf's parsers: ELF objects, BTF, BTF.ext, assembler text, instruction bytes.

    python3 tools/fuzz.py elf                          # fuzz until Ctrl-C (atheris if installed, else built-in)
    python3 tools/fuzz.py elf --runs 20000 --seed 1    # a fixed number of inputs (built-in loop: reproducible)
    python3 tools/fuzz.py btf --seconds 600 --engine atheris
    python3 tools/fuzz.py all --runs 3000              # every target, one after the other
    python3 tools/fuzz.py elf --replay tools/fuzz_corpus/elf    # every file once (regression run)
    python3 tools/fuzz.py elf --replay crash-elf-1a2b3c         # reproduce one finding, with its traceback
    python3 tools/fuzz.py seed                         # rebuild the seed files of the corpus from prebuilt/*.o
    python3 tools/fuzz.py elf --minimize /tmp/pybpf-fuzz/elf   # fold a run's new inputs into the corpus

Targets (what one input is, and what is done with it):

* ``elf``    an ELF object: ``ObjectFile`` -> every program linked and encoded -> ``format_spec`` (pybpf inspect)
* ``btf``    a raw BTF blob: ``BTF.parse`` -> every type decoded, resolved, sized, aligned -> ``validate`` ->
  ``to_bytes`` round trip -> the C dump
* ``btfext`` ``u32 len`` + ``len`` bytes of .BTF + the .BTF.ext bytes: both parsed, CO-RE records described
* ``asm``    assembler text: ``parse_assembly`` -> ``write_object`` -> ``ObjectFile`` of that object; ``assemble``
* ``insn``   instruction bytes: ``decode`` -> ``disassemble`` -> ``assemble`` of that text -> same bytes

The only exceptions allowed out of a target are ``pybpf.errors.BPFError`` subclasses with a message; anything
else (IndexError, struct.error, RecursionError, MemoryError under the address-space limit, a hang past
``--timeout``) is a finding.  Runs read the committed corpus (tools/fuzz_corpus/TARGET) and write the new inputs
they find to ``--corpus-out`` (default: pybpf-fuzz/TARGET in the temp directory); ``--minimize`` folds those
that reach new pybpf lines into the committed corpus.  Findings are saved as ``crash-TARGET-SHA1`` under
``--crashes`` (default: pybpf-fuzz/crashes in the temp directory) with the command that replays them.

Engines: ``atheris`` (libFuzzer's coverage-guided engine; ``pip install atheris``, wheels for CPython 3.11)
or ``builtin``: a coverage-guided loop of our own (line coverage of pybpf through ``sys.settrace``, inputs
that reach new lines kept in the in-memory corpus), slower but dependency-free and deterministic with
``--seed``/``--runs``.  Both use the structure-aware mutators below (ELF header, section headers, symbols,
relocations, embedded BTF/BTF.ext words, legacy map definitions; BTF type words; assembler tokens) mixed with
byte-level mutations.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tools" / "fuzz_corpus"
TARGETS = ("elf", "btf", "btfext", "asm", "insn")
WORK = Path(tempfile.gettempdir()) / "pybpf-fuzz"  # new inputs of a run (fold them in with --minimize)
CRASHES = WORK / "crashes"
MEMORY_LIMIT = 4 << 30  # RLIMIT_AS for a fuzzing process: an input needing more is a finding (MemoryError)
INPUT_TIMEOUT = 10  # seconds one input may take before it counts as a hang (a guard, not a measurement)

# --- targets -----------------------------------------------------------------------------------------------------


class Finding(Exception):
    """A target let something other than a pybpf error escape (or raised one without a message)."""


def _allowed(e: BaseException) -> bool:
    from pybpf.errors import BPFError

    return isinstance(e, BPFError) and bool(str(e).strip())


def target_elf(data: bytes) -> None:
    """Parse an ELF object, link and encode every program, format it as ``pybpf inspect`` does."""
    from pybpf.errors import BPFError
    from pybpf.loader import ObjectFile
    from pybpf.loader.format import format_spec
    from pybpf.loader.linker import link_program

    spec = ObjectFile(data)
    fds = {name: 3 for name in spec.maps}
    for name in spec.programs:
        try:
            link_program(spec, name).instructions.encode(maps=fds)
        except BPFError as e:
            _check_message(e)
    format_spec(spec)


def target_btf(data: bytes) -> None:
    """Parse raw BTF and do with it what users and the loader do."""
    from pybpf.btf import BTF
    from pybpf.btf.cdump import format_c
    from pybpf.errors import BTFError

    btf = BTF.parse(data)
    for t in btf:
        try:
            btf.resolve(t)
            btf.size_of(t)
            btf.align_of(t)
        except BTFError as e:
            _check_message(e)
    btf.validate()
    BTF.parse(btf.to_bytes())
    format_c(btf)


def split_btfext(data: bytes) -> tuple[bytes, bytes]:
    """An ``btfext`` input's two parts: (.BTF, .BTF.ext)."""
    n = int.from_bytes(data[:4], "little") if len(data) >= 4 else 0
    return data[4:4 + n], data[4 + n:]


def join_btfext(btf: bytes, ext: bytes) -> bytes:
    """The ``btfext`` input holding ``btf`` and ``ext``."""
    return len(btf).to_bytes(4, "little") + btf + ext


def target_btfext(data: bytes) -> None:
    """Parse .BTF then .BTF.ext against it; describe every CO-RE record (as ``pybpf inspect`` does)."""
    from pybpf.btf import BTF, BTFExt
    from pybpf.btf.core import describe
    from pybpf.errors import BPFError

    raw_btf, raw_ext = split_btfext(data)
    btf = BTF.parse(raw_btf)
    ext = BTFExt.parse(raw_ext, btf)
    for relos in ext.core_relos.values():
        for r in relos:
            try:
                describe(btf, r)
            except BPFError as e:
                _check_message(e)
    ext.to_bytes(btf)


def target_asm(data: bytes) -> None:
    """Assemble text into an ELF object and read that object back."""
    from pybpf.asm import assemble, parse_assembly, write_object
    from pybpf.errors import AsmError, BPFError
    from pybpf.loader import ObjectFile

    text = data.decode("utf-8", "replace")
    try:
        asm = parse_assembly(text)
    except AsmError as e:
        if e.line is None:
            raise Finding(f"an AsmError from text without a line number: {e}") from e
        raise
    try:
        obj = write_object(asm)
    except BPFError as e:
        _check_message(e)
    else:
        ObjectFile(obj)
    assemble(text, maps={name: 3 for name in asm.maps})


def target_insn(data: bytes) -> None:
    """Decode instruction bytes, disassemble them, assemble the text again: as many slots come back (the text
    cannot say every unused src/dst/off bit, so the bytes themselves may differ)."""
    from pybpf.asm import assemble, decode, disassemble

    decode(data)
    again = assemble("\n".join(disassemble(data)))
    if len(again) != len(data):
        raise Finding(f"decode -> disassemble -> assemble changed the length: {len(data)} -> {len(again)}")


TARGET_FUNCS: dict[str, Callable[[bytes], None]] = {
    "elf": target_elf, "btf": target_btf, "btfext": target_btfext, "asm": target_asm, "insn": target_insn,
}


def _check_message(e: BaseException) -> None:
    if not str(e).strip():
        raise Finding(f"{type(e).__name__} without a message") from e


def run_one(target: str, data: bytes) -> None:
    """Run one input; raise :class:`Finding` (chained to the real exception) unless all went well or a pybpf
    error with a message came out."""
    try:
        TARGET_FUNCS[target](data)
    except Finding:
        raise
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        if not _allowed(e):
            raise Finding(f"{type(e).__name__}: {e}"[:500]) from e


# --- structure-aware mutation ------------------------------------------------------------------------------------

INTERESTING32 = (0, 1, 2, 3, 4, 7, 8, 15, 16, 24, 32, 63, 64, 127, 128, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                 0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
INTERESTING64 = INTERESTING32 + (1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 8)
_SHDR = struct.Struct("<IIQQQQIIQQ")


@dataclass
class ElfLayout:
    """Where the fields of an ELF object lie, read from an intact object (mutations keep using it)."""

    fields: list[tuple[str, int, str]] = field(default_factory=list)  # (what, file offset, struct format)
    bodies: dict[str, tuple[int, int]] = field(default_factory=dict)  # section name -> (offset, size)


def elf_layout(data: bytes) -> ElfLayout | None:
    """The mutable fields of an intact little-endian ELF64 object (None if ``data`` is not one)."""
    lay = ElfLayout()
    try:
        if data[:4] != b"\x7fELF" or data[4] != 2:
            return None
        for what, off, fmt in (("e_type", 0x10, "H"), ("e_machine", 0x12, "H"), ("e_shoff", 0x28, "Q"),
                               ("e_ehsize", 0x34, "H"), ("e_shentsize", 0x3A, "H"), ("e_shnum", 0x3C, "H"),
                               ("e_shstrndx", 0x3E, "H"), ("ei_class", 4, "B"), ("ei_data", 5, "B")):
            lay.fields.append((what, off, fmt))
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        hdrs = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        stroff = hdrs[shstrndx][4]
        for i, h in enumerate(hdrs):
            name = data[stroff + h[0]:data.index(b"\0", stroff + h[0])].decode("utf-8", "replace")
            base = shoff + i * shentsize
            for fname, off, fmt in (("sh_name", 0, "I"), ("sh_type", 4, "I"), ("sh_flags", 8, "Q"),
                                    ("sh_offset", 24, "Q"), ("sh_size", 32, "Q"), ("sh_link", 40, "I"),
                                    ("sh_info", 44, "I"), ("sh_entsize", 56, "Q")):
                lay.fields.append((f"{name}.{fname}", base + off, fmt))
            if h[1] == 8 or h[4] + h[5] > len(data):  # NOBITS, or a body not in the file: header fields only
                continue
            lay.bodies[name] = (h[4], h[5])
            if h[1] == 2:  # SHT_SYMTAB: every symbol's fields
                for j in range(min(h[5] // 24, 4096)):
                    at = h[4] + j * 24
                    lay.fields += [(f"sym{j}.st_name", at, "I"), (f"sym{j}.st_info", at + 4, "B"),
                                   (f"sym{j}.st_other", at + 5, "B"), (f"sym{j}.st_shndx", at + 6, "H"),
                                   (f"sym{j}.st_value", at + 8, "Q"), (f"sym{j}.st_size", at + 16, "Q")]
            elif h[1] == 9:  # SHT_REL: offset and info of each relocation
                for j in range(min(h[5] // 16, 4096)):
                    at = h[4] + j * 16
                    lay.fields += [(f"{name}#{j}.r_offset", at, "Q"), (f"{name}#{j}.r_sym", at + 12, "I"),
                                   (f"{name}#{j}.r_type", at + 8, "I")]
            elif name == "maps":  # legacy struct bpf_map_def words
                lay.fields += [(f"maps+{k}", h[4] + k, "I") for k in range(0, min(h[5], 4096) - 3, 4)]
        for name in (".BTF", ".BTF.ext"):
            if name in lay.bodies:
                off, size = lay.bodies[name]
                lay.fields += [(f"{name}+{k}", off + k, "I") for k in range(0, min(size, 4096) - 3, 4)]
    except (struct.error, ValueError, IndexError, OverflowError):
        return None
    return lay


def _interesting(rng: random.Random, fmt: str, old: int) -> int:
    bits = struct.calcsize(fmt) * 8
    choice = rng.randrange(5)
    if choice == 0:
        v = rng.choice(INTERESTING64 if bits == 64 else INTERESTING32)
    elif choice == 1:
        v = old + rng.choice((-8, -4, -1, 1, 4, 8, 16))
    elif choice == 2:
        v = old ^ (1 << rng.randrange(bits))
    elif choice == 3:
        v = rng.randrange(1 << min(bits, 20))
    else:
        v = old * rng.choice((2, 256, 1 << 16)) + rng.randrange(4)
    return v & ((1 << bits) - 1)


def mutate_fields(data: bytearray, fields: list[tuple[str, int, str]], rng: random.Random) -> None:
    """Set one structural field to an interesting value."""
    if not fields:
        return
    _, off, fmt = rng.choice(fields)
    size = struct.calcsize(fmt)
    if off + size > len(data):
        return
    old, = struct.unpack_from("<" + fmt, data, off)
    struct.pack_into("<" + fmt, data, off, _interesting(rng, fmt, old))


def btf_fields(data: bytes, base: int = 0) -> list[tuple[str, int, str]]:
    """Every 32-bit word of a BTF blob's header and type section (at ``base`` in a larger buffer)."""
    out = [(f"hdr+{k}", base + k, "I") for k in range(4, 32, 4) if base + k + 4 <= base + len(data)]
    if len(data) >= 24 and data[:2] == b"\x9f\xeb":
        hdr_len, toff, tlen = struct.unpack_from("<I2I", data, 4)
        start = hdr_len + toff
        out += [(f"type+{k}", base + start + k, "I") for k in range(0, min(tlen, len(data) - start, 1 << 16) - 3, 4)]
    return out


def mutate_bytes(data: bytearray, rng: random.Random, corpus: list[bytes]) -> bytearray:
    """Byte-level mutations: flips, interesting words, chunk copies/removals/insertions, splices, truncation."""
    if not data:
        return bytearray(rng.randbytes(rng.randint(1, 64)))
    k = rng.randrange(7)
    n = len(data)
    if k == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(n)] = rng.randrange(256)
    elif k == 1 and n >= 4:
        pos = rng.randrange(n - 3) & ~3 if rng.random() < 0.7 else rng.randrange(n - 3)
        struct.pack_into("<I", data, pos, rng.choice(INTERESTING32))
    elif k == 2:
        a, b, size = rng.randrange(n), rng.randrange(n), rng.randint(1, 64)
        data[b:b + size] = data[a:a + size]
    elif k == 3:
        a = rng.randrange(n)
        del data[a:a + rng.randint(1, 64)]
    elif k == 4:
        a = rng.randrange(n + 1)
        data[a:a] = rng.randbytes(rng.randint(1, 16))
    elif k == 5 and corpus:
        other = rng.choice(corpus)
        cut = rng.randrange(n + 1)
        data = data[:cut] + other[rng.randrange(len(other) + 1):]
    else:
        data = data[:rng.randrange(n + 1)]
    return data


_ASM_TOKENS = ("r0", "r1", "w2", "r10", "r11", "+=", "-=", "=", "*(u64 *)(r1 + 8)", "*(u8 *)(r10 - 512)", "goto",
               "+3", "-1", "0x7fffffff", "0xffffffffffffffff", "ll", "map[m]", "map_value[m + 99999]", "call",
               "lock", "if", "s>", "<", "exit", "l:", "\n",
               ".map m, type=hash, key_size=4, value_size=8, max_entries=1", ".map m, type=ringbuf, max_entries=4096",
               "be16", "(s8)", "kfunc(x)", ")", "#",
               "//", '"', "9" * 30, ".section", ".section xdp", '.license "GPL"', ".globl f", "f:", "call f",
               "atomic_fetch_add((u64 *)(r1 + 0), r2)", "r1 = 5 ll", "may_goto", "gotol", "pc+", "call pc-10",
               "func[f]", "ld_pseudo r1, 2, 3", "12: (b7)", ".text", "\t", "\0", "\u00e9", "<f+0x8>")


def mutate_text(data: bytes, rng: random.Random) -> bytes:
    """Token-level mutations of assembler text (lines replaced, inserted, removed, cut; tokens swapped)."""
    lines = data.decode("utf-8", "replace").split("\n") or [""]
    for _ in range(rng.randint(1, 4)):
        j = rng.randrange(len(lines))
        k = rng.randrange(6)
        if k == 0:
            toks = lines[j].split(" ")
            toks[rng.randrange(len(toks))] = rng.choice(_ASM_TOKENS)
            lines[j] = " ".join(toks)
        elif k == 1:
            lines.insert(j, " ".join(rng.choice(_ASM_TOKENS) for _ in range(rng.randint(1, 6))))
        elif k == 2 and lines[j]:
            p = rng.randrange(len(lines[j]))
            ch = chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x3000))))
            lines[j] = lines[j][:p] + ch + lines[j][p + 1:]
        elif k == 3 and len(lines) > 1:
            del lines[j]
        elif k == 4:
            lines[j] = lines[j][:rng.randrange(len(lines[j]) + 1)]
        else:
            lines.insert(j, lines[rng.randrange(len(lines))])
    return "\n".join(lines).encode("utf-8", "surrogatepass")


class Mutator:
    """Structure-aware plus byte-level mutation for one target; layouts of seen inputs are cached."""

    def __init__(self, target: str, rng: random.Random):
        self.target, self.rng = target, rng
        self._layouts: dict[bytes, list[tuple[str, int, str]]] = {}

    def fields(self, data: bytes) -> list[tuple[str, int, str]]:
        """The structural fields of ``data`` for this target (cached by content)."""
        key = hashlib.sha1(data).digest()
        got = self._layouts.get(key)
        if got is None:
            if self.target == "elf":
                lay = elf_layout(data)
                got = lay.fields if lay is not None else []
            elif self.target == "btf":
                got = btf_fields(data)
            elif self.target == "btfext":
                b, e = split_btfext(data)
                got = btf_fields(b, 4) + [(f"ext+{k}", 4 + len(b) + k, "I")
                                          for k in range(0, min(len(e), 1 << 16) - 3, 4)]
            elif self.target == "insn":
                got = [(f"insn{k // 8}.{part}", k + off, fmt) for k in range(0, min(len(data), 1 << 16) - 7, 8)
                       for part, off, fmt in (("code", 0, "B"), ("regs", 1, "B"), ("off", 2, "H"), ("imm", 4, "I"))]
            else:
                got = []
            if len(self._layouts) > 256:
                self._layouts.clear()
            self._layouts[key] = got
        return got

    def __call__(self, data: bytes, corpus: list[bytes], max_len: int = 1 << 20) -> bytes:
        rng = self.rng
        if self.target == "asm":
            out = mutate_text(data, rng) if rng.random() < 0.8 else bytes(mutate_bytes(bytearray(data), rng, corpus))
            return out[:max_len]
        buf = bytearray(data)
        fields = self.fields(data)
        for _ in range(rng.randint(1, 3)):
            if fields and rng.random() < 0.75:
                mutate_fields(buf, fields, rng)
            else:
                buf = mutate_bytes(buf, rng, corpus)
        return bytes(buf[:max_len])


# --- corpus --------------------------------------------------------------------------------------------------------


def corpus_dir(target: str) -> Path:
    """``tools/fuzz_corpus/TARGET``."""
    return CORPUS / target


def load_corpus(paths: Iterable[Path]) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file under ``paths`` (files or directories), sorted by name."""
    out = []
    for p in paths:
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        out += [(str(q), q.read_bytes()) for q in files]
    return out


def _sections(path: Path) -> dict[str, bytes]:
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections() if s.name in (".BTF", ".BTF.ext")}


SEED_MAX = 16 << 10  # seeds are the prebuilt objects (and their parts) of at most 16 KiB


def build_seeds() -> dict[str, int]:
    """Write ``seed-*`` files for every target from prebuilt/*.o (small ones) and the assembler; return counts."""
    from pybpf.asm import disassemble, parse_assembly, write_object
    from pybpf.errors import BPFError
    from pybpf.loader import ObjectFile

    counts = {}
    objs = sorted((ROOT / "prebuilt").glob("*.bpf.o"))
    seeds: dict[str, dict[str, bytes]] = {t: {} for t in TARGETS}
    asm_text = (".map counts, type=hash, key_size=4, value_size=8, max_entries=16\n.section xdp\n.globl prog\n"
                "prog:\n  *(u32 *)(r10 - 4) = 0\n  r1 = map[counts] ll\n  r2 = r10\n  r2 += -4\n"
                "  call bpf_map_lookup_elem\n  if r0 == 0 goto out\n  r1 = 1\n  lock *(u64 *)(r0 + 0) += r1\n"
                "  call helper\nout:\n  r0 = 2\n  exit\n.text\nhelper:\n  r0 = 0\n  exit\n.license \"GPL\"\n")
    seeds["asm"]["seed-directives.s"] = asm_text.encode()
    seeds["elf"]["seed-asm.o"] = write_object(parse_assembly(asm_text))
    seeds["elf"]["seed-asm-legacy.o"] = write_object(parse_assembly(asm_text), legacy_maps=True)
    for p in objs:
        name = p.name.split(".bpf.")[0]
        data = p.read_bytes()
        secs = _sections(p)
        if len(data) <= SEED_MAX:
            seeds["elf"][f"seed-{name}.o"] = data
        if ".BTF" in secs and len(secs[".BTF"]) <= SEED_MAX:
            seeds["btf"][f"seed-{name}.btf"] = secs[".BTF"]
            if ".BTF.ext" in secs and len(secs[".BTF"]) + len(secs[".BTF.ext"]) <= SEED_MAX:
                seeds["btfext"][f"seed-{name}.btfext"] = join_btfext(secs[".BTF"], secs[".BTF.ext"])
        if len(data) <= SEED_MAX:
            spec = ObjectFile(data)
            for prog in list(spec.programs.values())[:2]:
                try:
                    code = prog.instructions.encode(maps={m: 3 for m in spec.maps})
                except BPFError:  # calls and externs resolve only once linked: skip those programs
                    continue
                seeds["insn"][f"seed-{name}-{prog.name}.bin"] = code
                seeds["asm"][f"seed-{name}-{prog.name}.s"] = "\n".join(disassemble(code)).encode()
    for target, files in seeds.items():
        d = corpus_dir(target)
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for fname, data in files.items():
            (d / fname).write_bytes(data)
        counts[target] = len(files)
    return counts


# --- running -------------------------------------------------------------------------------------------------------


class _Hang(BaseException):
    """Raised by the alarm when one input runs past the timeout."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang()


def limit_memory(limit: int = MEMORY_LIMIT) -> None:
    """Cap this process's address space (an input that needs more then raises MemoryError: a finding)."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


@dataclass
class Result:
    """What a run did: inputs executed, findings (name -> message), corpus size, lines covered."""

    target: str
    runs: int = 0
    findings: dict[str, str] = field(default_factory=dict)
    corpus: int = 0
    covered: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        """One line for logs and tests/README.md."""
        covered = f", {self.covered} pybpf lines covered" if self.covered else ""
        return (f"fuzz {self.target}: {self.runs} inputs, {len(self.findings)} findings, corpus {self.corpus}"
                f"{covered}, {self.seconds:.1f} s")


def check(target: str, data: bytes, timeout: int = INPUT_TIMEOUT) -> str | None:
    """Run one input under the hang guard; the finding's description (with traceback), or None."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        run_one(target, data)
        return None
    except Finding as f:
        cause = f.__cause__ or f
        return f"{f}\n" + "".join(traceback.format_exception(cause)[-6:])
    except _Hang:
        return f"hang: one input ran for more than {timeout} s"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def save_finding(target: str, data: bytes, message: str, crashes: Path) -> Path:
    """Write a finding's input (and its description beside it); return the input's path."""
    crashes.mkdir(parents=True, exist_ok=True)
    path = crashes / f"crash-{target}-{hashlib.sha1(data).hexdigest()[:12]}"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(message)
    return path


class Coverage:
    """Line coverage of pybpf's own files through ``sys.settrace`` (the built-in engine's guidance)."""

    def __init__(self) -> None:
        import pybpf

        self.prefix = os.path.dirname(pybpf.__file__)
        self.seen: set[tuple[int, int]] = set()
        self._new = 0
        self._codes: dict[Any, bool] = {}

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            key = (id(frame.f_code), frame.f_lineno)
            if key not in self.seen:
                self.seen.add(key)
                self._new += 1
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        mine = self._codes.get(code)
        if mine is None:
            mine = self._codes[code] = code.co_filename.startswith(self.prefix)
        return self._local if mine else None

    def run(self, fn: Callable[[], Any]) -> tuple[int, Any]:
        """Run ``fn()`` traced: (lines seen for the first time, its result)."""
        self._new = 0
        sys.settrace(self._global)
        try:
            value = fn()
        finally:
            sys.settrace(None)
        return self._new, value


def builtin_fuzz(target: str, seeds: list[bytes], runs: int, seconds: float, seed: int, crashes: Path,
                 save_to: Path | None = None, timeout: int = INPUT_TIMEOUT, coverage: bool = True,
                 log: Callable[[str], None] | None = None) -> Result:
    """The built-in coverage-guided loop: mutate corpus entries, keep inputs reaching new pybpf lines."""
    rng = random.Random(seed)
    mutate = Mutator(target, rng)
    corpus = list(dict.fromkeys(seeds)) or [b""]
    cov = Coverage() if coverage else None
    result = Result(target)
    start = time.monotonic()
    for data in corpus:  # the seeds first: they set the coverage baseline
        _run_tracked(target, data, cov, result, crashes, timeout)
    last_log = start
    while (runs <= 0 or result.runs < runs) and (seconds <= 0 or time.monotonic() - start < seconds):
        data = mutate(rng.choice(corpus), corpus)
        new = _run_tracked(target, data, cov, result, crashes, timeout)
        if new:
            corpus.append(data)
            if save_to is not None:
                save_to.mkdir(parents=True, exist_ok=True)
                (save_to / hashlib.sha1(data).hexdigest()).write_bytes(data)
        if log is not None and time.monotonic() - last_log > 10:
            last_log = time.monotonic()
            log(f"#{result.runs} corpus {len(corpus)} lines {len(cov.seen) if cov else 0} "
                f"findings {len(result.findings)}")
    result.corpus = len(corpus)
    result.covered = len(cov.seen) if cov else 0
    result.seconds = time.monotonic() - start
    return result


def _run_tracked(target: str, data: bytes, cov: Coverage | None, result: Result, crashes: Path,
                 timeout: int) -> int:
    result.runs += 1
    if cov is None:
        new, message = 0, check(target, data, timeout)
    else:
        new, message = cov.run(lambda: check(target, data, timeout))
    if message is not None:
        path = save_finding(target, data, message, crashes)
        result.findings[str(path)] = message.splitlines()[0]
    return new


def replay(target: str, paths: list[Path], timeout: int = INPUT_TIMEOUT) -> Result:
    """Run every file under ``paths`` once; findings are reported with their traceback."""
    result = Result(target)
    start = time.monotonic()
    for name, data in load_corpus(paths):
        result.runs += 1
        message = check(target, data, timeout)
        if message is not None:
            result.findings[name] = message
    result.corpus = result.runs
    result.seconds = time.monotonic() - start
    return result


def minimize(target: str, sources: list[Path], timeout: int = INPUT_TIMEOUT) -> tuple[int, int]:
    """Add to the corpus of ``target`` the inputs under ``sources`` that reach pybpf lines the corpus does not
    (smallest first, named by their SHA-1); return (files added, lines covered)."""
    cov = Coverage()
    dest = corpus_dir(target)
    have = {d for _, d in load_corpus([dest])}
    for data in sorted(have, key=len):
        cov.run(functools.partial(check, target, data, timeout))
    added = 0
    for _, data in sorted(load_corpus(sources), key=lambda t: (len(t[1]), t[0])):
        if data in have:
            continue
        new, message = cov.run(functools.partial(check, target, data, timeout))
        if new and message is None:
            (dest / hashlib.sha1(data).hexdigest()).write_bytes(data)
            have.add(data)
            added += 1
    return added, len(cov.seen)


def atheris_fuzz(target: str, args: argparse.Namespace, extra: list[str]) -> None:
    """Hand over to atheris (libFuzzer): instrumented pybpf, our mutators mixed with libFuzzer's; never returns."""
    import importlib
    import pkgutil

    import atheris

    with atheris.instrument_imports(include=["pybpf", "elftools"]):
        import elftools.elf.elffile  # noqa: F401
        for pkg in ("asm", "btf", "loader"):  # every module of the pure layers, so lazy imports are covered too
            mod = importlib.import_module(f"pybpf.{pkg}")
            for info in pkgutil.iter_modules(mod.__path__):
                importlib.import_module(f"pybpf.{pkg}.{info.name}")
    rng = random.Random(args.seed)
    mutate = Mutator(target, rng)

    def one(data: bytes) -> None:
        run_one(target, data)

    def custom(data: bytes, max_size: int, seed: int) -> bytes:
        rng.seed(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(data, [], max_size)

    out = args.corpus_out or WORK / target
    out.mkdir(parents=True, exist_ok=True)
    args.crashes.mkdir(parents=True, exist_ok=True)
    inputs = [corpus_dir(target), *args.extra_corpus]
    argv = [sys.argv[0], str(out), *[str(p) for p in inputs if Path(p) != out], f"-seed={args.seed}",
            f"-timeout={args.timeout}", f"-rss_limit_mb={MEMORY_LIMIT >> 20}", "-max_len=65536",
            f"-artifact_prefix={args.crashes}/crash-{target}-", *extra]
    if args.runs:
        argv.append(f"-runs={args.runs}")
    if args.seconds:
        argv.append(f"-max_total_time={int(args.seconds)}")
    atheris.Setup(argv, one, custom_mutator=custom)
    atheris.Fuzz()


def _log(target: str, line: str) -> None:
    print(f"{target}: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=(*TARGETS, "all", "seed"))
    ap.add_argument("--engine", choices=("auto", "atheris", "builtin"), default="auto")
    ap.add_argument("--runs", type=int, default=0, help="inputs to run (0: no limit)")
    ap.add_argument("--seconds", type=float, default=0, help="time to run (0: no limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=INPUT_TIMEOUT, help="seconds one input may take")
    ap.add_argument("--replay", type=Path, nargs="*", help="run these files/directories once (default: the corpus)")
    ap.add_argument("--crashes", type=Path, default=CRASHES, help=f"where findings go (default {CRASHES})")
    ap.add_argument("--corpus-out", type=Path, help=f"where new interesting inputs go (default {WORK}/TARGET; the "
                    "committed corpus is always read)")
    ap.add_argument("--extra-corpus", type=Path, nargs="*", default=[])
    ap.add_argument("--no-save", action="store_true", help="built-in engine: keep new inputs in memory only")
    ap.add_argument("--minimize", type=Path, nargs="+", help="add to the corpus the files here that reach new "
                    "pybpf lines (e.g. the output directory of a long atheris run), smallest first")
    ap.add_argument("--memory", type=int, default=MEMORY_LIMIT >> 20, help="address-space limit in MiB")
    args, extra = ap.parse_known_args(argv)
    if args.target == "seed":
        for target, n in build_seeds().items():
            print(f"{target}: {n} seed files in {corpus_dir(target)}")
        return 0
    limit_memory(args.memory << 20)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    targets = TARGETS if args.target == "all" else (args.target,)
    if args.minimize:
        for t in targets:
            added, lines = minimize(t, args.minimize, args.timeout)
            print(f"{t}: {added} inputs added to {corpus_dir(t)} ({lines} pybpf lines covered)")
        return 0
    if args.replay is not None:
        bad = 0
        for t in targets:
            res = replay(t, args.replay or [corpus_dir(t)], args.timeout)
            print(res.line())
            for name, message in res.findings.items():
                print(f"  {name}: {message}")
            bad += len(res.findings)
        return 1 if bad else 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris" if len(targets) == 1 else "builtin"
        except ImportError:
            engine = "builtin"
    if engine == "atheris":
        atheris_fuzz(targets[0], args, extra)
        return 0
    bad = 0
    for t in targets:
        seeds = [d for _, d in load_corpus([corpus_dir(t), *args.extra_corpus])]
        res = builtin_fuzz(t, seeds, args.runs, args.seconds, args.seed, args.crashes,
                           None if args.no_save else (args.corpus_out or WORK / t), args.timeout,
                           log=functools.partial(_log, t))
        print(res.line())
        for name, message in res.findings.items():
            print(f"  {name}: {message}\n    replay: python3 tools/fuzz.py {t} --replay {name}")
        bad += len(res.findings)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
