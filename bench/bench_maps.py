"""Maps and event readers, side by side: pybpf, BCC's Python bindings and a raw floor, in one process.

    python bench/bench_maps.py [--quick] [--wall]

BCC (apt ``python3-bpfcc``) lives in the system interpreter, so this script re-executes itself under
``/usr/bin/python3`` when the current one cannot import ``bcc`` (pybpf only needs cffi's backend, which Debian
ships there).  BCC cannot compile C on this kernel ("Unable to find kernel headers"), so its table classes are
driven over maps pybpf creates (``bcc.table.HashTable``/``RingBuf``/``PerfEventArray`` instances given the map
fd), which is exactly what its Python side does after loading.  Producers are BPF programs run through
BPF_PROG_TEST_RUN; consumer timings exclude producing.  Every figure is the best of several alternating runs;
the ratios are what matters.  Rates are per CPU-second of the measuring thread (user + system time: the
syscalls count), so other processes on a shared machine do not distort them; ``--wall`` uses wall-clock time.
No assertions: this prints.
"""
from __future__ import annotations

import ctypes as ct
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

try:
    import bcc
    import bcc.table
except ImportError:
    bcc = None
    if os.path.exists("/usr/bin/python3") and os.environ.get("PYBPF_BENCH_REEXEC") != "1" and \
            subprocess.run(["/usr/bin/python3", "-c", "import bcc"], capture_output=True).returncode == 0:
        os.environ["PYBPF_BENCH_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])

import pybpf  # noqa: E402
from pybpf.maps.map import Map  # noqa: E402
from pybpf.maps.perfbuf import PerfBuffer  # noqa: E402
from pybpf.maps.ringbuf import RingBuffer  # noqa: E402
from pybpf.sys import abi  # noqa: E402

QUICK = "--quick" in sys.argv
WALL = "--wall" in sys.argv
clock = time.perf_counter if WALL else time.thread_time
"""Timing: CPU time of the measuring thread (user + system, so every syscall counts) unless --wall: on a shared
machine other processes' load then does not leak into the ratios."""
REPEAT = 3 if QUICK else 5
OPS = 50_000 if QUICK else 200_000
DUMP = 100_000
EVENTS = 100_000 if QUICK else 400_000
PACKET = b"\0" * 64
results: list[tuple[str, str, float | None, float | None, float | None, str]] = []


def interleaved(fns: dict[str, Callable[[], int]]) -> dict[str, float]:
    """Best rates of several contenders, their runs interleaved so machine noise hits all alike."""
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(REPEAT):
        for name, fn in fns.items():
            gc.collect()
            t0 = clock()
            n = fn()
            rates[name].append(n / (clock() - t0))
    return {k: max(v) for k, v in rates.items()}


def _mega(v: float | None) -> str:
    return f"{v / 1e6:8.3f}M" if v else "       -"


def row(what: str, unit: str, ours: float | None, theirs: float | None, floor: float | None, target: str = "") -> None:
    results.append((what, unit, ours, theirs, floor, target))
    ratio = f"{ours / theirs:5.2f}x" if ours and theirs else "    - "
    print(f"{what:44s} {_mega(ours)} {_mega(theirs)} {_mega(floor)}  {ratio}  {target}", flush=True)


# --- map operations ---------------------------------------------------------------------------------------

C_FLOOR = r"""
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
static long bpf(int cmd, union bpf_attr *a) { return syscall(__NR_bpf, cmd, a, sizeof(*a)); }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    union bpf_attr a; memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_HASH; a.key_size = 4; a.value_size = 8; a.max_entries = n;
    int fd = bpf(BPF_MAP_CREATE, &a);
    unsigned k; unsigned long long v;
    memset(&a, 0, sizeof a); a.map_fd = fd; a.key = (unsigned long)&k; a.value = (unsigned long)&v;
    double t0 = now();
    for (k = 0; k < (unsigned)n; k++) { v = k; bpf(BPF_MAP_UPDATE_ELEM, &a); }
    double t1 = now();
    for (k = 0; k < (unsigned)n; k++) bpf(BPF_MAP_LOOKUP_ELEM, &a);
    double t2 = now();
    for (k = 0; k < (unsigned)n; k++) bpf(BPF_MAP_DELETE_ELEM, &a);
    double t3 = now();
    printf("%f %f %f\n", n / (t1 - t0), n / (t2 - t1), n / (t3 - t2));
    return 0;
}
"""


def c_floor() -> tuple[float, float, float] | None:
    """update/lookup/delete per second from C (gcc compiles a 30-line program), best of REPEAT."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "floor.c"), os.path.join(d, "floor")
        with open(src, "w") as f:
            clock = "CLOCK_MONOTONIC" if WALL else "CLOCK_THREAD_CPUTIME_ID"
            f.write(C_FLOOR.replace("CLOCK_THREAD_CPUTIME_ID", clock))
        if subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True).returncode:
            return None
        runs = [tuple(map(float, subprocess.run([exe, str(OPS)], capture_output=True, text=True).stdout.split()))
                for _ in range(REPEAT)]
    return tuple(max(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


def bcc_table(cls: Any, fd: int, key: Any, leaf: Any, map_type: int, max_entries: int, **extra: Any) -> Any:
    """A BCC table object over a map BCC did not create (what BPF.get_table builds after loading)."""
    t = object.__new__(cls)
    t.__dict__.update(bpf=extra.pop("bpf", None), map_id=0, map_fd=fd, Key=key, Leaf=leaf, ttype=map_type,
                      flags=0, _cbs={}, _name=b"bench", max_entries=max_entries, **extra)
    return t


def bench_map_ops() -> None:
    print("\n== map operations: hash, u32 key -> u64 value ==")
    print(f"{'':44s} {'pybpf':>9s} {'BCC':>9s} {'floor':>9s}  ratio  target")
    floor = c_floor()
    with Map.create("hash", 4, 8, OPS, key="I", value="Q") as m:
        keys = range(OPS)
        theirs = None
        if bcc is not None:
            theirs = bcc_table(bcc.table.HashTable, m.fd, ct.c_uint, ct.c_ulonglong, abi.BPF_MAP_TYPE_HASH, OPS)

        def ours_update() -> int:
            for k in keys:
                m[k] = k
            return OPS

        def ours_lookup() -> int:
            for k in keys:
                m[k]
            return OPS

        def timed(fn: Callable[[], Any]) -> Callable[[], int]:
            def run() -> int:
                t0 = clock()
                fn()
                run.elapsed = clock() - t0  # type: ignore[attr-defined]
                ours_update()  # refill, not timed
                return OPS
            return run

        def ours_delete() -> None:
            for k in keys:
                del m[k]

        def bcc_update() -> int:
            K, L = ct.c_uint, ct.c_ulonglong
            for k in keys:
                theirs[K(k)] = L(k)
            return OPS

        def bcc_lookup() -> int:
            K = ct.c_uint
            for k in keys:
                theirs[K(k)].value  # noqa: B018 - reading the value is the lookup being measured
            return OPS

        def bcc_delete() -> None:
            K = ct.c_uint
            for k in keys:
                del theirs[K(k)]

        ours_update()
        for name, o, b, fi in (("update", timed(ours_update), timed(bcc_update), 0),
                               ("lookup", timed(ours_lookup), timed(bcc_lookup), 1),
                               ("delete", timed(ours_delete), timed(bcc_delete), 2)):
            fns = {"ours": o}
            if theirs is not None:
                fns["bcc"] = b
            r = consume_rates(fns)
            row(f"map {name} ops/s", "ops/s", r["ours"], r.get("bcc"), floor[fi] if floor else None,
                "target >= 1.5x BCC")


def bench_dump() -> None:
    print(f"\n== full dump of a {DUMP}-entry hash (u32 -> u64) ==")
    with Map.create("hash", 4, 8, DUMP, key="I", value="Q") as m:
        m.update_batch((i, i) for i in range(DUMP))
        fns: dict[str, Callable[[], int]] = {
            "ours": lambda: len(dict(m.items())),
            "ours_keywise": lambda: len({k: m[k] for k in m.keys()}),
        }
        if bcc is not None:
            t = bcc_table(bcc.table.HashTable, m.fd, ct.c_uint, ct.c_ulonglong, abi.BPF_MAP_TYPE_HASH, DUMP)
            fns["bcc"] = lambda: len({k.value: v.value for k, v in t.items()})
            if hasattr(t, "items_lookup_batch"):
                fns["bcc_batch"] = lambda: len(dict(t.items_lookup_batch()))  # yields ints
        r = interleaved(fns)
        row("dump, entries/s (batched)", "entries/s", r["ours"], r.get("bcc_batch"), None)
        row("dump, entries/s (vs BCC items())", "entries/s", r["ours"], r.get("bcc"), None)
        row("dump, entries/s (key by key, vs BCC items())", "entries/s", r["ours_keywise"], r.get("bcc"), None)


# --- event readers --------------------------------------------------------------------------------------------

PRODUCER = """
    *(u32 *)(r10 - 4) = 0
    r6 = r1
    r1 = map[counter] ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)
    *(u64 *)(r10 - 24) = r1
    *(u64 *)(r10 - 16) = r1
    %s
out:
    r0 = 0
    exit
"""
RING_SEND = """
    r1 = map[events] ll
    r2 = r10
    r2 += -24
    r3 = 16
    r4 = 0
    call bpf_ringbuf_output
"""
PERF_SEND = """
    r1 = r6
    r2 = map[events] ll
    r3 = 0xffffffff ll
    r4 = r10
    r4 += -24
    r5 = 16
    call bpf_perf_event_output
"""


class Event(ct.Structure):
    _fields_ = [("seq", ct.c_ulonglong), ("val", ct.c_ulonglong)]


def bench_ringbuf() -> None:
    print(f"\n== ring buffer: {EVENTS} 16-byte events delivered to a Python callback ==")
    with Map.create("ringbuf", 0, 0, 1 << 25) as rb, Map.create("array", 4, 8, 1, key="I", value="Q") as counter, \
            pybpf.Program.load(PRODUCER % RING_SEND, "socket_filter", maps={"events": rb, "counter": counter}) as prog:
        seen = [0, 0]  # records delivered, sum of their values (what a decoding callback computes)

        def fill() -> None:
            prog.test_run(PACKET, repeat=EVENTS)

        def cb_raw(rec: Any) -> None:
            seen[0] += 1

        def cb_decoded(rec: Any) -> None:
            seen[0] += 1
            seen[1] += rec.val

        readers = {"raw": RingBuffer(rb, cb_raw), "decoded": RingBuffer(rb, cb_decoded, decode=("=QQ", "seq val"))}

        def ours(kind: str) -> Callable[[], int]:
            def run() -> int:
                fill()
                before = seen[0]
                t0 = clock()
                readers[kind].consume()
                run.elapsed = clock() - t0  # type: ignore[attr-defined]
                return delivered(seen[0] - before)
            return run

        theirs: dict[str, Any] = {}
        if bcc is not None:
            for kind in ("raw", "decoded"):
                b = object.__new__(bcc.BPF)
                b._ringbuf_manager = None
                t = bcc_table(bcc.table.RingBuf, rb.fd, None, None, abi.BPF_MAP_TYPE_RINGBUF, 1 << 25, bpf=b,
                              _event_class=Event)
                if kind == "raw":
                    t.open_ring_buffer(lambda ctx, data, size: cb_raw(data))
                else:
                    t.open_ring_buffer(lambda ctx, data, size, ev=t.event: cb_decoded(ev(data)))
                theirs[kind] = b

        def bcc_run(kind: str) -> Callable[[], int]:
            def run() -> int:
                fill()
                before = seen[0]
                t0 = clock()
                theirs[kind].ring_buffer_consume()
                run.elapsed = clock() - t0  # type: ignore[attr-defined]
                return delivered(seen[0] - before)
            return run

        for kind, target in (("raw", ""), ("decoded", "target >= 2.5x BCC")):
            fns = {"ours": ours(kind)}
            if theirs:
                fns["bcc"] = bcc_run(kind)
            r = consume_rates(fns)
            row(f"ring buffer events/s ({kind})", "events/s", r["ours"], r.get("bcc"), None, target)
        for r in readers.values():
            r.close()


def delivered(n: int) -> int:
    """``n``, after checking every produced event reached the callback (a short count would flatter)."""
    if n != EVENTS:
        raise SystemExit(f"only {n} of {EVENTS} events were delivered: the benchmark is broken")
    return n


def consume_rates(fns: dict[str, Callable[[], int]]) -> dict[str, float]:
    """Like :func:`interleaved`, but each function times only its consuming part (``fn.elapsed``)."""
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(REPEAT):
        for name, fn in fns.items():
            gc.collect()
            n = fn()
            rates[name].append(n / fn.elapsed)  # type: ignore[attr-defined]
    return {k: max(v) for k, v in rates.items()}


def bench_perfbuf() -> None:
    pages = 1 << max(3, (EVENTS * 32 // 4096).bit_length())
    print(f"\n== perf buffer: {EVENTS} 16-byte samples, {pages} pages per CPU, wakeup_events=1 for both ==")
    ncpu = os.cpu_count() or 1
    with Map.create("perf_event_array", 4, 4, ncpu) as events, \
            Map.create("array", 4, 8, 1, key="I", value="Q") as counter, \
            pybpf.Program.load(PRODUCER % PERF_SEND, "socket_filter",
                               maps={"events": events, "counter": counter}) as prog:
        seen = [0, 0]

        def cb_raw(cpu: int, rec: Any) -> None:
            seen[0] += 1

        def cb_decoded(cpu: int, rec: Any) -> None:
            seen[0] += 1
            seen[1] += rec.val

        def run_with(open_reader: Callable[[], Any], consume: Callable[[Any], Any], close: Callable[[Any], Any]
                     ) -> Callable[[], int]:
            def run() -> int:
                reader = open_reader()  # perf event arrays hold one reader's events at a time
                try:
                    prog.test_run(PACKET, repeat=EVENTS)
                    before = seen[0]
                    t0 = clock()
                    consume(reader)
                    run.elapsed = clock() - t0  # type: ignore[attr-defined]
                finally:
                    close(reader)
                return delivered(seen[0] - before)
            return run

        def bcc_open(kind: str) -> Callable[[], Any]:
            def open_reader() -> Any:
                b = object.__new__(bcc.BPF)
                b.perf_buffers = {}
                t = bcc_table(bcc.table.PerfEventArray, events.fd, ct.c_int, ct.c_int,
                              abi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, ncpu, bpf=b, _open_key_fds={}, _event_class=Event)
                if kind == "raw":
                    t.open_perf_buffer(lambda cpu, data, size: cb_raw(cpu, data), page_cnt=pages)
                else:
                    t.open_perf_buffer(lambda cpu, data, size, ev=t.event: cb_decoded(cpu, ev(data)),
                                       page_cnt=pages)
                return b, t
            return open_reader

        def bcc_close(bt: Any) -> None:
            b, t = bt
            for key in list(t._open_key_fds):
                del t[key]

        for kind, decode, cb in (("raw", None, cb_raw), ("decoded", ("=QQ", "seq val"), cb_decoded)):
            fns = {"ours": run_with(lambda cb=cb, decode=decode: PerfBuffer(events, cb, decode=decode, pages=pages),
                                    lambda r: r.consume(), lambda r: r.close())}
            if bcc is not None:
                fns["bcc"] = run_with(bcc_open(kind), lambda bt: bt[0].perf_buffer_consume(), bcc_close)
            r = consume_rates(fns)
            row(f"perf buffer events/s ({kind})", "events/s", r["ours"], r.get("bcc"), None, "target >= 1x BCC")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_maps needs root (bpf())")
    print(f"python {sys.version.split()[0]} ({sys.executable}); BCC {'%s' % bcc.__version__ if bcc else 'absent'}; "
          f"best of {REPEAT} interleaved runs; {'wall-clock' if WALL else 'thread CPU'} time; "
          "'floor' is C calling bpf() directly")
    bench_map_ops()
    bench_dump()
    bench_ringbuf()
    bench_perfbuf()
    print("\nratios (pybpf / BCC):")
    for what, _, ours, theirs, _, target in results:
        if ours and theirs:
            print(f"  {what:44s} {ours / theirs:5.2f}x  {target}")


if __name__ == "__main__":
    main()
