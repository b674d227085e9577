"""No silent loss: when the producer outruns the consumer, produced = consumed + reported lost, exactly.

tests/kernel/test_ringbuf.py and test_perfbuf.py prove it under a concurrent consumer (and perf's lost
records); this adds the ring buffer *overflow*: nothing consumes while a program fills a small ring, so
``bpf_ringbuf_output`` / ``bpf_ringbuf_reserve`` fail and the program counts each failure in a map -- the
reader then delivers exactly what fit, in order, and the program's count accounts for every other record.
Rounds of overflow and drain repeat, and a slow consumer thread races the producer.  Figures are printed."""
from __future__ import annotations

import os
import threading

import pytest
from streamprogs import NEXT_SEQ

import pybpf
from pybpf.maps.map import Map
from pybpf.maps.ringbuf import RingBuffer

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

PAGE = os.sysconf("SC_PAGE_SIZE")
PACKET = b"\0" * 64
RECORD = 16  # payload bytes: (seq, seq ^ 0x5a5a) -- 24 bytes in the ring with its header

# counters[0] = (produced, failed); each run sends record (seq, seq ^ 0x5a5a) with ringbuf_output or reserve.
START = NEXT_SEQ + """
    r8 = r1
"""
FAILED = """
failed:
    r1 = 1
    lock *(u64 *)(r7 + 8) += r1
out:
    r0 = 0
    exit
"""
OUTPUT = START + """
    *(u64 *)(r10 - 24) = r8
    r1 = r8
    r1 ^= 0x5a5a
    *(u64 *)(r10 - 16) = r1
    r1 = map[rb] ll
    r2 = r10
    r2 += -24
    r3 = 16
    r4 = 0
    call bpf_ringbuf_output
    if r0 != 0 goto failed
    goto out
""" + FAILED
RESERVE = START + """
    r1 = map[rb] ll
    r2 = 16
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto failed
    *(u64 *)(r0 + 0) = r8
    r1 = r8
    r1 ^= 0x5a5a
    *(u64 *)(r0 + 8) = r1
    r1 = r0
    r2 = 0
    call bpf_ringbuf_submit
    goto out
""" + FAILED


class Ring:
    """A ring buffer of ``pages`` pages, its counters and the program producing into it."""

    def __init__(self, text: str, pages: int = 1):
        self.rb = Map.create("ringbuf", 0, 0, pages * PAGE, name="t_loss_rb")
        self.counters = Map.create("array", 4, 16, 1, key="I", value=("QQ", "produced failed"))
        self.prog = pybpf.Program.load(text, "socket_filter", name="t_loss",
                                       maps={"rb": self.rb, "counters": self.counters})

    def produce(self, n: int) -> None:
        """Run the program ``n`` times (BPF_PROG_TEST_RUN)."""
        self.prog.test_run(PACKET, repeat=n)

    def counts(self) -> tuple[int, int]:
        """(produced, failed) as the program counted them."""
        c = self.counters[0]
        return c.produced, c.failed

    def close(self) -> None:
        for o in (self.prog, self.rb, self.counters):
            o.close()


def _check(seqs: list[int], produced: int, failed: int) -> None:
    assert len(seqs) + failed == produced, (len(seqs), failed, produced)
    assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs), "duplicated or out of order"


@pytest.mark.parametrize("text", [OUTPUT, RESERVE], ids=["ringbuf_output", "ringbuf_reserve"])
def test_overflow_with_nobody_reading(text: str) -> None:
    ring = Ring(text)
    try:
        capacity = PAGE // (RECORD + 8)
        seqs: list[int] = []
        rounds, total = 5, 0
        with RingBuffer(ring.rb, decode=("=QQ", "seq check")) as reader:
            for _ in range(rounds):
                ring.produce(1000)  # far more than one page holds: the rest fail in the program
                got = reader.read()
                assert all(r.check == r.seq ^ 0x5a5a for r in got)
                assert len(got) == capacity  # exactly what fit, the ring drained between rounds
                seqs += [r.seq for r in got]
                total += 1000
        produced, failed = ring.counts()
        print(f"\nring overflow ({'output' if text is OUTPUT else 'reserve'}): produced {produced}, consumed "
              f"{len(seqs)}, lost (counted by the program) {failed}, ring capacity {capacity} records")
        assert produced == total
        _check(seqs, produced, failed)
    finally:
        ring.close()


def test_slow_consumer_racing_the_producer() -> None:
    """A consumer thread slowed down in its callback while the main thread produces as fast as it can: every
    record is delivered once and in order, or counted as failed by the program -- nothing in between."""
    ring = Ring(OUTPUT, pages=2)
    seqs: list[int] = []
    done = threading.Event()

    def slow(rec: tuple[int, int]) -> None:
        seqs.append(rec[0])
        if len(seqs) % 64 == 0:
            threading.Event().wait(0.001)  # yield: the producer runs ahead and overflows the ring

    try:
        with RingBuffer(ring.rb, slow, decode="=QQ") as reader:
            def consume() -> None:
                while not done.is_set():
                    reader.poll(timeout=0.05)
            t = threading.Thread(target=consume)
            t.start()
            try:
                for _ in range(40):
                    ring.produce(2000)
            finally:
                done.set()
                t.join(30)
            assert not t.is_alive()
            reader.consume()
        produced, failed = ring.counts()
        print(f"\nslow consumer: produced {produced}, consumed {len(seqs)}, lost (counted) {failed}")
        assert produced == 80_000 and failed > 0
        _check(seqs, produced, failed)
    finally:
        ring.close()
