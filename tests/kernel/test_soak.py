"""Resource hygiene under repetition: objects are loaded, attached, read, detached and closed many times (a few
hundred cycles here; thousands with ``PYBPF_SOAK=1``), and afterwards this process's open fds, the kernel
objects it created (program, map and link ids, recorded as they are made: other processes on this shared kernel
create objects too) and the tracefs probe events it defined are back where they started.  Everything closes on
``with``, on ``close()``, on garbage collection, and when the interpreter exits without closing anything.

Figures (cycles, fds and ids before/after) are printed: ``pytest -s`` shows them; tests/README.md keeps them."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap

import pytest
from toolrun import gone

import pybpf
from pybpf.asm import parse_assembly, write_object
from pybpf.link import attach_uprobe
from pybpf.maps.perfbuf import PerfBuffer
from pybpf.maps.ringbuf import RingBuffer
from pybpf.sys import perf

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

SOAK = os.environ.get("PYBPF_SOAK") == "1"
CYCLES = 3000 if SOAK else 150
PROBE_CYCLES = 300 if SOAK else 10

# An object with a ring buffer, a perf buffer and an array, and a tracepoint program writing to both buffers.
TEXT = """
.map events, type=ringbuf, max_entries=4096
.map perf, type=perf_event_array, key_size=4, value_size=4, max_entries=0
.map counts, type=array, key_size=4, value_size=8, max_entries=1
.section tracepoint/syscalls/sys_enter_getppid
.globl on_getppid
on_getppid:
  r6 = r1
  *(u64 *)(r10 - 8) = 1
  r1 = map[events] ll
  r2 = r10
  r2 += -8
  r3 = 8
  r4 = 0
  call bpf_ringbuf_output
  r1 = r6
  r2 = map[perf] ll
  r3 = 0xffffffff ll
  r4 = r10
  r4 += -8
  r5 = 8
  call bpf_perf_event_output
  r0 = 0
  exit
.license "GPL"
"""


def _object() -> bytes:
    return write_object(parse_assembly(TEXT))


def open_fds() -> int:
    """How many fds this process has open (after a garbage collection)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def our_probe_events() -> list[str]:
    """The tracefs uprobe/kprobe events pybpf defined for this process (their names carry our pid)."""
    tag = f"_{os.getpid()}_"
    return [ln for kind in ("uprobe", "kprobe") for ln in perf.probe_events(kind) if tag in ln]


class Created:
    """Kernel ids of the programs, maps and links a test made (recorded while they are open)."""

    def __init__(self) -> None:
        self.ids: dict[str, set[int]] = {"prog": set(), "map": set(), "link": set()}

    def add_object(self, obj: pybpf.Object) -> None:
        """Record the ids of a loaded object's programs and maps."""
        for p in obj.programs.values():
            self.ids["prog"].add(p.info().id)
        for m in obj.maps.values():
            self.ids["map"].add(m.info().id)

    def add_link(self, link: pybpf.Link) -> None:
        """Record a link's id (bpf_link attachments only)."""
        if link.mechanism == "bpf_link":
            self.ids["link"].add(link.info().id)

    def left(self) -> dict[str, set[int]]:
        """The recorded ids the kernel still has (freeing is asynchronous: waits up to a deadline)."""
        return {kind: gone(kind, ids) for kind, ids in self.ids.items()}

    def counts(self) -> str:
        return ", ".join(f"{len(v)} {k}s" for k, v in self.ids.items())


def _cycle(obj_bytes: bytes, created: Created, how: str) -> None:
    """One load/attach/read/detach/close, releasing everything the way ``how`` says."""
    obj = pybpf.load(obj_bytes, name="soak")
    created.add_object(obj)
    link = obj.programs["on_getppid"].attach()
    created.add_link(link)
    rb = RingBuffer(obj.maps["events"], lambda rec: None)
    pb = PerfBuffer(obj.maps["perf"], lambda cpu, rec: None, pages=1)
    os.getppid()
    rb.poll(0)
    pb.poll(0)
    if how == "close":
        pb.close()
        rb.close()
        link.close()
        obj.close()
    elif how == "with":
        with obj, link, rb, pb:
            pass
    else:  # "gc": drop every reference; the garbage collector releases them
        del obj, link, rb, pb


def test_load_attach_read_close_cycles() -> None:
    obj_bytes = _object()
    created = Created()
    _cycle(obj_bytes, Created(), "close")  # warm caches (probes, kernel BTF) before counting
    fds_before, events_before = open_fds(), our_probe_events()
    for i in range(CYCLES):
        _cycle(obj_bytes, created, ("close", "with", "gc")[i % 3])
    fds_after, left = open_fds(), created.left()
    print(f"\nsoak: {CYCLES} load/attach/ring+perf read/detach/close cycles (close, with, gc in turn): "
          f"fds {fds_before} -> {fds_after}; created {created.counts()}; still in the kernel afterwards: "
          f"{sum(map(len, left.values()))}")
    assert fds_after == fds_before
    assert not any(left.values()), left
    assert our_probe_events() == events_before


def test_legacy_probe_events_are_removed() -> None:
    """uprobes through tracefs ``uprobe_events`` (the legacy mechanism): each attach defines an event, each
    detach -- close, ``with`` or garbage collection -- removes it."""
    created = Created()
    fds_before, events_before = open_fds(), our_probe_events()
    with pybpf.Program.load("r0 = 0\nexit", "kprobe", name="t_soak_up") as prog:
        created.ids["prog"].add(prog.info().id)
        for i in range(PROBE_CYCLES):
            link = attach_uprobe(prog, "libc.so.6", "getpid", legacy=True)
            assert len(our_probe_events()) == len(events_before) + 1
            created.add_link(link)
            os.getpid()
            if i % 3 == 0:
                link.close()
            elif i % 3 == 1:
                with link:
                    pass
            else:
                del link
                gc.collect()
            assert our_probe_events() == events_before
    fds_after, left = open_fds(), created.left()
    print(f"\nsoak: {PROBE_CYCLES} legacy uprobe attach/detach cycles: fds {fds_before} -> {fds_after}; "
          f"uprobe_events of this pid {len(events_before)} -> {len(our_probe_events())}")
    assert fds_after == fds_before and not any(left.values()), left


CHILD = """
import json, os, sys
import pybpf
from pybpf.link import attach_uprobe
from pybpf.maps.ringbuf import RingBuffer
obj = pybpf.load(bytes.fromhex(sys.stdin.read()), name="soak")
link = obj.programs["on_getppid"].attach()
rb = RingBuffer(obj.maps["events"], lambda rec: None)
prog = pybpf.Program.load("r0 = 0\\nexit", "kprobe", name="t_exit_up")
up = attach_uprobe(prog, "libc.so.6", "getpid", legacy=True)
ids = {"prog": [p.info().id for p in (*obj.programs.values(), prog)], "map": [m.info().id for m in obj.maps.values()],
       "link": [link.info().id], "event": up.info().details["event"], "pid": os.getpid()}
print(json.dumps(ids), flush=True)
{ending}
"""


@pytest.mark.parametrize("ending", ["pass", "os._exit(0)", "raise SystemExit(3)"],
                         ids=["normal-exit", "os-exit", "exception-exit"])
def test_interpreter_exit_without_closing(ending: str) -> None:
    """A process that exits without closing anything -- normally, through ``os._exit`` (no finalizers run) or
    with an exception -- leaves no program, map or link behind, and (except for ``os._exit``, which skips
    Python's cleanup) no tracefs event."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD).replace("{ending}", ending)],
                       input=_object().hex(), capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode in (0, 3), r.stderr
    ids = json.loads(r.stdout.splitlines()[0])
    left = {k: gone(k, set(ids[k])) for k in ("prog", "map", "link")}
    group_event = ids["event"].split("/", 1)[1]
    events = [ln for ln in perf.probe_events("uprobe") if group_event in ln]
    print(f"\nexit ({ending}): child pid {ids['pid']} created {sum(len(ids[k]) for k in left)} objects; left "
          f"{sum(map(len, left.values()))}; its uprobe event {'left' if events else 'removed'}")
    assert not any(left.values()), left
    if ending == "os._exit(0)":
        # no Python cleanup ran: the kernel dropped the perf event, but the tracefs definition stays until
        # pybpf.link.remove_stale_events() (or the next pybpf run) sweeps events of dead processes
        from pybpf.link import remove_stale_events

        remove_stale_events()
        events = [ln for ln in perf.probe_events("uprobe") if group_event in ln]
    assert events == []


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_during_pybpf_run_detaches_uprobes(signame: str) -> None:
    """Ctrl-C (and SIGTERM) during ``pybpf run`` of a uretprobe object: the program and link it created leave
    the kernel and no probe event of its pid stays in tracefs (hello/tcptracer/opensnoop: test_cli_run.py)."""
    import signal

    from toolrun import ToolProcess

    tool = ToolProcess("pybpf", "run", "bashreadline", "--json", "--no-printk")
    try:
        attached = tool.next_json(lambda e: e["kind"] == "attached")
        progs = {lk["prog_id"] for lk in attached["links"]}
        links = {lk["link_id"] for lk in attached["links"] if lk["link_id"]}
        tool.proc.send_signal(getattr(signal, signame))
        assert tool.proc.wait(30) == 0
    finally:
        tool.kill()
    tag = f"_{tool.proc.pid}_"
    left = [ln for kind in ("uprobe", "kprobe") for ln in perf.probe_events(kind) if tag in ln]
    print(f"\n{signame} during pybpf run bashreadline: {len(progs)} progs, {len(links)} links; left "
          f"{len(gone('prog', progs)) + len(gone('link', links))}, probe events left {len(left)}")
    assert not gone("prog", progs) and not gone("link", links) and left == []
