"""``pybpf prog dump xlated PROG [linum]`` on programs loaded from prebuilt objects: the source line annotations
come from the kernel's line info and the program's BTF (fetched by id), and equal ``bpftool prog dump xlated id N
linum`` record for record; programs with bpf-to-bpf calls dump (the kernel keeps the call target in ``off``)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

import pybpf
from pybpf.cli import main
from pybpf.prebuilt import path

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

BPFTOOL = shutil.which("bpftool")
_BPFTOOL_LINE = re.compile(r"^; (.*) \[file:(.+) line_num:(\d+) line_col:(\d+)\]$")
_BPFTOOL_INSN = re.compile(r"^\s*(\d+): \(")
_OURS_LINE = re.compile(r"^; (.*) \[(.+):(\d+):(\d+)\]$")
_OURS_INSN = re.compile(r"^\s*(\d+): ")

Src = tuple[str, int, int, str]  # file, line, column, text


def _annotations(text: str, note: re.Pattern[str], insn: re.Pattern[str]) -> dict[int, Src]:
    out: dict[int, Src] = {}
    pending = None
    for line in text.splitlines():
        if m := note.match(line):
            pending = (m[2], int(m[3]), int(m[4]), m[1].strip())
        elif (m := insn.match(line)) and pending is not None:
            out[int(m[1])] = pending
            pending = None
    return out


def _dump(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert main(["prog", "dump", "xlated", *words]) == 0
    return capsys.readouterr().out


@pytest.mark.skipif(not BPFTOOL, reason="bpftool not installed")
@pytest.mark.parametrize("name", ["hello", "subprogs", "core", "tcptracer"])
def test_xlated_source_lines_match_bpftool(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pybpf.load(path(name)) as obj:
        for prog in obj.programs.values():
            prog_id = str(prog.info().id)
            ours = _annotations(_dump(capsys, "id", prog_id, "linum"), _OURS_LINE, _OURS_INSN)
            theirs_text = subprocess.run([BPFTOOL, "prog", "dump", "xlated", "id", prog_id, "linum"], check=True,
                                         capture_output=True, text=True).stdout
            theirs = _annotations(theirs_text, _BPFTOOL_LINE, _BPFTOOL_INSN)
            assert theirs, f"bpftool shows no line info for {name}/{prog.name}"
            assert ours == theirs, f"{name}/{prog.name}"
            assert ours == {slot: (ln.file, ln.line, ln.col, ln.text.strip())
                            for slot, ln in prog.line_info().items()}
            # our instruction slots are bpftool's
            assert [int(m[1]) for m in map(_OURS_INSN.match, _dump(capsys, "id", prog_id).splitlines()) if m] \
                == [int(m[1]) for m in map(_BPFTOOL_INSN.match, theirs_text.splitlines()) if m]
            # --linum is the same as bpftool's trailing word; without it, fewer notes (repeats dropped)
            assert _dump(capsys, "id", prog_id, "--linum") == _dump(capsys, "id", prog_id, "linum")
            plain = _dump(capsys, "id", prog_id)
            notes = [ln for ln in plain.splitlines() if ln.startswith(";")]
            assert 0 < len(notes) <= len(ours)
            assert not any(ln.startswith(";") for ln in _dump(capsys, "id", prog_id, "--no-source").splitlines())
            data = json.loads(_dump(capsys, "id", prog_id, "--json"))
            assert {d["insn"]: (d["file"], d["line"], d["col"], d["text"].strip()) for d in data["lines"]} == ours


def test_subprogram_calls_dump(capsys: pytest.CaptureFixture[str]) -> None:
    with pybpf.load(path("subprogs")) as obj:
        out = _dump(capsys, "id", str(obj.programs["calc_a"].info().id))
    calls = re.findall(r"call pc\+0x[0-9a-f]+", out)
    assert len(calls) >= 3 and "; a_len = pkt_len(ctx);" in out


def test_program_without_btf_has_no_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pybpf.Program.load("r0 = 0\nexit", "socket_filter") as prog:
        assert prog.line_info() == {} and prog.btf() is None
        out = _dump(capsys, "id", str(prog.info().id), "linum")
        data = json.loads(_dump(capsys, "id", str(prog.info().id), "--json"))
    assert out.splitlines() == ["    0: r0 = 0x0", "    1: exit"]
    assert "lines" not in data
