"""Small eBPF objects for the loader's unit tests, built with clang-19 (skipped with a reason without it)."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

import pytest

CLANG = "clang-19"
#: prebuilt/src, for its committed vmlinux.h
VMLINUX_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "prebuilt",
                           "src")


def build(tmp_path: object, source: str, name: str = "t", debug: bool = True, clang: str = CLANG,
          opt: str = "-O2", cflags: Sequence[str] = ()) -> str:
    """Compile C ``source`` (vmlinux.h and the libbpf headers are available) into ``tmp_path/name.bpf.o``
    with ``clang`` at ``opt`` (plus ``cflags``); return its path."""
    if not shutil.which(clang):
        pytest.skip(f"{clang} is not installed (apt install {clang}): cannot build test objects")
    src = os.path.join(str(tmp_path), f"{name}.bpf.c")
    out = os.path.join(str(tmp_path), f"{name}.bpf.o")
    with open(src, "w") as f:
        f.write(source)
    cmd = [clang, opt, "-target", "bpf", "-I", VMLINUX_DIR, "-c", src, "-o", out, "-Wno-unused-function",
           *cflags]
    cmd += ["-g"] if debug else []
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise AssertionError(f"clang failed:\n{res.stderr}")
    return out


HEADER = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
"""

#: main_a calls a() then b(); a() calls c(); main_b calls c() and takes a callback's address.
SUBPROGS = HEADER + """
static __noinline int c(int x) { return x * 3; }
static __noinline int a(int x) { return c(x) + 1; }
__noinline int b(int x) { return x - 2; }
static long cb(__u32 index, void *ctx) { return 0; }

int counter = 7;
static int hidden_counter = 5;
const volatile int limit = 100;
char buf[16];

SEC("xdp")
int main_a(struct xdp_md *ctx)
{
	int v = a(ctx->ingress_ifindex);
	return b(v) + counter + hidden_counter++ + limit;
}

SEC("xdp")
int main_b(struct xdp_md *ctx)
{
	bpf_loop(4, cb, 0, 0);
	buf[1] = 1;
	return c(ctx->rx_queue_index);
}

char LICENSE[] SEC("license") = "GPL";
"""

MAPS = HEADER + """
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); };
struct inner in0 SEC(".maps"), in1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { [0] = &in0, [2] = &in1 } };

int tail(void *ctx);
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jmp SEC(".maps") = { .values = { [1] = (void *)&tail } };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} pinned SEC(".maps");

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 5000); } rb SEC(".maps");

SEC("socket")
int tail(void *ctx) { return 1; }

SEC("socket")
int entry(void *ctx)
{
	__u32 k = 0;
	bpf_map_lookup_elem(&in0, &k);
	bpf_map_lookup_elem(&pinned, &k);
	bpf_tail_call(ctx, &jmp, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: legacy maps with a 28-byte definition (libbpf divides the section by the number of map symbols)
LEGACY = HEADER + """
struct big_def { unsigned int type, key_size, value_size, max_entries, map_flags, id, pinning; };
struct big_def counts SEC("maps") = { .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 16 };
struct big_def arr SEC("maps") = { .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 2 };

SEC("socket")
int count(void *ctx)
{
	__u32 k = 1;
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	bpf_map_lookup_elem(&arr, &k);
	return v ? 1 : 0;
}
char LICENSE[] SEC("license") = "GPL";
"""

UNKNOWN_SECTION = HEADER + """
SEC("pybpf_no_such_kind/x")
int odd(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


#: a CO-RE read of a field no kernel struct has: the relocation cannot be satisfied, the instruction is poisoned
#: and the verifier trips on it; pybpf's LinkError must match MISSING_FIELD_ERROR
MISSING_FIELD = HEADER + """
#include <bpf/bpf_core_read.h>
struct task_struct___pybpf { int pybpf_no_such_field; } __attribute__((preserve_access_index));
SEC("tracepoint/syscalls/sys_enter_getpid")
int get(void *ctx)
{
	struct task_struct___pybpf *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, pybpf_no_such_field);
}
char LICENSE[] SEC("license") = "GPL";
"""
#: the error names the program, the instruction and the relocation (kind, type, field access)
MISSING_FIELD_ERROR = (r"(?s)program 'get' uses CO-RE relocations this kernel cannot satisfy.*\n  insn #\d+: "
                       r"byte_off \[\d+\] struct task_struct___pybpf\.pybpf_no_such_field \(0:0 @ offset 0\) "
                       r"=> poisoned")
