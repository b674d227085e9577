// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * legacy_maps - maps declared the pre-BTF way: `struct bpf_map_def SEC("maps")`, 20 bytes per map.
 *
 * A hash with BPF_F_NO_PREALLOC (the seed's `my_bpf_map`), an array, a per-CPU array and a prog array that
 * user space fills (legacy maps have no static initialisation). XDP, so BPF_PROG_TEST_RUN drives it:
 * legacy_xdp: stats[0] += 1, counters[packet length] += 1, then tail calls jump_table[0];
 * legacy_tail (put it in jump_table[0]): stats[1] += 1, percpu_stats[0] += 1. Both return XDP_PASS.
 * Built with -g (has .BTF, with the maps as VARs of struct bpf_map_def in DATASEC "maps"); no global data.
 * libbpf >= 1.0 refuses SEC("maps"): --check loads the -DPYBPF_CHECK_BTF_MAPS variant instead.
 * pybpf-check: variant -DPYBPF_CHECK_BTF_MAPS
 */
#define BPF_NO_GLOBAL_DATA
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef PYBPF_CHECK_BTF_MAPS
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 100,
	.map_flags = BPF_F_NO_PREALLOC,
};

struct bpf_map_def SEC("maps") stats = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct bpf_map_def SEC("maps") percpu_stats = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct bpf_map_def SEC("maps") jump_table = {
	.type = BPF_MAP_TYPE_PROG_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 2,
};
#else
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 100);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 4);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 4);
} percpu_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 2);
} jump_table SEC(".maps");
#endif

static __always_inline void add(void *map, __u32 key)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int legacy_xdp(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u64 one = 1, *n;

	add(&stats, 0);
	n = bpf_map_lookup_elem(&counters, &len);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&counters, &len, &one, BPF_NOEXIST);
	bpf_tail_call(ctx, &jump_table, 0);
	return XDP_PASS;
}

SEC("xdp")
int legacy_tail(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *v;

	add(&stats, 1);
	v = bpf_map_lookup_elem(&percpu_stats, &zero);
	if (v)
		*v += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
