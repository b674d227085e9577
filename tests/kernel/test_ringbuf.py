"""Ring buffers on the real kernel: records produced by BPF programs run through BPF_PROG_TEST_RUN (a socket
filter calling bpf_ringbuf_output/reserve with a sequence number from a map) are consumed exactly once, in
order, with nothing lost unless the program saw the ring full."""
from __future__ import annotations

import asyncio
import gc
import os
import struct
import threading
import time

import pytest
from streamprogs import NEXT_SEQ

import pybpf
from pybpf.maps.map import Map
from pybpf.sys import abi, syscall
from pybpf.sys.fd import FD
from pybpf.maps.reader import Poller
from pybpf.maps.ringbuf import RingBuffer, UserRingBuffer

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

PACKET = b"\0" * 64

# r7 = &counters[0]; r1 = seq = counters.produced++ (atomically); then the body; counters.dropped++ on failure.
HEAD = """
    r6 = r1
""" + NEXT_SEQ + """
"""
TAIL = """
    if r0 == 0 goto out
""" + (DROPPED := """
dropped:
    r1 = 1
    lock *(u64 *)(r7 + 8) += r1
out:
    r0 = 0
    exit
""")
# 16-byte records (seq, seq * 3) with bpf_ringbuf_output.
OUTPUT = HEAD + """
    *(u64 *)(r10 - 24) = r1
    r1 *= 3
    *(u64 *)(r10 - 16) = r1
    r1 = map[rb] ll
    r2 = r10
    r2 += -24
    r3 = 16
    r4 = 0
    call bpf_ringbuf_output
""" + TAIL
# Records of 8, 16, 24 or 32 bytes (by seq & 3), each starting with seq.
VARIABLE = HEAD + """
    *(u64 *)(r10 - 40) = r1
    *(u64 *)(r10 - 32) = r1
    *(u64 *)(r10 - 24) = r1
    *(u64 *)(r10 - 16) = r1
    r3 = r1
    r3 &= 3
    r3 <<= 3
    r3 += 8
    r1 = map[rb] ll
    r2 = r10
    r2 += -40
    r4 = 0
    call bpf_ringbuf_output
""" + TAIL
# bpf_ringbuf_reserve; odd sequence numbers are discarded.
RESERVE = HEAD + """
    r8 = r1
    r1 = map[rb] ll
    r2 = 16
    r3 = 0
    call bpf_ringbuf_reserve
    if r0 == 0 goto dropped
    *(u64 *)(r0 + 0) = r8
    *(u64 *)(r0 + 8) = r8
    r1 = r0
    r2 = 0
    r8 &= 1
    if r8 != 0 goto discard
    call bpf_ringbuf_submit
    goto out
discard:
    call bpf_ringbuf_discard
    goto out
""" + DROPPED


class Producer:
    """A ring buffer map, a counters map (produced, dropped) and a program filling the ring when run."""

    def __init__(self, text: str = OUTPUT, ring_size: int = 1 << 20):
        self.rb = Map.create("ringbuf", 0, 0, ring_size, name="t_rb")
        self.counters = Map.create("array", 4, 16, 1, key="I", value=("QQ", "produced dropped"))
        self.prog = pybpf.Program.load(text, "socket_filter", name="t_rb_prod",
                                       maps={"rb": self.rb, "counters": self.counters})

    def run(self, n: int) -> None:
        self.prog.test_run(PACKET, repeat=n)

    @property
    def produced(self) -> int:
        return self.counters[0].produced

    @property
    def dropped(self) -> int:
        return self.counters[0].dropped

    def close(self) -> None:
        for o in (self.prog, self.rb, self.counters):
            o.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_raw_records_in_order() -> None:
    with Producer() as p:
        p.run(1000)
        got: list[bytes] = []
        with RingBuffer(p.rb, lambda rec: got.append(bytes(rec))) as r:
            assert r.poll(timeout=1) == 1000
            assert r.poll(timeout=0) == 0
        seqs = [int.from_bytes(g[:8], "little") for g in got]
        assert seqs == list(range(1000)) and all(len(g) == 16 for g in got)


def test_decoded_records() -> None:
    with Producer() as p:
        p.run(500)
        got = []
        with RingBuffer(p.rb, got.append, decode=("=QQ", "seq triple")) as r:
            assert r.consume() == 500
        assert [g.seq for g in got] == list(range(500)) and all(g.triple == 3 * g.seq for g in got)
        p.run(10)
        with RingBuffer(p.rb, decode="=Q") as scalar:  # a one-field format decodes to ints
            assert scalar.read() == list(range(500, 510))


def test_discarded_records_are_skipped() -> None:
    with Producer(RESERVE) as p:
        p.run(200)
        with RingBuffer(p.rb, decode=("=QQ", "seq again")) as r:
            got = r.read()
        assert [g.seq for g in got] == list(range(0, 200, 2)) and p.dropped == 0


def test_variable_sized_records() -> None:
    with Producer(VARIABLE) as p:
        p.run(400)
        with RingBuffer(p.rb) as r:
            got = r.read()
        assert [int.from_bytes(g[:8], "little") for g in got] == list(range(400))
        assert [len(g) for g in got] == [8 + 8 * (i & 3) for i in range(400)]


def test_mixed_decoders_and_short_records() -> None:
    """Each ring of a reader keeps its own decoder; a record shorter than its decoder is reported once."""
    with Producer() as fixed, Producer(VARIABLE) as variable:
        fixed.run(2)
        variable.run(4)  # 8, 16, 24 and 32 bytes
        with RingBuffer(fixed.rb, decode=("=QQ", "seq triple")) as r:
            r.add(variable.rb)
            got = r.read()
            assert sorted(g.seq for g in got if not isinstance(g, bytes)) == [0, 1]
            assert sorted(len(g) for g in got if isinstance(g, bytes)) == [8, 16, 24, 32]
        variable.run(4)
        with RingBuffer(variable.rb, decode="=QQ") as strict:
            with pytest.raises(pybpf.errors.CodecError, match="8-byte record"):
                strict.read()
            assert [g[0] for g in strict.read()] == [5, 6, 7]


def test_iterator_and_timeout() -> None:
    with Producer() as p:
        p.run(50)
        with RingBuffer(p.rb, decode="=QQ") as r:
            t0 = time.monotonic()
            got = list(r.records(timeout=0.2))  # ends after a 0.2 s wait brings nothing
            assert [g[0] for g in got] == list(range(50)) and time.monotonic() - t0 >= 0.15


def test_callback_error_consumes_the_failing_record() -> None:
    with Producer() as p:
        p.run(10)
        seen: list[int] = []

        def cb(rec: tuple[int, int]) -> None:
            seen.append(rec[0])
            if rec[0] == 3:
                raise RuntimeError("boom")

        with RingBuffer(p.rb, cb, decode="=QQ") as r:
            with pytest.raises(RuntimeError):
                r.consume()
            assert r.consume() == 6
        assert seen == list(range(10))


def test_under_load_nothing_lost_or_duplicated() -> None:
    """A producer thread floods a small ring while the consumer polls: every record is delivered once, in
    order, and produced == consumed + dropped (drops are what the program saw fail)."""
    with Producer(ring_size=4 * os.sysconf("SC_PAGE_SIZE")) as p:
        seqs: list[int] = []
        with RingBuffer(p.rb, decode="=QQ") as r:
            def produce() -> None:
                for _ in range(20):
                    p.run(5000)
            t = threading.Thread(target=produce)
            t.start()
            while t.is_alive():
                seqs.extend(rec[0] for rec in r.read(timeout=0.05))
            t.join()
            seqs.extend(rec[0] for rec in r.read())
        assert p.produced == 100_000
        assert len(seqs) + p.dropped == p.produced
        assert all(a < b for a, b in zip(seqs, seqs[1:]))  # in order, no duplicates


def test_several_rings_one_reader_and_a_poller() -> None:
    with Producer() as a, Producer() as b:
        a.run(30)
        b.run(20)
        got: list[tuple[str, int]] = []
        with RingBuffer(a.rb, lambda rec: got.append(("a", rec[0])), decode="=QQ") as r:
            r.add(b.rb, lambda rec: got.append(("b", rec[0])))
            assert r.poll(1) == 50
        assert sorted(got) == [("a", i) for i in range(30)] + [("b", i) for i in range(20)]
        a.run(5)
        b.run(5)
        got.clear()
        ra = RingBuffer(a.rb, lambda rec: got.append(("a", rec[0])), decode="=QQ")
        rb = RingBuffer(b.rb, lambda rec: got.append(("b", rec[0])), decode="=QQ")
        with Poller(ra, rb) as poller:
            assert poller.poll(1) == 10
        assert ra.closed and rb.closed
        assert sorted(got) == [("a", i) for i in range(30, 35)] + [("b", i) for i in range(20, 25)]


def test_close_wakes_a_waiting_thread() -> None:
    with Producer() as p:
        r = RingBuffer(p.rb, lambda rec: None)
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(r.poll(timeout=None)))
        t.start()
        time.sleep(0.2)
        assert t.is_alive()  # blocked in epoll_wait
        r.close()
        t.join(timeout=5)
        assert not t.is_alive() and result == [0]
        assert r.poll(0) == 0 and list(r.records(timeout=0)) == []


def test_callback_may_close_its_reader() -> None:
    """Closing from inside a callback (a common way to stop) neither deadlocks nor breaks the poll: the
    current batch ends, then everything is released."""
    with Producer() as p:
        p.run(10)
        seen: list[int] = []

        def stop_at_three(rec: tuple[int, int]) -> None:
            seen.append(rec[0])
            if rec[0] == 3:
                r.close()

        r = RingBuffer(p.rb, stop_at_three, decode="=QQ")
        assert r.poll(1) == 10 and r.closed and seen == list(range(10))
        assert r.poll(0) == 0
        seen.clear()
        p.run(4)
        inner = RingBuffer(p.rb, lambda rec: (seen.append(rec[0]), inner.close()), decode="=QQ")
        with Poller(inner) as poller:
            poller.poll(1)
            assert inner.closed and seen == [10, 11, 12, 13]


def test_asyncio() -> None:
    with Producer() as p:
        async def main() -> list[int]:
            with RingBuffer(p.rb, decode="=QQ") as r:
                loop = asyncio.get_running_loop()
                loop.call_later(0.1, p.run, 5)
                out = []
                async for rec in r:
                    out.append(rec[0])
                    if len(out) == 5:
                        break
                got: list[int] = []
                r2 = RingBuffer(p.rb, lambda rec: got.append(rec[0]), decode="=QQ")
                loop.call_later(0.1, p.run, 3)
                n = await r2.poll_async(timeout=5)
                r2.close()
                return out + got[:n]
        assert asyncio.run(main()) == [0, 1, 2, 3, 4, 5, 6, 7]


def test_fds_and_mappings_released() -> None:
    with Producer() as p:
        gc.collect()
        fds = len(os.listdir("/proc/self/fd"))
        maps = open("/proc/self/maps").read().count("anon_inode:bpf-map")
        for _ in range(5):
            r = RingBuffer(p.rb.fd, lambda rec: None)  # an fd: the reader owns a duplicate
            r.close()
        for _ in range(5):
            RingBuffer(p.rb, lambda rec: None)  # dropped: the garbage collector closes it
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) == fds
        assert open("/proc/self/maps").read().count("anon_inode:bpf-map") == maps


# A syscall program draining a user ring buffer: sums the first u64 of every record into counters[0].
DRAIN = """
    r1 = map[urb] ll
    r2 = callback ll
    r3 = 0
    r4 = 0
    call bpf_user_ringbuf_drain
    r0 = 0
    exit
callback:
    r6 = r1
    *(u64 *)(r10 - 8) = 0
    r1 = r10
    r1 += -8
    r2 = 8
    r3 = r6
    r4 = 0
    r5 = 0
    call bpf_dynptr_read
    *(u32 *)(r10 - 12) = 0
    r1 = map[counters] ll
    r2 = r10
    r2 += -12
    call bpf_map_lookup_elem
    if r0 == 0 goto done
    r1 = *(u64 *)(r10 - 8)
    lock *(u64 *)(r0 + 0) += r1
    r1 = 1
    lock *(u64 *)(r0 + 8) += r1
done:
    r0 = 0
    exit
"""


def _drain_btf() -> tuple[FD, bytes]:
    """BTF for DRAIN's two functions (callbacks need func_info) and its func_info records."""
    from pybpf.asm import parse
    from pybpf.btf import BTF, Func, FuncProto, Int, Param, Ptr

    btf = BTF()
    i32 = btf.add(Int("int", 4, abi.BTF_INT_SIGNED))
    vp = btf.add(Ptr(0))
    main = btf.add(Func("drain", btf.add(FuncProto(i32, [Param("ctx", vp)])), abi.BTF_FUNC_GLOBAL))
    cb = btf.add(Func("callback", btf.add(FuncProto(i32, [Param("d", vp), Param("c", vp)])), abi.BTF_FUNC_STATIC))
    slot = 0
    for ins in parse(DRAIN):
        if ins.symbol == "callback":
            break
        slot += ins.size
    return FD(syscall.btf_load(btf.to_bytes())), struct.pack("=IIII", 0, main, slot, cb)


def test_user_ringbuf_producer() -> None:
    from conftest import kernel_skip

    try:
        urb_map = Map.create("user_ringbuf", 0, 0, 4 * os.sysconf("SC_PAGE_SIZE"))
    except pybpf.KernelError as e:
        kernel_skip(f"no BPF_MAP_TYPE_USER_RINGBUF: {e}")
    with urb_map, Map.create("array", 4, 16, 1, key="I", value="QQ") as counters:
        btf_fd, func_info = _drain_btf()
        with btf_fd:
            prog = pybpf.Program.load(DRAIN, "syscall", name="t_urb", prog_flags=abi.BPF_F_SLEEPABLE,
                                      maps={"urb": urb_map, "counters": counters}, prog_btf_fd=btf_fd.fd,
                                      func_info=func_info, func_info_rec_size=8)
        with prog, UserRingBuffer(urb_map, encode="=Q") as urb:
            for v in range(1, 11):
                urb.write(v)
            res = urb.reserve(8)
            res.data[:] = (100).to_bytes(8, "little")
            res.submit()
            urb.reserve(8).discard()
            urb.write((1000).to_bytes(8, "little") + bytes(8))
            prog.test_run(ctx=b"")
            assert counters[0] == (55 + 100 + 1000, 12)
            with pytest.raises(pybpf.KernelError) as ei:
                for _ in range(10_000):
                    urb.write(1)
            assert ei.value.errno_name == "ENOSPC"
