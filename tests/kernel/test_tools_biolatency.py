"""pybpf.tools.biolatency on the real kernel: synced writes to a file on the disk under the test's temporary
directory must show up in that disk's histogram.  Skips when that directory is not on a block device."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kernel_skip
from toolrun import ToolProcess

from pybpf.tools.biolatency import log2_hist

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def _disk_of(path: Path) -> str:
    """The whole disk holding ``path`` (vda, sda, nvme0n1...), or skip."""
    dev = os.stat(path).st_dev
    sysdir = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sysdir.exists():
        pytest.skip(f"{path} is not on a block device (st_dev {os.major(dev)}:{os.minor(dev)})")
    real = sysdir.resolve()
    return (real.parent if (real / "partition").exists() else real).name


def _write_synced(directory: Path, uniq: str) -> None:
    target = directory / f"{uniq}-bio"
    with open(target, "wb") as f:
        for _ in range(8):
            f.write(os.urandom(64 * 1024))
            f.flush()
            os.fsync(f.fileno())
    target.unlink()


def test_json_histogram_counts_synced_writes(tmp_path: Path, uniq: str) -> None:
    disk = _disk_of(tmp_path)
    tool = ToolProcess("pybpf.tools.biolatency", "--json", "-D", "-d", disk)
    try:
        tool.wait_stderr("Tracing block device I/O")
        _write_synced(tmp_path, uniq)
        assert tool.interrupt() == 0
        hists = [json.loads(ln) for ln in tool.seen]
        if not hists:
            kernel_skip(f"no block I/O seen on {disk}: the block tracepoints do not fire here")
        (h,) = hists  # one disk selected
        assert h["disk"] == disk and h["unit"] == "usecs" and h["total"] >= 1
        assert sum(s["count"] for s in h["slots"]) == h["total"]
        assert [(s["low"], s["high"]) for s in h["slots"][:3]] == [(0, 1), (2, 3), (4, 7)]
    finally:
        tool.kill()


def test_text_histogram_per_disk(tmp_path: Path, uniq: str) -> None:
    disk = _disk_of(tmp_path)
    tool = ToolProcess("pybpf.tools.biolatency", "-D", "-m", "-T")
    try:
        tool.next_line(lambda ln: ln.startswith("Tracing block device I/O"))
        _write_synced(tmp_path, uniq)
        assert tool.interrupt() == 0
        text = "\n".join(tool.seen)
        if f"disk = {disk}" not in text:
            kernel_skip(f"no block I/O seen on {disk}: the block tracepoints do not fire here")
        assert re.search(r"^\d\d:\d\d:\d\d", text, re.MULTILINE)
        assert re.search(r"^     msecs               : count     distribution$", text, re.MULTILINE)
        assert re.search(r"^ {9}0 -> 1 {10}: \d+ +\|[* ]{40}\|$", text, re.MULTILINE)
    finally:
        tool.kill()


def test_interval_and_count_end_by_themselves() -> None:
    r = subprocess.run([sys.executable, "-m", "pybpf.tools.biolatency", "--json", "0.2", "2"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert all(json.loads(ln)["unit"] == "usecs" for ln in r.stdout.splitlines())


def test_log2_hist_layout() -> None:
    assert log2_hist({}, "usecs") == []
    lines = log2_hist({0: 1, 2: 4}, "usecs")
    assert lines == [
        "     usecs               : count     distribution",
        "         0 -> 1          : 1        |**********                              |",
        "         2 -> 3          : 0        |                                        |",
        "         4 -> 7          : 4        |****************************************|",
    ]
