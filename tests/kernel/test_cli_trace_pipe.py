"""``pybpf trace-pipe`` on the real kernel: a unique marker written to tracefs ``trace_marker`` comes out
(filtered with --grep, as JSON, stopping after --count lines)."""
from __future__ import annotations

import os

import pytest
from toolrun import ToolProcess

from pybpf.sys.fs import tracefs

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def test_marker_comes_out(uniq: str) -> None:
    marker = os.path.join(tracefs(), "trace_marker")
    tool = ToolProcess("pybpf", "trace-pipe", "--grep", uniq, "--pid", str(os.getpid()), "--count", "1", "--json")

    def write() -> None:  # until it shows: lines written before the tool skipped the backlog are dropped
        with open(marker, "w") as f:
            f.write(f"{uniq} hello")
    try:
        line = tool.next_json(lambda e: uniq in e["message"], poke=write)
        assert line["message"] == f"{uniq} hello" and line["pid"] == os.getpid()
        assert line["function"] == "tracing_mark_write"
        assert tool.proc.wait(30) == 0  # --count 1: done
    finally:
        tool.kill()
