// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * map_in_map - maps of maps: inner map templates, static `.values`, and lookups through the outer map.
 *
 *   outer_array  ARRAY_OF_MAPS, template `struct inner_map` (named type, declared once),
 *                slots 0 and 1 filled at load time with inner_a and inner_b through `.values`
 *   outer_hash   HASH_OF_MAPS, template declared inline and anonymous, empty at load: user space adds
 *                maps of the template's shape (HASH, u32 -> u32, 16 entries)
 *   outer_sized  ARRAY_OF_MAPS whose inner template has BPF_F_INNER_MAP, so inner maps of any
 *                max_entries fit (5.10+); slot 0 = inner_small (2 entries) at load
 * XDP program `use_inner` (BPF_PROG_TEST_RUN-able): for slot 0..1 of outer_array, inner[0] += slot + 1;
 * outer_hash[7] (if present) [1] = 99; outer_sized[0] [1] = 5; returns XDP_PASS.
 * After one run: inner_a[0] == 1, inner_b[0] == 2, inner_small[1] == 5.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_map inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer_array SEC(".maps") = {
	.values = { &inner_a, &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 16);
		__type(key, __u32);
		__type(value, __u32);
	});
} outer_hash SEC(".maps");

struct inner_flexible {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u64);
} inner_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct inner_flexible);
} outer_sized SEC(".maps") = {
	.values = { [0] = (void *)&inner_small },	/* a different (smaller) map than the template */
};

SEC("xdp")
int use_inner(struct xdp_md *ctx)
{
	__u32 slot, zero = 0, one = 1, seven = 7, v99 = 99;
	__u64 five = 5, *v;
	void *inner;

	for (slot = 0; slot < 2; slot++) {
		__u32 key = slot;	/* the loop counter itself stays in a register */

		inner = bpf_map_lookup_elem(&outer_array, &key);
		if (!inner)
			continue;
		v = bpf_map_lookup_elem(inner, &zero);
		if (v)
			__sync_fetch_and_add(v, slot + 1);
	}
	inner = bpf_map_lookup_elem(&outer_hash, &seven);
	if (inner)
		bpf_map_update_elem(inner, &one, &v99, BPF_ANY);
	inner = bpf_map_lookup_elem(&outer_sized, &zero);
	if (inner)
		bpf_map_update_elem(inner, &one, &five, BPF_ANY);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
