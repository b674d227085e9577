"""``pybpf run`` on the real kernel: records and printk lines stream out, Ctrl-C detaches everything (the
programs and links it created leave the kernel's id lists), errors are one line."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from toolrun import ToolProcess, gone

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def _ids(attached: dict) -> tuple[set[int], set[int]]:
    links = attached["links"]
    return {d["prog_id"] for d in links}, {d["link_id"] for d in links if d["link_id"]}


def test_printk_lines_then_sigint_leaves_nothing_attached() -> None:
    tool = ToolProcess("pybpf", "run", "hello", "--json")
    try:
        attached = tool.next_json(lambda e: e["kind"] == "attached")
        progs, links = _ids(attached)
        assert attached["links"][0]["target"] == "syscalls/sys_enter_execve" and progs
        children: set[int] = set()

        def spawn() -> None:  # again until seen: another trace_pipe reader on this kernel may take a line
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            children.add(child.pid)
        line = tool.next_json(lambda e: e["kind"] == "printk" and e["pid"] in children, poke=spawn)
        assert line["message"] == f"pybpf-hello: Hello, World! (execve from pid {line['pid']})"
        assert tool.interrupt() == 0
        assert json.loads(tool.seen[-1])["kind"] == "detached"
    finally:
        tool.kill()
    assert not gone("prog", progs) and not gone("link", links)


def test_ring_records_decoded_from_btf(tmp_path: Path, uniq: str) -> None:
    command = tmp_path / uniq
    command.symlink_to("/bin/true")
    tool = ToolProcess("pybpf", "run", "execsnoop", "--set", "max_args=3")
    try:
        tool.wait_stderr("Ctrl-C to stop")
        subprocess.run([str(command), "a", "b", "c"], check=True)
        line = tool.next_line(lambda ln: uniq in ln)
        assert line.startswith("events: exec_event(") and f"comm='{uniq}'" in line and "args_count=3" in line
    finally:
        assert tool.interrupt() == 0
        tool.kill()


def test_perf_records_inferred_type_json() -> None:
    tool = ToolProcess("pybpf", "run", "tcptracer", "--json", "--no-printk")
    try:
        progs, links = _ids(tool.next_json(lambda e: e["kind"] == "attached"))
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen()
            port = srv.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)):
                srv.accept()[0].close()
        rec = tool.next_json(lambda e: e["kind"] == "record" and e["data"]["pid"] == os.getpid()
                             and port in (e["data"]["sport"], e["data"]["dport"]))
        assert rec["map"] == "events" and set(rec["data"]) >= {"saddr", "daddr", "comm", "netns", "type"}
        assert tool.interrupt() == 0
    finally:
        tool.kill()
    assert not gone("prog", progs) and not gone("link", links)


def test_sigterm_detaches_too() -> None:
    tool = ToolProcess("pybpf", "run", "opensnoop", "--json")
    try:
        progs, links = _ids(tool.next_json(lambda e: e["kind"] == "attached"))
        tool.proc.terminate()
        assert tool.proc.wait(30) == 0
    finally:
        tool.kill()
    assert not gone("prog", progs) and not gone("link", links)


def test_duration_and_explicit_record_type() -> None:
    r = subprocess.run([sys.executable, "-m", "pybpf", "run", "execsnoop", "--record", "events=struct exec_event",
                        "--duration", "0.5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == "pybpf: execsnoop: detached"


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/x.o"], "pybpf: error: /nonexistent/x.o: cannot read"),
    (["xdp_drop"], "(with pybpf run: --attach PROG=TARGET)"),
    (["hello", "--set", "nosuch=1"], "no global variable 'nosuch'"),
    (["execsnoop", "--record", "nosuch=exec_event"], "--record names nosuch, which is not a ring or perf buffer map"),
    (["execsnoop", "--record", "events=nosuch"], "no struct, union or enum 'nosuch'"),
])
def test_errors_are_one_line(args: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pybpf", "run", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_only_the_programs_asked_for() -> None:
    r = subprocess.run([sys.executable, "-m", "pybpf", "run", "opensnoop", "--json", "--duration", "0.2",
                        "--program", "tracepoint__syscalls__sys_enter_openat",
                        "--program", "tracepoint__syscalls__sys_exit_openat"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    attached = json.loads(r.stdout.splitlines()[0])
    assert [d["target"] for d in attached["links"]] == ["syscalls/sys_enter_openat", "syscalls/sys_exit_openat"]
