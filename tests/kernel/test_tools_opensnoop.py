"""pybpf.tools.opensnoop on the real kernel: open unique files from this process (filtered by our pid in the
kernel) and find their lines.  Records of one thread arrive in order: a filtered-out open followed by a
wanted one proves the filter without waiting."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from toolrun import ToolProcess

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def test_text_lines_for_opens(tmp_path: Path, uniq: str) -> None:
    present = tmp_path / f"{uniq}-present"
    present.write_text("x")
    missing = tmp_path / f"{uniq}-missing"
    tool = ToolProcess("pybpf.tools.opensnoop", "-p", str(os.getpid()), "-e")
    try:
        assert tool.next_line(lambda ln: "PATH" in ln).split() == ["PID", "COMM", "FD", "ERR", "FLAGS", "PATH"]
        fd = os.open(present, os.O_RDONLY)
        os.close(fd)
        with pytest.raises(FileNotFoundError):
            os.open(missing, os.O_WRONLY)
        ok = tool.next_line(lambda ln: ln.endswith(str(present))).split()
        assert ok[0] == str(os.getpid()) and ok[2:4] == [str(fd), "0"]
        assert int(ok[4], 8) & os.O_ACCMODE == os.O_RDONLY
        bad = tool.next_line(lambda ln: ln.endswith(str(missing))).split()
        assert bad[2:4] == ["-1", str(errno.ENOENT)] and int(bad[4], 8) & os.O_ACCMODE == os.O_WRONLY
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_failed_only_json(tmp_path: Path, uniq: str) -> None:
    present = tmp_path / f"{uniq}-present"
    present.write_text("x")
    missing = tmp_path / f"{uniq}-missing"
    tool = ToolProcess("pybpf.tools.opensnoop", "--json", "-x", "-p", str(os.getpid()))
    try:
        tool.wait_stderr("PATH")
        os.close(os.open(present, os.O_RDONLY))  # succeeds: not reported with -x
        with pytest.raises(FileNotFoundError):
            os.open(missing, os.O_RDONLY)
        e = tool.next_json(lambda e: uniq in e["path"])
        assert (e["path"], e["fd"], e["err"], e["pid"]) == (str(missing), -1, errno.ENOENT, os.getpid())
        assert not any(uniq in json.loads(ln)["path"] for ln in tool.seen[:-1])
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_flag_filter(tmp_path: Path, uniq: str) -> None:
    target = tmp_path / f"{uniq}-file"
    tool = ToolProcess("pybpf.tools.opensnoop", "-p", str(os.getpid()), "-f", "O_CREAT")
    try:
        tool.next_line(lambda ln: "PATH" in ln)
        target.write_text("x")  # O_CREAT
        target.read_text()  # no O_CREAT: filtered out
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT))
        tool.next_line(lambda ln: ln.endswith(str(target)))
        tool.next_line(lambda ln: ln.endswith(str(target)))
        assert sum(ln.endswith(str(target)) for ln in tool.seen) == 2  # the read came between: not shown
    finally:
        assert tool.interrupt() == 0
        tool.kill()
