"""Reading ``bpf_printk`` output: the kernel's trace buffer, through tracefs ``trace_pipe``.

The buffer is global: other programs' lines share it, and reading consumes them.  :class:`TracePipe` reads
without blocking (waiting at most ``timeout``), parses each line into a :class:`TraceLine`, and filters by
process or by a marker your program prints::

    with TracePipe() as tp:
        tp.skip_backlog()                      # drop what was there before
        for line in tp.read(timeout=1, contains="hello"):
            print(line.pid, line.message)
"""
from __future__ import annotations

import errno as _errno
import os
import re
import select
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

from .errors import kernel_error
from .sys.fd import FD
from .sys.fs import tracefs

_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[-\d]+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\d][^\s]*)\s+)?(?P<ts>\d+\.\d+):\s+(?P<func>[^:]+):\s?(?P<msg>.*)$")


@dataclass(frozen=True)
class TraceLine:
    """One line of the trace buffer: who wrote it (task name, thread id, CPU), when, and what."""

    task: str
    pid: int  # the thread id (the kernel's pid)
    cpu: int
    flags: str
    timestamp: float
    function: str  # bpf_trace_printk, or the event name
    message: str
    raw: str


def parse_line(line: str) -> TraceLine | None:
    """Parse one trace_pipe line (``task-pid [cpu] flags ts: func: msg``); None for lines of another shape."""
    m = _LINE.match(line.rstrip("\n"))
    if not m:
        return None
    return TraceLine(m["task"].strip(), int(m["pid"]), int(m["cpu"]), m["flags"] or "", float(m["ts"]),
                     m["func"].strip(), m["msg"], line.rstrip("\n"))


class TracePipe:
    """A non-blocking reader of tracefs ``trace_pipe`` (mounting tracefs if needed)."""

    def __init__(self, path: str | None = None):
        self.path = path or os.path.join(tracefs(), "trace_pipe")
        try:
            self._fd = FD(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError as e:
            raise kernel_error("open trace_pipe", e.errno or _errno.EIO, self.path,
                               hint="reading the trace buffer needs root (or tracefs access)") from None
        self._partial = b""

    def fileno(self) -> int:
        """The pipe's fd (for select/poll)."""
        return self._fd.fd

    def close(self) -> None:
        """Close the pipe."""
        self._fd.close()

    def __enter__(self) -> TracePipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_available(self) -> list[str]:
        chunks = []
        while True:
            try:
                data = os.read(self._fd.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError as e:
                raise kernel_error("read trace_pipe", e.errno or _errno.EIO, self.path) from None
            if not data:
                break
            chunks.append(data)
        data = self._partial + b"".join(chunks)
        complete, _, self._partial = data.rpartition(b"\n")
        return complete.decode(errors="replace").splitlines() if complete else []

    def read_raw(self, timeout: float = 0.0) -> list[str]:
        """The complete lines available now, waiting up to ``timeout`` seconds for the first ones."""
        lines = self._read_available()
        deadline = time.monotonic() + timeout
        while not lines:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self._fd.fd], [], [], left)
            lines = self._read_available()
        return lines

    def read(self, timeout: float = 0.0, *, pid: int | None = None, contains: str | None = None,
             where: Callable[[TraceLine], bool] | None = None) -> list[TraceLine]:
        """Parsed lines available now (waiting up to ``timeout`` for some), keeping those of thread ``pid``,
        whose message contains ``contains`` and that ``where`` accepts; other lines are consumed too."""
        out = []
        for raw in self.read_raw(timeout):
            line = parse_line(raw)
            if line is None or (pid is not None and line.pid != pid):
                continue
            if (contains is not None and contains not in line.message) or (where is not None and not where(line)):
                continue
            out.append(line)
        return out

    def follow(self, *, pid: int | None = None, contains: str | None = None,
               where: Callable[[TraceLine], bool] | None = None, poll: float = 1.0) -> Iterator[TraceLine]:
        """Yield matching lines as they come, forever (stop by breaking out of the loop)."""
        while True:
            yield from self.read(poll, pid=pid, contains=contains, where=where)

    def skip_backlog(self, timeout: float = 5.0) -> int:
        """Consume everything written before now (through a marker written to ``trace_marker``); return
        how many lines were dropped."""
        marker = f"pybpf-mark-{uuid.uuid4().hex}"
        path = os.path.join(os.path.dirname(self.path), "trace_marker")
        try:
            with open(path, "w") as f:
                f.write(marker)
        except OSError as e:
            raise kernel_error("write trace_marker", e.errno or _errno.EIO, path) from None
        dropped = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for raw in self.read_raw(deadline - time.monotonic()):
                if raw.endswith(marker):
                    return dropped
                dropped += 1
        raise kernel_error("skip trace backlog", _errno.ETIMEDOUT, f"marker not seen within {timeout} s",
                           hint="is tracing_on set to 0 in tracefs?")
