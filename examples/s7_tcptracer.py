#!/usr/bin/env python3
"""Scenario S7: the TCP connection tracer -- connect, accept and close events with pid, comm, addresses,
ports and network namespace, plus an ``fdinstall_pids`` map that user space updates and deletes entries of.

    sudo python3 examples/s7_tcptracer.py            # every TCP event on the machine, until Ctrl-C
    sudo python3 examples/s7_tcptracer.py --demo     # two loopback connections from this script, then stop

Kprobes where the kernel has them (tcptracer_kprobe.bpf.o), else tracepoints (tcptracer.bpf.o:
sock/inet_sock_set_state and the accept syscalls).  Records (``struct tcp_event``) come through a perf event
array and are decoded with the object's BTF.  While this process's pid is in ``fdinstall_pids`` each accepted
socket also gives an fd_install event; the demo deletes the pid before its second connection.
(The ready-made tool: ``pybpf-tcptracer``.)
"""
from __future__ import annotations

import argparse
import os
import socket
import time
from typing import Any

from pybpf.prebuilt import path as prebuilt

import pybpf
from pybpf.errors import NotFound
from pybpf.tools.tcptracer import EVENT_NAMES, address, choose_kind

OBJECTS = {"kprobe": "tcptracer_kprobe", "tracepoint": "tcptracer"}


def connect_once() -> int:
    """A loopback TCP connection, accepted and closed; returns the server's port."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname()):
            srv.accept()[0].close()
        return srv.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="make two loopback connections, then stop")
    args = ap.parse_args()

    name = OBJECTS[choose_kind("auto")]
    with pybpf.load(prebuilt(name)) as obj:
        events: list[Any] = []

        def show(cpu: int, e: Any) -> None:
            if args.demo and e.pid != os.getpid():
                return
            print(f"{EVENT_NAMES.get(e.type, e.type):<10} pid {e.pid:<7} {e.comm:<16} "
                  f"{address(e.family, e.saddr)}:{e.sport} -> {address(e.family, e.daddr)}:{e.dport} "
                  f"netns {e.netns} fd {e.fd}", flush=True)
            events.append(e)

        links = []
        for prog in obj.programs.values():
            try:
                links.append(prog.attach())
            except NotFound as e:  # a hook this kernel lacks (fd_install may be inlined, v6 absent...)
                print(f"skipping {prog.name}: {e}")
        watched = obj.maps["fdinstall_pids"]
        try:
            with pybpf.PerfBuffer(obj.maps["events"], show, decode=obj.spec.btf.find_one("tcp_event")) as perf:
                print(f"{name}: {len(links)} programs attached", flush=True)
                if not args.demo:
                    while True:
                        perf.poll(1.0)
                watched[os.getpid()] = 1  # report new fds of this process
                connect_once()
                del watched[os.getpid()]  # and no more
                unwatched_at = time.monotonic_ns()  # events carry bpf_ktime_get_ns(), the same clock
                second = connect_once()
                while not any(EVENT_NAMES.get(e.type) == "accept" and e.sport == second for e in events):
                    perf.poll(1.0)
                perf.poll(0.5)
                installs = [e.ts_ns for e in events if EVENT_NAMES.get(e.type) == "fd_install"]
                before = sum(ts < unwatched_at for ts in installs)
                print(f"fd_install events: while watched {before}, after {len(installs) - before}")
        except KeyboardInterrupt:
            pass
        finally:
            for lk in links:
                lk.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
