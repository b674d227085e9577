"""Assembler shared by the ring/perf buffer tests' producer programs (tests/kernel/test_ringbuf.py,
test_perfbuf.py, test_soak_loss.py, test_concurrency.py)."""

# r7 = &counters[0] (a 16-byte array value: produced, failed); r1 = seq = counters.produced++ (atomically).
# Jumps to `out` if the lookup fails; clobbers r0-r5.
NEXT_SEQ = """
    *(u32 *)(r10 - 4) = 0
    r1 = map[counters] ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r7 = r0
    r1 = 1
    r1 = atomic_fetch_add((u64 *)(r7 + 0), r1)
"""
