"""Concurrency on the real kernel: map operations from several threads (each with its own Map on the shared
kernel map, as pybpf.maps documents: a Map's buffers are not shared between threads) while a reader thread
consumes a ring buffer a program fills; readers closed while threads wait in epoll -- in ``poll``, ``read``,
``records()``, a Poller, asyncio -- wake up and end cleanly, with their fds released."""
from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from streamprogs import NEXT_SEQ

import pybpf
from pybpf.maps.map import Map
from pybpf.maps.perfbuf import PerfBuffer
from pybpf.maps.reader import Poller, Reader
from pybpf.maps.ringbuf import RingBuffer

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

DEADLINE = 30.0  # seconds a woken thread has to finish: a hang guard, not a measurement
PACKET = b"\0" * 64
THREADS, KEYS, ROUNDS = 4, 64, 25

# Each run: counters[0] += 1 and a ring record holding the new count.
PRODUCE = NEXT_SEQ + """
    *(u64 *)(r10 - 16) = r1
    r1 = map[rb] ll
    r2 = r10
    r2 += -16
    r3 = 8
    r4 = 0
    call bpf_ringbuf_output
out:
    r0 = 0
    exit
"""


def _fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def _run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    """Run each target in a thread; return the exceptions they raised."""
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported to the test
                errors.append(e)
        return run
    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 4)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def test_map_operations_from_threads_while_a_reader_consumes() -> None:
    fds_before = _fds()
    with Map.create("hash", 4, 8, THREADS * KEYS, name="t_conc_h", key="I", value="Q") as shared, \
            Map.create("ringbuf", 0, 0, 1 << 16, name="t_conc_rb") as rb, \
            Map.create("array", 4, 8, 1, key="I", value="Q") as counters, \
            pybpf.Program.load(PRODUCE, "socket_filter", name="t_conc_p", maps={"rb": rb, "counters": counters}) \
            as prog:
        seen: list[int] = []
        stop = threading.Event()
        reader = RingBuffer(rb, lambda rec: seen.append(int.from_bytes(rec[:8], "little")))

        def consume() -> None:
            while not stop.is_set():
                reader.poll(timeout=0.05)

        def worker(n: int) -> Callable[[], None]:
            def run() -> None:
                with Map.from_fd(shared.dup_fd(), key="I", value="Q") as m:  # this thread's own Map
                    mine = range(n * KEYS, (n + 1) * KEYS)
                    for r in range(ROUNDS):
                        for k in mine:
                            m[k] = r * 1000 + k
                        assert all(m[k] == r * 1000 + k for k in mine)
                        for k in mine[::2]:
                            del m[k]
                        assert not any(k in m for k in mine[::2])
                        m.update_batch({k: r for k in mine[::2]})
                        len(m)  # iterates keys other threads are changing
                        prog.test_run(PACKET, repeat=20)
            return run

        consumer = threading.Thread(target=consume)
        consumer.start()
        try:
            errors = _run_threads([worker(n) for n in range(THREADS)])
        finally:
            stop.set()
            consumer.join(DEADLINE)
        reader.consume()
        reader.close()
        assert not errors, errors
        expected = {k: (ROUNDS - 1) if (k % KEYS) % 2 == 0 else (ROUNDS - 1) * 1000 + k
                    for n in range(THREADS) for k in range(n * KEYS, (n + 1) * KEYS)}
        assert dict(shared.items()) == expected
        produced = counters[0]
        assert sorted(seen) == list(range(produced)) and produced == THREADS * ROUNDS * 20
        print(f"\nconcurrency: {THREADS} threads x {ROUNDS} rounds of {KEYS}-key update/lookup/delete/batch on "
              f"one hash map while a reader thread consumed {len(seen)} of {produced} ring records")
    assert _fds() == fds_before


def _ring() -> tuple[Map, Callable[[], Reader]]:
    rb = Map.create("ringbuf", 0, 0, 1 << 14, name="t_conc_w")
    return rb, lambda: RingBuffer(rb, lambda rec: None)


def _perf() -> tuple[Map, Callable[[], Reader]]:
    pm = Map.create("perf_event_array", 4, 4, os.cpu_count() or 1, name="t_conc_pf")
    return pm, lambda: PerfBuffer(pm, lambda cpu, rec: None, pages=1)


WAITS: dict[str, Callable[[Reader], Any]] = {
    "poll": lambda r: r.poll(timeout=None),
    "read": lambda r: r.read(timeout=None),
    "records": lambda r: list(r.records(timeout=None)),
}


@pytest.mark.parametrize("make", [_ring, _perf], ids=["ringbuf", "perfbuf"])
def test_close_wakes_every_waiting_thread(make: Callable[[], tuple[Map, Callable[[], Reader]]]) -> None:
    """Three threads block in poll(None), read(None) and records(None) on one reader; close() from the main
    thread wakes them all: poll gives 0, read [], the iterator ends.  Closing again, from several threads at
    once, is harmless."""
    mp, new_reader = make()
    fds_before = _fds()
    try:
        reader = new_reader()
        results: dict[str, Any] = {}
        started = threading.Barrier(len(WAITS) + 1)

        def waiter(name: str) -> Callable[[], None]:
            def run() -> None:
                started.wait(DEADLINE)
                results[name] = WAITS[name](reader)
            return run
        threads = [threading.Thread(target=waiter(n)) for n in WAITS]
        for t in threads:
            t.start()
        started.wait(DEADLINE)
        time.sleep(0.1)  # let them reach epoll_wait (not an assertion: they are woken whatever they reached)
        assert all(t.is_alive() for t in threads), "a waiter returned with nothing to read"
        errors = _run_threads([reader.close] * 3)
        for t in threads:
            t.join(DEADLINE)
        assert not any(t.is_alive() for t in threads), "close() did not wake a waiting thread"
        assert not errors and reader.closed
        assert results == {"poll": 0, "read": [], "records": []}
        assert reader.poll(0) == 0 and reader.read() == []
    finally:
        mp.close()
    assert _fds() == fds_before - 1  # the map too is closed now


def test_closing_a_poller_wakes_its_waiter_and_closes_its_readers() -> None:
    rb, new_ring = _ring()
    pm, new_perf = _perf()
    try:
        poller = Poller(new_ring(), new_perf())
        out: list[int] = []
        t = threading.Thread(target=lambda: out.append(poller.poll(None)))
        t.start()
        time.sleep(0.1)
        poller.close()
        t.join(DEADLINE)
        assert not t.is_alive() and out == [0]
        assert all(r.closed for r in poller.readers)
    finally:
        rb.close()
        pm.close()


def test_asyncio_waiter_ends_when_another_thread_closes_the_reader() -> None:
    rb, new_ring = _ring()
    try:
        reader = new_ring()

        async def main() -> int:
            loop = asyncio.get_running_loop()
            loop.call_later(0.1, lambda: threading.Thread(target=reader.close).start())
            return await asyncio.wait_for(reader.poll_async(timeout=None), DEADLINE)
        assert asyncio.run(main()) == 0
        assert reader.closed
    finally:
        rb.close()
