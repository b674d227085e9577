"""``pybpf load OBJ --pin DIR --attach``: the programs and their links are pinned (DIR/<prog>, DIR/<prog>_link),
the attachment outlives the command (the program runs on the next exec), and removing the pins removes program
and link from the kernel; --attach without --pin is refused; a failed attach leaves no pins behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import kernel_skip
from toolrun import DEADLINE, gone

from pybpf.program import Program
from pybpf.sys import abi, syscall
from pybpf.sys.fd import FD

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def pybpf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True, text=True, check=False)


def _remove(directory: str) -> None:
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def test_attach_pins_links_that_outlive_the_command(uniq: str) -> None:
    pin_dir = f"/sys/fs/bpf/{uniq}"
    try:
        done = pybpf("load", "hello", "--pin", pin_dir, "--attach", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        (entry,) = report["programs"]
        link = entry["link"]
        assert entry["name"] == "hello" and entry["pinned"] == f"{pin_dir}/hello"
        assert link["pinned"] == f"{pin_dir}/hello_link" and link["mechanism"] == "bpf_link"
        assert (link["kind"], link["target"]) == ("tracepoint", "syscalls/sys_enter_execve")
        assert sorted(os.listdir(pin_dir)) == ["hello", "hello_link"]
        prog_id, link_id = entry["id"], link["id"]
        assert link_id in set(syscall.object_ids("link"))

        # pybpf has exited: the program still runs on every exec (run_cnt counts while stats are enabled)
        with FD(syscall.enable_stats()), Program.from_pin(f"{pin_dir}/hello") as prog:
            assert prog.info().id == prog_id
            end = time.monotonic() + DEADLINE
            while prog.info().run_cnt == 0:
                assert time.monotonic() < end, "the pinned attachment never ran"
                subprocess.run(["/bin/true"], check=True)
    finally:
        _remove(pin_dir)
    assert not gone("link", {link_id}) and not gone("prog", {prog_id})


def test_text_output_names_the_layout(uniq: str) -> None:
    pin_dir = f"/sys/fs/bpf/{uniq}"
    try:
        done = pybpf("load", "hello", "--pin", pin_dir, "--attach")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == f"hello: {pin_dir}/hello"
        assert lines[1].startswith("hello: attached (tracepoint syscalls/sys_enter_execve), link id ")
        assert lines[1].endswith(f": {pin_dir}/hello_link")
    finally:
        _remove(pin_dir)


def test_attach_without_pin_is_refused() -> None:
    done = pybpf("load", "hello", "--attach")
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("pybpf: error: --attach needs --pin DIR") and "pybpf run" in line


def test_load_without_pin_only_loads() -> None:
    done = pybpf("load", "hello", "--json")
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["programs"]
    assert entry["pinned"] is None and "link" not in entry
    assert not gone("prog", {entry["id"]})


def test_failed_attach_leaves_no_pins(uniq: str) -> None:
    pin_dir = f"/sys/fs/bpf/{uniq}"
    try:
        done = pybpf("load", "xdp_drop", "--pin", pin_dir, "--attach")  # xdp needs an interface
        assert done.returncode == 1
        (line,) = done.stderr.splitlines()
        assert "--target xdp_drop=TARGET" in line
        assert not os.path.exists(pin_dir)
    finally:
        _remove(pin_dir)


@pytest.mark.feature("freplace")
def test_attach_prog_replaces_a_function_of_a_pinned_program(uniq: str) -> None:
    """--attach-prog loads freplace.bpf.o's drop_verdict against the pinned XDP program xdp_verdict (a pybpf
    load before): verdict() returns XDP_DROP while the link pin lives, XDP_PASS again once it is removed."""
    target_dir, ext_dir = f"/sys/fs/bpf/{uniq}_t", f"/sys/fs/bpf/{uniq}_x"
    try:
        done = pybpf("load", "freplace", "--pin", target_dir)
        assert done.returncode == 0, done.stderr
        with Program.from_pin(f"{target_dir}/xdp_verdict") as xdp:
            assert xdp.test_run(bytes(64)).retval == abi.XDP_PASS
            done = pybpf("load", "freplace", "--program", "drop_verdict", "--attach-prog",
                         f"drop_verdict=pinned:{target_dir}/xdp_verdict@verdict", "--pin", ext_dir, "--attach",
                         "--json")
            if done.returncode and "EPERM" in done.stderr:
                kernel_skip(f"freplace programs do not load here: {done.stderr.strip()}", feature="freplace")
            assert done.returncode == 0, done.stderr
            (entry,) = json.loads(done.stdout)["programs"]
            assert entry["name"] == "drop_verdict" and entry["link"]["kind"] == "freplace"
            assert xdp.test_run(bytes(64)).retval == abi.XDP_DROP  # pybpf has exited; the pinned link lives
            _remove(ext_dir)
            end = time.monotonic() + DEADLINE  # the kernel releases an unpinned link asynchronously
            while xdp.test_run(bytes(64)).retval != abi.XDP_PASS:
                assert time.monotonic() < end, "verdict() still replaced after the link's pin was removed"
                time.sleep(0.05)
            assert not gone("link", {entry["link"]["id"]})
    finally:
        _remove(ext_dir)
        _remove(target_dir)


@pytest.mark.parametrize(("value", "message"), [
    ("drop_verdict=xdp_verdict", "TARGET is id:ID, pinned:PATH or name:NAME"),
    ("drop_verdict=id:12@", "TARGET is id:ID, pinned:PATH or name:NAME"),
    ("drop_verdict=name:no_such_program_here", "no loaded program with name 'no_such_program_here'"),
    ("drop_verdict=pinned:/sys/fs/bpf/no/such/pin", "/sys/fs/bpf/no/such/pin"),
])
def test_attach_prog_names_a_bad_target(value: str, message: str) -> None:
    done = pybpf("load", "freplace", "--program", "drop_verdict", "--attach-prog", value)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("pybpf: error: ") and message in line


def test_attach_prog_for_a_program_the_object_lacks(uniq: str) -> None:
    target_dir = f"/sys/fs/bpf/{uniq}"
    try:
        assert pybpf("load", "freplace", "--pin", target_dir).returncode == 0
        done = pybpf("load", "freplace", "--attach-prog", f"nope=pinned:{target_dir}/xdp_verdict")
        assert done.returncode == 1
        assert "attach target given for unknown program 'nope'" in done.stderr
    finally:
        _remove(target_dir)
