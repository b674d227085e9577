// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * btf_maps - every flavour of BTF-defined map (SEC(".maps")) a loader must understand.
 *
 *   typed_hash     key and value given as types (__type), with a value type made for codec tests:
 *                  signed/unsigned ints of every width, char array, nested anonymous struct, union, enum,
 *                  bitfields, bool, array of structs, explicit tail padding
 *   sized_hash     key and value given as sizes (key_size/value_size), BPF_F_NO_PREALLOC
 *   mixed_array    key as a type, value as a size; the kernel refuses BTF with only one of the two
 *                  typed, so it must be created without BTF key/value ids (libbpf retries without BTF)
 *   pybpf_pin_ctr  pinning = LIBBPF_PIN_BY_NAME (libbpf pins it at <pin root>/pybpf_pin_ctr, default
 *                  /sys/fs/bpf, and reuses an existing compatible pin)
 *   numa_hash      numa_node = 0 with BPF_F_NUMA_NODE
 *   bloom          BPF_MAP_TYPE_BLOOM_FILTER with map_extra = 5 (hash functions), no key
 *   ro_prog_array  BPF_F_RDONLY_PROG: the program reads it, user space writes it
 *   mmap_array     BPF_F_MMAPABLE (user space can mmap it)
 *   lru_nocommon   LRU hash with BPF_F_NO_COMMON_LRU
 *   zero_seed_hash BPF_F_ZERO_SEED (deterministic hashing, 5.5+)
 * XDP program `use_maps` (BPF_PROG_TEST_RUN-able) writes typed_hash[{1,2,3,4,6}] = a known rich_value,
 * sized_hash[7] = 8, pybpf_pin_ctr[0] += 1, mmap_array[0] = ro_prog_array[0] + 1, bloom <- 42, and
 * returns XDP_PASS if the bloom filter then contains 42.
 * pybpf-check: unpin pybpf_pin_ctr
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 _pad[3];
};

enum color { COLOR_RED = 0, COLOR_GREEN = 5, COLOR_BLUE = 100 };

struct pb_sample {
	__u16 id;
	__s16 delta;
};

struct rich_value {
	__u8 u8v;
	__s8 s8v;
	__u16 u16v;
	__s32 s32v;
	__u64 u64v;
	__s64 s64v;
	char name[16];
	struct {
		__u32 x;
		__u32 y;
	} point;
	union {
		__u32 as_u32;
		__u8 as_bytes[4];
	} u;
	enum color color;
	__u32 flag_a : 1;
	__u32 level : 3;
	__u32 code : 12;
	__u32 : 0;
	bool ok;
	__u8 _pad1;
	struct pb_sample samples[3];
	__u8 _pad2[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, struct flow_key);
	__type(value, struct rich_value);
} typed_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__uint(key_size, 4);
	__uint(value_size, 8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sized_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__uint(value_size, 16);
} mixed_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pybpf_pin_ctr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NUMA_NODE);
	__uint(numa_node, 0);
} numa_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 100);
	__type(value, __u32);
	__uint(map_extra, 5);
} bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_RDONLY_PROG);
} ro_prog_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_MMAPABLE);
} mmap_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
} lru_nocommon SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u8);
	__uint(map_flags, BPF_F_ZERO_SEED);
} zero_seed_hash SEC(".maps");

SEC("xdp")
int use_maps(struct xdp_md *ctx)
{
	struct flow_key key = { .saddr = 1, .daddr = 2, .sport = 3, .dport = 4, .proto = 6 };
	struct rich_value val = {
		.u8v = 0xfe, .s8v = -2, .u16v = 0xbeef, .s32v = -123456, .u64v = 0x1122334455667788ULL,
		.s64v = -5, .name = "pybpf", .point = { .x = 10, .y = 20 }, .u.as_u32 = 0x01020304,
		.color = COLOR_GREEN, .flag_a = 1, .level = 5, .code = 0xabc, .ok = true,
		.samples = { { 1, -1 }, { 2, -2 }, { 3, -3 } },
	};
	__u32 zero = 0, seven = 7, answer = 42;
	__u64 eight = 8, *ro, *ctr, *mm;

	bpf_map_update_elem(&typed_hash, &key, &val, BPF_ANY);
	bpf_map_update_elem(&sized_hash, &seven, &eight, BPF_ANY);
	ctr = bpf_map_lookup_elem(&pybpf_pin_ctr, &zero);
	if (ctr)
		__sync_fetch_and_add(ctr, 1);
	ro = bpf_map_lookup_elem(&ro_prog_array, &zero);
	mm = bpf_map_lookup_elem(&mmap_array, &zero);
	if (ro && mm)
		*mm = *ro + 1;
	bpf_map_push_elem(&bloom, &answer, BPF_ANY);
	return bpf_map_peek_elem(&bloom, &answer) == 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
