"""USDT without the kernel: argument strings -> struct __bpf_usdt_arg_spec records, the spec map value layout,
and .note.stapsdt parsing (a hand-made ELF: prelink adjustment, virtual address -> file offset, bad notes)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.errors import ELFError, ParseError
from pybpf.link import usdt
from pybpf.link.usdt import ARG_CONST, ARG_REG, ARG_REG_DEREF, UsdtArg, encode_spec, parse_args, read_notes

# offsetof(struct pt_regs, X) on x86-64 (arch/x86/include/asm/ptrace.h): the layout the kernel's BTF gives
PT_REGS = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56, "r9": 64, "r8": 72,
           "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "ip": 128, "sp": 152}
REGS = {name: PT_REGS[member] for name, member in usdt.REGISTER_MEMBERS.items()}


@pytest.mark.parametrize("text, expected", [
    ("8@%rbx", UsdtArg(ARG_REG, 0, 40, False, 8)),
    ("-4@%eax", UsdtArg(ARG_REG, 0, 80, True, 4)),
    ("-4@112(%rsp)", UsdtArg(ARG_REG_DEREF, 112, 152, True, 4)),
    ("8@-8(%rbp)", UsdtArg(ARG_REG_DEREF, -8, 32, False, 8)),
    ("8@(%rsp)", UsdtArg(ARG_REG_DEREF, 0, 152, False, 8)),
    ("4@$5", UsdtArg(ARG_CONST, 5, 0, False, 4)),
    ("-1@$-3", UsdtArg(ARG_CONST, -3, 0, True, 1)),
    ("2@%r8w", UsdtArg(ARG_REG, 0, 72, False, 2)),
    ("-1@%sil", UsdtArg(ARG_REG, 0, 104, True, 1)),
    ("8@%r12", UsdtArg(ARG_REG, 0, 24, False, 8)),
    ("-4@%r15d", UsdtArg(ARG_REG, 0, 0, True, 4)),
])
def test_argument_forms(text: str, expected: UsdtArg) -> None:
    assert parse_args(text, regs=REGS) == [expected]


def test_argument_list_and_bitshift() -> None:
    args = parse_args("8@%rbp 8@%r12 -4@%eax", regs=REGS)
    assert [a.reg_off for a in args] == [32, 24, 80]
    assert [a.bitshift for a in args] == [0, 0, 32]
    assert parse_args("", regs=REGS) == []
    assert parse_args("1@%al", regs=REGS)[0].bitshift == 56


@pytest.mark.parametrize("text, message", [
    ("3@%rax", "size 3"),
    ("16@%rax", "size 16"),
    ("8@%xmm0", "unknown register %xmm0"),
    ("8@-8(%rbp,%rax,8)", "indexed addressing"),
    ("8@%rax junk", "#1 'junk'"),
    ("rax", "unsupported form"),
    ("8@$99999999999999999999999", "64 bits"),
    (" ".join(["8@%rax"] * 13), "at most 12"),
])
def test_bad_arguments_are_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError, match="USDT") as ei:
        parse_args(text, "bin: p:n", regs=REGS)
    assert message in str(ei.value) and str(ei.value).startswith("bin: p:n")


def test_kernel_pt_regs_layout_matches_uapi() -> None:
    if os.uname().machine != "x86_64" or not os.access("/sys/kernel/btf/vmlinux", os.R_OK):
        pytest.skip("needs x86-64 and a readable /sys/kernel/btf/vmlinux")
    assert usdt.pt_regs_offsets() == REGS


def test_spec_layout() -> None:
    """struct __bpf_usdt_spec: 12 x 16-byte arg specs, then usdt_cookie (u64) and arg_cnt (short)."""
    raw = encode_spec(parse_args("-4@112(%rsp) 4@$-5", regs=REGS), cookie=0x1122334455667788)
    assert len(raw) == usdt.SPEC_SIZE == 208
    assert struct.unpack_from("<QIh?b", raw, 0) == (112, ARG_REG_DEREF, 152, True, 32)
    assert struct.unpack_from("<QIh?b", raw, 16) == ((1 << 64) - 5, ARG_CONST, 0, False, 32)
    assert raw[32:192] == bytes(160)
    assert struct.unpack_from("<Qh", raw, 192) == (0x1122334455667788, 2)
    with pytest.raises(ValueError, match="cookie"):
        encode_spec([], cookie=-1)


# --- .note.stapsdt --------------------------------------------------------------------------------------------------


def note(provider: bytes, name: bytes, args: bytes, loc: int, base: int, sema: int, owner: bytes = b"stapsdt",
         ntype: int = 3) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + bytes(-len(b) % 4)

    desc = struct.pack("<QQQ", loc, base, sema) + provider + b"\0" + name + b"\0" + args + b"\0"
    owner += b"\0"
    return struct.pack("<III", len(owner), len(desc), ntype) + pad(owner) + pad(desc)


def make_elf(notes: bytes, base_addr: int | None, e_type: int = 3) -> bytes:
    """An x86-64 ELF with two PT_LOADs (code at 0x401000 from file offset 0x1000, data at 0x600000 from 0x2000),
    a .note.stapsdt section holding ``notes`` and, unless ``base_addr`` is None, a .stapsdt.base there."""
    shstr = b"\0.note.stapsdt\0.stapsdt.base\0.shstrtab\0"
    notes_off = 0x100
    shstr_off = notes_off + len(notes)
    sh_off = (shstr_off + len(shstr) + 7) & ~7
    sec = struct.Struct("<IIQQQQIIQQ")
    sections = [bytes(64), sec.pack(1, 7, 2, 0, notes_off, len(notes), 0, 0, 4, 0)]
    if base_addr is not None:
        sections.append(sec.pack(15, 1, 6, base_addr, 0x1000, 1, 0, 0, 1, 0))
    sections.append(sec.pack(29, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0))
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", e_type, 62, 1, 0, 64, sh_off, 0, 64, 56, 2,
                                                            64, len(sections), len(sections) - 1)
    ph = struct.Struct("<IIQQQQQQ")
    phdrs = ph.pack(1, 5, 0x1000, 0x401000, 0x401000, 0x1000, 0x1000, 0x1000) + \
        ph.pack(1, 6, 0x2000, 0x600000, 0x600000, 0x100, 0x100, 0x1000)
    out = bytearray(ehdr + phdrs)
    out += bytes(notes_off - len(out)) + notes + shstr
    out += bytes(sh_off - len(out)) + b"".join(sections)
    return bytes(out)


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "prog"
    path.write_bytes(data)
    return str(path)


def test_notes_offsets_and_prelink(tmp_path: Path) -> None:
    notes = note(b"prov", b"one", b"8@%rax", 0x401234, 0x500000, 0x600010) + \
        note(b"GNU", b"x", b"", 0, 0, 0, owner=b"GNU", ntype=1) + \
        note(b"prov", b"two", b":", 0x401300, 0, 0)
    # .stapsdt.base moved by 0x100 since link time (prelink): the probe address follows, the semaphore does not
    found = read_notes(write(tmp_path, make_elf(notes, base_addr=0x500100)))
    assert [(n.provider, n.name, n.args) for n in found] == [("prov", "one", "8@%rax"), ("prov", "two", "")]
    one, two = found
    assert (one.address, one.offset, one.semaphore, one.semaphore_offset) == (0x401334, 0x1334, 0x600010, 0x2010)
    assert (two.address, two.offset, two.semaphore_offset) == (0x401300, 0x1300, 0)  # base 0: not adjusted
    plain = read_notes(write(tmp_path, make_elf(notes, base_addr=None)))
    assert plain[0].offset == 0x1234


def test_no_notes_and_bad_notes(tmp_path: Path) -> None:
    assert read_notes(write(tmp_path, make_elf(b"", None))) == []
    cases = [
        (note(b"p", b"n", b"", 0x401000, 0, 0)[:-8], "runs past"),
        (note(b"p", b"", b"", 0x401000, 0, 0), "malformed stapsdt note"),
        (note(b"p", b"n", b"", 0x600000, 0, 0), "data segment"),
        (note(b"p", b"n", b"", 0x401000, 0, 0x401800), "executable segment"),
        (note(b"p", b"n", b"", 0x900000, 0, 0), "no loadable segment"),
    ]
    for data, message in cases:
        with pytest.raises(ELFError, match=message):
            read_notes(write(tmp_path, make_elf(data, None)))
    with pytest.raises(ELFError, match="ET_REL"):
        read_notes(write(tmp_path, make_elf(b"", None, e_type=1)))
    with pytest.raises(ELFError, match="not a readable ELF"):
        read_notes(write(tmp_path, b"not an elf"))


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3.11"), reason="needs Debian's /usr/bin/python3.11")
def test_python_notes() -> None:
    """Debian's python3.11 (non-PIE): its probes, with semaphores in .probes."""
    found = {n.name: n for n in read_notes("/usr/bin/python3.11") if n.provider == "python"}
    assert {"gc__start", "gc__done", "function__entry", "function__return"} <= set(found)
    assert found["gc__start"].args == "-4@112(%rsp)"
    assert found["function__entry"].args == "8@%rbp 8@%r12 -4@%eax"
    assert all(n.semaphore and n.semaphore_offset for n in found.values())
    for n in found.values():
        parse_args(n.args, regs=REGS)


def test_cli_lists_probes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pybpf.cli import main

    path = write(tmp_path, make_elf(note(b"prov", b"one", b"8@%rax -4@$3", 0x401234, 0, 0x600010) +
                                    note(b"prov", b"two", b"", 0x401300, 0, 0), None))
    assert main(["inspect", "--usdt", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "prov:one  offset 0x1234  semaphore 0x2010  args 8@%rax -4@$3",
        "prov:two  offset 0x1300  no semaphore  args -"]
    assert main(["inspect", "--usdt", "--json", path]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["offset"], r["semaphore_offset"], r["args"]) for r in rows] == [
        ("one", 0x1234, 0x2010, "8@%rax -4@$3"), ("two", 0x1300, 0, "")]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=120), st.integers(0, 119))
def test_damaged_notes_raise_only_elf_errors(junk: bytes, at: int) -> None:
    """Bytes of a note overwritten anywhere: parsed, or an ELFError (never IndexError/struct.error)."""
    notes = bytearray(note(b"prov", b"one", b"8@%rax", 0x401234, 0x500000, 0x600010))
    notes[at:at + len(junk)] = junk
    try:
        found = read_notes_bytes(make_elf(bytes(notes), 0x500000))
    except ELFError:
        return
    assert all(isinstance(n.offset, int) for n in found)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet="-0123456789@$%()rabcdxsilpw ,", max_size=40))
def test_any_argument_string_parses_or_raises_parse_error(text: str) -> None:
    try:
        args = parse_args(text, regs=REGS)
    except ParseError:
        return
    assert all(a.size in (1, 2, 4, 8) for a in args)


def read_notes_bytes(data: bytes) -> list[usdt.UsdtNote]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return read_notes(write(Path(d), data))
