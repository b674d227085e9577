"""pybpf.tools.execsnoop on the real kernel: exec uniquely named commands and find their lines.

The tool prints its header once attached, so everything run after the header is seen; records of one thread
arrive in order, so a filtered-out exec followed by a wanted one proves the filter without waiting."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toolrun import ToolProcess

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


@pytest.fixture
def command(tmp_path: Path, uniq: str) -> Path:
    """A uniquely named command (a symlink to true: the new process's comm is the link's name)."""
    path = tmp_path / f"{uniq}x"
    path.symlink_to("/bin/true")
    return path


def _events(lines: list[str], uniq: str) -> list[dict]:
    out = []
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if uniq in " ".join(e["args"]):
            out.append(e)
    return out


def test_text_line_for_exec(command: Path, uniq: str) -> None:
    tool = ToolProcess("pybpf.tools.execsnoop", "-U", "-q")
    try:
        header = tool.next_line(lambda ln: "PCOMM" in ln)
        assert header.split() == ["UID", "PCOMM", "PID", "PPID", "RET", "ARGS"]
        child = subprocess.Popen([str(command), "first arg", uniq])
        child.wait()
        line = tool.next_line(lambda ln: uniq in ln)
        assert line.split()[:5] == ["0", command.name, str(child.pid), str(os.getpid()), "0"]
        assert line.endswith(f'"{command}" "first arg" "{uniq}"')
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_json_with_failed_execs(command: Path, uniq: str, tmp_path: Path) -> None:
    missing = tmp_path / f"{uniq}-missing"
    tool = ToolProcess("pybpf.tools.execsnoop", "--json", "-x", "-l", uniq)
    try:
        tool.wait_stderr("PCOMM")
        with pytest.raises(FileNotFoundError):
            subprocess.run([str(missing)])
        subprocess.run([str(command), "done"], check=True)
        tool.next_json(lambda e: e["args"] == [str(command), "done"])
        failed, ok = _events(tool.seen, uniq)
        own_comm = Path("/proc/self/comm").read_text().strip()
        assert (failed["args"], failed["ret"], failed["comm"]) == ([str(missing)], -2, own_comm)  # unchanged
        assert (ok["comm"], ok["ret"], ok["ppid"]) == (command.name, 0, os.getpid())
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_name_filter(command: Path, uniq: str) -> None:
    tool = ToolProcess("pybpf.tools.execsnoop", "-n", f"^{uniq}")
    try:
        tool.next_line(lambda ln: "PCOMM" in ln)
        subprocess.run(["/bin/true", uniq], check=True)  # comm 'true': filtered out
        subprocess.run([str(command), uniq], check=True)
        line = tool.next_line(lambda ln: uniq in ln)
        assert line.split()[0] == command.name
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_bad_option_is_one_line() -> None:
    r = subprocess.run([sys.executable, "-m", "pybpf.tools.execsnoop", "--max-args", "99"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert r.stderr == "pybpf-execsnoop: error: --max-args must be between 1 and 20, not 99\n"
