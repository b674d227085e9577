#!/usr/bin/env python3
"""Scenario S8: print the command lines typed in any bash, from a uretprobe on bash's readline().

    sudo python3 examples/s8_bash_readline.py            # until Ctrl-C: type commands in another bash
    sudo python3 examples/s8_bash_readline.py --demo     # types two commands into a bash on a pseudo-terminal

The prebuilt bashreadline.bpf.o has SEC("uretprobe//bin/bash:readline"): Program.attach() reads that
section, finds readline in /bin/bash's symbol table, turns its address into a file offset and attaches a
uretprobe (uprobe PMU, or tracefs uprobe_events on kernels without it).  Events arrive on a ring buffer and
are decoded with the object's BTF (struct readline_event).
"""
from __future__ import annotations

import argparse
import os
import pty
import time
from typing import Any

from pybpf.loader import load
from pybpf.maps.btfcodec import btf_codec
from pybpf.maps.ringbuf import RingBuffer
from pybpf.prebuilt import path as prebuilt


def type_into_bash(lines: list[str]) -> None:
    """Run an interactive bash on a pseudo-terminal and type ``lines`` into it."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
    for line in lines + ["exit"]:
        time.sleep(0.3)  # let bash reach its prompt (only pacing the demo; nothing depends on it)
        os.write(fd, line.encode() + b"\n")
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass  # the terminal closes when bash exits
    os.waitpid(pid, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="type two commands into a bash on a pseudo-terminal")
    args = ap.parse_args()

    with load(prebuilt("bashreadline")) as obj:
        prog = obj.programs["bash_readline"]
        codec = btf_codec(obj.spec.btf, obj.spec.btf.find_one("readline_event"))

        def show(event: Any) -> None:  # char arrays arrive as str
            print(f"{event.pid:>7} {event.comm:<16} {event.line}")

        with prog.attach() as link, RingBuffer(obj.maps["events"], show, decode=codec) as ring:
            print(f"{link!r}\n{'PID':>7} {'COMM':<16} LINE")
            if args.demo:
                type_into_bash(["echo hello from pybpf", "uname -s"])
                ring.poll(1.0)
                return
            try:
                while True:
                    ring.poll(1.0)
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
