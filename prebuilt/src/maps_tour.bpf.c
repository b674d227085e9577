// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * maps_tour - scenario S9: one map of every common type, each used by a program.
 *
 * hash, array, per-CPU hash and array, LRU (and per-CPU LRU) hash, LPM trie, prog array with tail calls,
 * array of maps and hash of maps (inner map templates; the array of maps is filled statically with
 * `.values`), queue, stack, ring buffer, stack trace map and bloom filter.
 * `tour` runs on tracepoint syscalls/sys_enter_getpid for the process in `target_pid` (.rodata, 0 = none,
 * so a loaded-but-unconfigured tour does nothing) and touches every map once per getpid():
 *   hash[pid] += 1, array[0] += 1, percpu_hash[pid] += 1, percpu_array[0] += 1, lru_hash[pid] += 1,
 *   lru_percpu_hash[pid] += 1, lpm lookup of 127.0.0.1 -> array[1] = matched prefix value,
 *   outer_array[0] -> inner array[0] += 1, hash_of_maps[pid] (if user space inserted one) -> [0] += 1,
 *   queue/stack: pops one value pushed by user space and pushes value + 1 back,
 *   bloom filter: array[2] = 1 if the pid was added by user space,
 *   stack_traces: user stack id -> array[3], ring buffer: one struct tour_record,
 *   then tail calls tail_step1 (array[4] += 1), which tail calls tail_step2 (array[5] += 1).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define PERF_MAX_STACK_DEPTH	127

const volatile __u32 target_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} percpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
} lru_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
} lru_percpu_hash SEC(".maps");

/* Key layout the kernel expects: prefix length first, then the address bytes. */
struct ipv4_lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* required for LPM tries */
	__type(key, struct ipv4_lpm_key);
	__type(value, __u64);
} lpm SEC(".maps");

/* Inner map template shared by the statically filled array of maps. */
struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_array inner0 SEC(".maps"), inner1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer_array SEC(".maps") = {
	.values = { [0] = &inner0, [2] = &inner1 },
};

/* Hash of maps, empty at load: the inner template is declared inline; user space inserts maps by pid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 16);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 8);
		__type(key, __u32);
		__type(value, __u64);
	});
} hash_of_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 16);
	__type(value, __u32);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 16);
	__type(value, __u32);
} stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 64);
	__uint(map_extra, 3);		/* number of hash functions */
	__type(value, __u32);
} bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 128);
	__type(key, __u32);
	__uint(value_size, PERF_MAX_STACK_DEPTH * sizeof(__u64));
} stack_traces SEC(".maps");

/* What `tour` writes to `ringbuf` for each getpid(). */
struct tour_record {
	__u32 pid;
	__s32 stack_id;
	__u64 calls;			/* hash[pid] after the increment */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 4);
} ringbuf SEC(".maps");

int tail_step1(void *ctx);
int tail_step2(void *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));	/* sizes, not types: the kernel takes no BTF for prog arrays */
	__array(values, int (void *));
} prog_array SEC(".maps") = {
	.values = { [1] = (void *)&tail_step1, [2] = (void *)&tail_step2 },
};

static __always_inline void add(void *map, __u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, n);
}

/* v = map[key] + 1 (created at 1); works for hash, per-CPU and LRU maps. */
static __always_inline __u64 bump(void *map, __u32 key)
{
	__u64 one = 1, *v = bpf_map_lookup_elem(map, &key);

	if (!v) {
		bpf_map_update_elem(map, &key, &one, BPF_NOEXIST);
		return 1;
	}
	return __sync_fetch_and_add(v, 1) + 1;
}

/* Noinline on purpose: its parameter type is what puts struct tour_record into the object's BTF. */
static __noinline int submit_record(struct tour_record *r)
{
	return bpf_ringbuf_output(&ringbuf, r, sizeof(*r), 0);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tour(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct ipv4_lpm_key lkey = { .prefixlen = 32, .addr = { 127, 0, 0, 1 } };
	struct tour_record rec = { .pid = pid };
	__u64 *lv;
	void *inner;
	__u32 val;

	if (!target_pid || pid != target_pid)
		return 0;

	rec.calls = bump(&hash, pid);
	add(&array, 0, 1);
	bump(&percpu_hash, pid);
	add(&percpu_array, 0, 1);
	bump(&lru_hash, pid);
	bump(&lru_percpu_hash, pid);

	lv = bpf_map_lookup_elem(&lpm, &lkey);
	if (lv) {
		__u32 k = 1;

		bpf_map_update_elem(&array, &k, lv, BPF_ANY);
	}

	inner = bpf_map_lookup_elem(&outer_array, &(__u32){0});
	if (inner)
		add(inner, 0, 1);
	inner = bpf_map_lookup_elem(&hash_of_maps, &pid);
	if (inner)
		bump(inner, 0);

	if (bpf_map_pop_elem(&queue, &val) == 0) {
		val += 1;
		bpf_map_push_elem(&queue, &val, 0);
	}
	if (bpf_map_pop_elem(&stack, &val) == 0) {
		val += 1;
		bpf_map_push_elem(&stack, &val, 0);
	}

	if (bpf_map_peek_elem(&bloom, &pid) == 0) {
		__u32 k = 2;
		__u64 one = 1;

		bpf_map_update_elem(&array, &k, &one, BPF_ANY);
	}

	rec.stack_id = bpf_get_stackid(ctx, &stack_traces, BPF_F_USER_STACK);
	if (rec.stack_id >= 0) {
		__u32 k = 3;
		__u64 id = rec.stack_id;

		bpf_map_update_elem(&array, &k, &id, BPF_ANY);
	}
	submit_record(&rec);

	bpf_tail_call(ctx, &prog_array, 1);
	return 0;
}

/* Tail call targets: bare SEC("tracepoint") (same program type, nothing to auto-attach). */
SEC("tracepoint")
int tail_step1(void *ctx)
{
	add(&array, 4, 1);
	bpf_tail_call(ctx, &prog_array, 2);
	return 0;
}

SEC("tracepoint")
int tail_step2(void *ctx)
{
	add(&array, 5, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
