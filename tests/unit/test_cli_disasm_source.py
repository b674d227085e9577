"""``pybpf disasm`` source line annotations from BTF line info, against ``llvm-objdump-19 -S -l`` (which reads the
same .BTF.ext line info when an object has no DWARF, as the stripped prebuilt objects have not): for every
prebuilt object, every instruction either annotates carries the same file, line number and source text."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.asm import parse_assembly
from pybpf.cli import main
from pybpf.loader import ObjectFile

OBJDUMP = shutil.which("llvm-objdump-19")
PREBUILT = Path(__file__).resolve().parents[2] / "prebuilt"
OBJECTS = sorted(p.name for p in PREBUILT.glob("*.bpf.o"))

_SECTION = re.compile(r"^Disassembly of section (.+):$")
_INSN = re.compile(r"^\s*(\d+):\t")
_OBJDUMP_WHERE = re.compile(r"^; (.+):(\d+)$")
_OURS = re.compile(r"^; (.*) \[(.+):(\d+):(\d+)\]$")

Key = tuple[str, int]  # section, instruction slot
Src = tuple[str, int, str]  # file, line, source text (stripped)


def objdump_lines(obj: Path) -> tuple[dict[Key, Src], list[tuple[Key, Src]]]:
    """llvm-objdump's annotations ({(section, slot): (file, line, text)}) and the source line in force at each
    instruction (objdump prints a line once, until another replaces it)."""
    out = subprocess.run([OBJDUMP, "-S", "-l", "--no-show-raw-insn", str(obj)], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    marks: dict[Key, Src] = {}
    current: list[tuple[Key, Src]] = []
    section, pending, where, now = "", None, None, None
    for i, line in enumerate(out):
        if m := _SECTION.match(line):
            section, pending, now = m[1], None, None
        elif m := _OBJDUMP_WHERE.match(line):
            where = (m[1], int(m[2]))
        elif line.startswith("; ") and where is not None:
            pending = now = (where[0], where[1], line[2:].strip())
            where = None
        elif m := _INSN.match(line):
            key = (section, int(m[1]))
            if pending is not None:
                marks[key] = pending
                pending = None
            if now is not None:
                current.append((key, now))
    return marks, current


def pybpf_lines(obj: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[dict[Key, Src], str]:
    """Our annotations with ``--linum`` ({(section, slot): (file, line, text)}) and the whole listing."""
    assert main(["disasm", str(obj), *flags]) == 0
    text = capsys.readouterr().out
    marks: dict[Key, Src] = {}
    section, pending = "", None
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section, pending = m[1], None
        elif m := _OURS.match(line):
            pending = (m[2], int(m[3]), m[1])
        elif line.startswith(";"):
            pending = ("?", 0, line[1:].strip())  # without [file:line:col]: text only
        elif (m := _INSN.match(line)) and pending is not None:
            marks[(section, int(m[1]))] = pending
            pending = None
    return marks, text


@pytest.mark.skipif(not OBJDUMP, reason="llvm-objdump-19 not installed (apt install llvm-19)")
@pytest.mark.parametrize("name", OBJECTS)
def test_source_lines_match_llvm_objdump(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    obj = PREBUILT / name
    theirs, in_force = objdump_lines(obj)
    ours, _ = pybpf_lines(obj, capsys, "--linum")
    spec = ObjectFile(str(obj))
    if spec.btf_ext is None or not any(spec.btf_ext.line_info.values()):
        assert not theirs and not ours
        return
    n_records = sum(len(v) for v in spec.btf_ext.line_info.values())
    assert len(ours) == n_records  # --linum: one annotation per line info record
    # every instruction llvm-objdump annotates, we annotate with the same file, line and text ...
    for key, src in theirs.items():
        assert ours.get(key) == src, f"{name} {key}: llvm-objdump {src}, pybpf {ours.get(key)}"
    # ... and where we annotate, the line llvm-objdump has in force there is ours (it prints a repeat once)
    for key, src in in_force:
        if key in ours:
            assert ours[key] == src, f"{name} {key}: llvm-objdump {src}, pybpf {ours[key]}"
    assert set(ours) <= {key for key, _ in in_force}
    # a section's annotated listing is still assembly text: it reads back into the same instructions
    section = next(iter(spec.programs.values())).section
    assert main(["disasm", str(obj), "--section", section, "--linum"]) == 0
    annotated = parse_assembly(capsys.readouterr().out).sections[section]
    assert main(["disasm", str(obj), "--section", section, "--no-source"]) == 0
    assert annotated == parse_assembly(capsys.readouterr().out).sections[section]

    # without --linum: a subset of the records (repeats of the line just shown dropped), same text
    plain, plain_listing = pybpf_lines(obj, capsys)
    assert plain and set(plain) <= set(ours)
    for key, (file, _line, text) in plain.items():
        assert text == ours[key][2]
        assert file in ("?", ours[key][0])  # a location only on lines from another file than the section's first
    for key in set(ours) - set(plain):
        shown = max(k for k in plain if k[0] == key[0] and k[1] < key[1])
        assert ours[shown][:2] == ours[key][:2], f"{name} {key}: dropped a line that is no repeat"
    assert main(["disasm", str(obj), "--no-source"]) == 0
    bare = capsys.readouterr().out
    assert not any(line.startswith(";") for line in bare.splitlines())
    assert [ln for ln in plain_listing.splitlines() if not ln.startswith(";")] == bare.splitlines()


def test_headers_show_where_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    """tcptracer inlines functions of tcptracer.h into tcptracer.bpf.c's programs: those lines name their file."""
    _, listing = pybpf_lines(PREBUILT / "tcptracer.bpf.o", capsys, "--section", "tracepoint/sock/inet_sock_set_state")
    notes = [ln for ln in listing.splitlines() if ln.startswith(";")]
    assert "; __u64 sk = (__u64)ctx->skaddr;" in notes
    assert any(re.fullmatch(r"; e->tid = \(__u32\)id; \[\./\./tcptracer\.h:\d+:\d+\]", ln) for ln in notes)


def test_object_without_line_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An object without BTF (written by ``pybpf asm``) lists as before: no annotations."""
    from pybpf.asm import write_object

    obj = tmp_path / "p.o"
    obj.write_bytes(write_object(parse_assembly('.section "xdp"\nf:\n\tr0 = 2\n\texit\n')))
    assert main(["disasm", str(obj)]) == 0
    assert capsys.readouterr().out.splitlines()[:4] == ["Disassembly of section xdp:", "f:", "       0:\tr0 = 0x2",
                                                        "       1:\texit"]
