"""``pybpf link list|show|detach|pin`` on the real kernel, on a link this test makes (hello's tracepoint)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pybpf.prebuilt import path as prebuilt
from toolrun import gone

from pybpf.loader import load

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def pybpf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def attached() -> Iterator[tuple[object, int, int]]:
    """hello loaded and attached through a bpf_link: (the Link, link id, program id)."""
    obj = load(prebuilt("hello"))
    try:
        link = obj.programs["hello"].attach()
        with link:
            info = link.info()
            if not info.id:
                pytest.skip(f"tracepoint attached through {link.mechanism}, not a bpf_link")
            yield link, info.id, obj.programs["hello"].info().id
    finally:
        obj.close()


def test_list_and_show(attached: tuple[object, int, int]) -> None:
    _, link_id, prog_id = attached
    r = pybpf("link", "list", "--json")
    assert r.returncode == 0, r.stderr
    mine = [d for d in json.loads(r.stdout) if d["id"] == link_id]
    assert mine == [{"id": link_id, "type": "perf_event", "prog_id": prog_id, "event_type": "tracepoint",
                     "tp_name": "sys_enter_execve", "cookie": 0}]
    r = pybpf("link", "show", "id", str(link_id))
    assert r.returncode == 0, r.stderr
    head, details = r.stdout.splitlines()
    assert head == f"{link_id}: perf_event  prog {prog_id}"
    assert details == "\tevent_type tracepoint  tp_name sys_enter_execve  cookie 0"


def test_pin_then_detach(attached: tuple[object, int, int], uniq: str) -> None:
    link, link_id, _ = attached
    pin = f"/sys/fs/bpf/{uniq}-link"
    try:
        assert pybpf("link", "pin", "id", str(link_id), pin).returncode == 0
        link.close()  # type: ignore[attr-defined]
        assert link_id in {d["id"] for d in json.loads(pybpf("link", "list", "--json").stdout)}  # the pin holds it
        shown = json.loads(pybpf("link", "show", "pinned", pin, "--json").stdout)
        assert [d["id"] for d in shown] == [link_id]
        r = pybpf("link", "detach", "pinned", pin)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(pin)
        assert not gone("link", {link_id})
    finally:
        if os.path.exists(pin):
            os.unlink(pin)


@pytest.mark.parametrize("args, message", [
    (["show", "id", "2147483647"], "link id 2147483647"),
    (["show", "name", "x"], "expected LINK as 'id ID' or 'pinned FILE'"),
    (["detach", "pinned", "/sys/fs/bpf/pybpf-no-such-link"], "pybpf-no-such-link"),
])
def test_errors_are_one_line(args: list[str], message: str) -> None:
    r = pybpf("link", *args)
    assert r.returncode in (1, 2) and r.stdout == ""
    assert message in r.stderr and "Traceback" not in r.stderr
