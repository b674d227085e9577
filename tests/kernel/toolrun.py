"""Running a pybpf tool or command as a child process in kernel tests: read its output lines as they come,
wait (with a generous deadline, never a timing assertion) for a line, stop it with SIGINT."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

DEADLINE = 30.0  # seconds to wait for something that must happen: a failure, not a measurement


class ToolProcess:
    """``python -m MODULE ARGS`` with stdout and stderr read line by line in the background."""

    def __init__(self, module: str, *args: str):
        self.argv = [sys.executable, "-m", module, *args]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr_lines: list[str] = []
        self.seen: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, put: Callable[[str | None], None]) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def _err(self, line: str | None) -> None:
        if line is not None:
            self.stderr_lines.append(line)

    def wait_stderr(self, text: str, deadline: float = DEADLINE) -> None:
        """Wait until a stderr line contains ``text`` (the tool says it is ready)."""
        end = time.monotonic() + deadline
        while not any(text in ln for ln in self.stderr_lines):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"{self.argv}: no stderr line with {text!r}; stderr: {self.stderr_lines}")
            time.sleep(0.05)

    def next_line(self, match: Callable[[str], bool], deadline: float = DEADLINE,
                  poke: Callable[[], None] | None = None) -> str:
        """The next stdout line ``match`` accepts (earlier ones are kept in :attr:`seen`); ``poke()`` runs
        before each wait, to make the event happen again if it was missed."""
        end = time.monotonic() + deadline
        while True:
            if poke is not None:
                poke()
            try:
                line = self.stdout.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() > end:
                    raise AssertionError(f"{self.argv}: no matching line; stderr: {self.stderr_lines}") from None
                continue
            if line is None:
                raise AssertionError(f"{self.argv} exited ({self.proc.wait()}); stderr: {self.stderr_lines}")
            self.seen.append(line)
            if match(line):
                return line

    def next_json(self, match: Callable[[dict[str, Any]], bool], deadline: float = DEADLINE,
                  poke: Callable[[], None] | None = None) -> dict[str, Any]:
        """The next stdout JSON object ``match`` accepts."""
        def ok(line: str) -> bool:
            try:
                return bool(match(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                return False
        return json.loads(self.next_line(ok, deadline, poke))

    def interrupt(self, deadline: float = DEADLINE) -> int:
        """Ctrl-C: send SIGINT, wait for the exit, return the exit status (the rest of stdout goes to seen)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.argv} did not stop on SIGINT") from None
        while True:
            try:
                line = self.stdout.get(timeout=DEADLINE)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return rc

    def kill(self) -> None:
        """Make sure the child is gone (for ``finally``)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def gone(kind: str, ids: set[int], deadline: float = DEADLINE) -> set[int]:
    """Wait until none of ``ids`` is among the kernel's ``kind`` ids (freeing is asynchronous); return those
    still there at the deadline."""
    from pybpf.sys import syscall

    end = time.monotonic() + deadline
    while True:
        left = ids & set(syscall.object_ids(kind))
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)
