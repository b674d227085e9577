// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * callbacks - helpers that take a BPF function as argument: bpf_loop (5.17+) and bpf_for_each_map_elem
 * (5.13+). The callbacks are static subprograms referenced by an ld_imm64 of a function pointer
 * (BPF_PSEUDO_FUNC), which a loader must relocate like a call.
 * XDP program `run_callbacks` (BPF_PROG_TEST_RUN-able) stores into .bss:
 *   loop_sum  = 0 + 1 + ... + (loop_n - 1) via bpf_loop (loop_n in .rodata, default 10 -> 45)
 *   array_sum = sum of `values` (filled with 1..8 by the program itself -> 36) via bpf_for_each_map_elem
 *   hash_seen = number of entries of `hash` (user space fills it) via bpf_for_each_map_elem
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 loop_n = 10;
__u64 loop_sum, array_sum, hash_seen;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

struct loop_ctx {
	__u64 sum;
};

static int loop_body(__u32 index, struct loop_ctx *lc)
{
	lc->sum += index;
	return 0;		/* 0: go on, 1: stop */
}

static __u64 add_value(struct bpf_map *map, __u32 *key, __u64 *val, struct loop_ctx *lc)
{
	lc->sum += *val;
	return 0;
}

static __u64 count_entry(struct bpf_map *map, __u32 *key, __u64 *val, struct loop_ctx *lc)
{
	lc->sum += 1;
	return 0;
}

SEC("xdp")
int run_callbacks(struct xdp_md *ctx)
{
	struct loop_ctx lc = {};
	__u32 i;

	bpf_loop(loop_n, loop_body, &lc, 0);
	loop_sum = lc.sum;

	for (i = 0; i < 8; i++) {
		__u32 key = i;		/* the loop counter itself stays in a register */
		__u64 v = i + 1;

		bpf_map_update_elem(&values, &key, &v, BPF_ANY);
	}
	lc.sum = 0;
	bpf_for_each_map_elem(&values, add_value, &lc, 0);
	array_sum = lc.sum;

	lc.sum = 0;
	bpf_for_each_map_elem(&hash, count_entry, &lc, 0);
	hash_seen = lc.sum;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
