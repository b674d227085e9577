"""Perf buffers on the real kernel: a socket filter run through BPF_PROG_TEST_RUN sends numbered samples with
bpf_perf_event_output(BPF_F_CURRENT_CPU); every sample is read once, in order, records wrapping around the ring
end included, and what the kernel dropped is reported as lost: produced == consumed + lost, exactly."""
from __future__ import annotations

import asyncio
import gc
import os
import select
import threading
from collections.abc import Iterator

import pytest
from streamprogs import NEXT_SEQ

import pybpf
from pybpf.maps.map import Map, cpu_list
from pybpf.maps.perfbuf import PerfBuffer
from pybpf.maps.reader import Poller
from pybpf.maps.ringbuf import RingBuffer

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

PACKET = b"\0" * 64
CPUS = cpu_list("/sys/devices/system/cpu/online")

# Sends 28 bytes (seq, seq * 3, seq * 7 as u64, u32 seq): 40-byte records, which do not divide a page, so some
# records wrap around the end of the ring.  counters = (produced, failed sends).
SEND = """
    r6 = r1
""" + NEXT_SEQ + """
    *(u64 *)(r10 - 40) = r1
    *(u32 *)(r10 - 16) = r1
    r2 = r1
    r2 *= 3
    *(u64 *)(r10 - 32) = r2
    r2 = r1
    r2 *= 7
    *(u64 *)(r10 - 24) = r2
    r1 = r6
    r2 = map[events] ll
    r3 = 0xffffffff ll
    r4 = r10
    r4 += -40
    r5 = %d
    call bpf_perf_event_output
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r7 + 8) += r1
out:
    r0 = 0
    exit
"""
FORMAT = ("=QQQI", "seq triple seven low")


class Sender:
    def __init__(self, size: int = 28):
        self.events = Map.create("perf_event_array", 4, 4, max(CPUS) + 1, name="t_perf")
        self.counters = Map.create("array", 4, 16, 1, key="I", value=("QQ", "produced failed"))
        self.prog = pybpf.Program.load(SEND % size, "socket_filter", name="t_perf_send",
                                       maps={"events": self.events, "counters": self.counters})

    def run(self, n: int) -> None:
        self.prog.test_run(PACKET, repeat=n)

    def flush(self) -> None:
        """One sample from every CPU: the kernel reports a CPU's drops just before its next sample that fits."""
        mask = os.sched_getaffinity(0)
        try:
            for cpu in CPUS:
                os.sched_setaffinity(0, {cpu})
                self.run(1)
        finally:
            os.sched_setaffinity(0, mask)

    def close(self) -> None:
        for o in (self.prog, self.events, self.counters):
            o.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(autouse=True)
def one_cpu() -> Iterator[int]:
    """Every test here runs on one CPU (its threads too): a repeated test run may be moved to another CPU
    between repeats, and samples in two CPUs' rings have no order between them.  ``flush`` still visits all."""
    mask = os.sched_getaffinity(0)
    cpu = min(mask)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, mask)


def test_samples_in_order_across_the_ring_end(one_cpu: int) -> None:
    with Sender() as s:
        got: list[tuple[int, tuple[int, ...]]] = []
        with PerfBuffer(s.events, lambda cpu, rec: got.append((cpu, rec)), decode=FORMAT, pages=1) as pb:
            for _ in range(10):  # 10 x 50 samples of 40 bytes through a 4096-byte ring: it wraps many times
                s.run(50)
                assert pb.poll(timeout=1) == 50
        seqs = [rec.seq for _, rec in got]
        assert seqs == list(range(500)) and pb.lost_total == 0
        assert all(rec.triple == 3 * rec.seq and rec.seven == 7 * rec.seq and rec.low == rec.seq for _, rec in got)
        assert {cpu for cpu, _ in got} == {one_cpu}


def test_raw_samples_and_iteration() -> None:
    with Sender() as s:
        lengths: list[int] = []
        with PerfBuffer(s.events, lambda cpu, rec: lengths.append(len(rec)), pages=2) as pb:
            s.run(20)
            assert pb.consume() == 20
            assert set(lengths) == {28}  # 28 data bytes + the u32 size: already 8-byte aligned
            s.run(5)
            recs = pb.read()
            assert [int.from_bytes(r[:8], "little") for r in recs] == list(range(20, 25))
            assert all(isinstance(r, bytes) for r in recs)


def test_variable_sizes_wrap_and_decode() -> None:
    """Samples of two sizes interleaved: runs of equal records break, wrapped records are copied."""
    with Sender(24) as small, Sender(8) as tiny:
        with Map.create("perf_event_array", 4, 4, max(CPUS) + 1) as shared:
            small.prog.close()
            tiny.prog.close()
            big = pybpf.Program.load(SEND % 24, "socket_filter", maps={"events": shared, "counters": small.counters})
            little = pybpf.Program.load(SEND % 8, "socket_filter", maps={"events": shared, "counters": small.counters})
            with big, little, PerfBuffer(shared, pages=1) as pb:
                got = []
                for i in range(60):
                    (big if i % 3 else little).test_run(PACKET, repeat=7)
                    got += pb.read()
                assert [int.from_bytes(r[:8], "little") for r in got] == list(range(420))
                assert {len(r) for r in got} == {28, 12}  # padded raw sizes of 24 and 8 bytes


def test_lost_samples_are_counted_exactly() -> None:
    with Sender() as s:
        seqs: list[int] = []
        lost_reports: list[tuple[int, int]] = []
        with PerfBuffer(s.events, lambda cpu, rec: seqs.append(rec.seq), decode=FORMAT, pages=1,
                        lost=lambda cpu, n: lost_reports.append((cpu, n))) as pb:
            s.run(5000)  # far more than one page holds: most are dropped
            pb.consume()
            s.flush()
            pb.consume()
            produced, failed = s.counters[0]
            assert produced == 5000 + len(CPUS) and failed > 0
            assert len(seqs) + pb.lost_total == produced
            assert pb.lost_total == failed == sum(n for _, n in lost_reports)
            assert all(a < b for a, b in zip(seqs, seqs[1:]))


def test_under_load_with_a_polling_thread() -> None:
    with Sender() as s:
        seqs: list[int] = []
        with PerfBuffer(s.events, lambda cpu, rec: seqs.append(rec.seq), decode=FORMAT, pages=4,
                        wakeup_events=16) as pb:
            done = threading.Event()

            def produce() -> None:
                for _ in range(20):
                    s.run(2000)
                done.set()
            t = threading.Thread(target=produce)
            t.start()
            while not done.is_set():
                pb.poll(timeout=0.05)
            t.join()
            pb.consume()
            s.flush()
            pb.consume()
            produced, failed = s.counters[0]
            assert produced == 40_000 + len(CPUS) and len(seqs) + pb.lost_total == produced and pb.lost_total == failed
            assert len(set(seqs)) == len(seqs)


def test_wakeup_watermark_and_timeout() -> None:
    with Sender() as s:
        with PerfBuffer(s.events, decode=FORMAT, wakeup_bytes=40 * 100) as pb:
            s.run(10)  # below the watermark: the reader's fd does not become readable...
            assert select.select([pb], [], [], 0.2)[0] == []
            assert len(pb.read()) == 10  # ...but the samples are there for the taking
            s.run(200)
            assert select.select([pb], [], [], 1)[0] == [pb]
            assert len(pb.read()) == 200


def test_close_wakes_waiter_and_cleans_map() -> None:
    with Sender() as s:
        pb = PerfBuffer(s.events, lambda cpu, rec: None)
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(pb.poll(None)))
        t.start()
        t.join(0.2)
        assert t.is_alive()
        pb.close()
        t.join(5)
        assert result == [0] and not any(s.events.delete(c) for c in CPUS)  # close() removed our events


def test_poller_mixes_ring_and_perf_buffers_and_asyncio() -> None:
    with Sender() as s, Map.create("ringbuf", 0, 0, 1 << 16) as rb:
        rprog = pybpf.Program.load("""
            *(u64 *)(r10 - 8) = 77
            r1 = map[rb] ll
            r2 = r10
            r2 += -8
            r3 = 8
            r4 = 0
            call bpf_ringbuf_output
            r0 = 0
            exit
        """, "socket_filter", maps={"rb": rb})
        got: list[object] = []
        with rprog, Poller(PerfBuffer(s.events, lambda cpu, rec: got.append(rec.seq), decode=FORMAT),
                           RingBuffer(rb, lambda rec: got.append(bytes(rec)))) as poller:
            s.run(3)
            rprog.test_run(PACKET, repeat=2)
            assert poller.poll(1) == 5
            assert sorted(got, key=str) == [0, 1, 2] + [(77).to_bytes(8, "little")] * 2

            async def main() -> int:
                asyncio.get_running_loop().call_later(0.05, s.run, 4)
                return await poller.poll_async(timeout=5)
            assert asyncio.run(main()) == 4


def test_fds_released() -> None:
    with Sender() as s:
        gc.collect()
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            PerfBuffer(s.events.fd, lambda cpu, rec: None).close()
        PerfBuffer(s.events, lambda cpu, rec: None)
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) == before
