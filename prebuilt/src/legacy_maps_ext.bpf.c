// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * legacy_maps_ext - a BTF-less object whose SEC("maps") entries are 28 bytes, not 20.
 *
 * Old loaders found the size of one map definition as (size of "maps") / (number of symbols in it) and
 * accepted definitions longer than their own struct when the extra bytes are zero. This one uses the
 * samples/bpf layout (type, key_size, value_size, max_entries, map_flags, inner_map_idx, numa_node) with
 * inner_map_idx and numa_node left at zero, so any such loader creates the same maps.
 * Built without -g: no .BTF, no .BTF.ext, no line info; no global data (BPF_NO_GLOBAL_DATA). A socket
 * filter in the style of samples/bpf sockex1: packet and byte counts per ethertype (host byte order,
 * 0x0800 = IPv4), accepts every packet.
 * pybpf-build: no-btf
 * pybpf-check: variant -DPYBPF_CHECK_BTF_MAPS -g
 */
#define BPF_NO_GLOBAL_DATA
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef PYBPF_CHECK_BTF_MAPS
struct bpf_map_def_ext {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
	unsigned int inner_map_idx;
	unsigned int numa_node;
};

struct bpf_map_def_ext SEC("maps") proto_packets = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 256,
};

struct bpf_map_def_ext SEC("maps") proto_bytes = {
	.type = BPF_MAP_TYPE_PERCPU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 256,
};
#else
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 256);
} proto_packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 256);
} proto_bytes SEC(".maps");
#endif

SEC("socket")
int count_by_proto(struct __sk_buff *skb)
{
	__u32 key = bpf_ntohs(skb->protocol);	/* ethertype */
	__u64 one = 1, len = skb->len, *v;

	v = bpf_map_lookup_elem(&proto_packets, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&proto_packets, &key, &one, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&proto_bytes, &key);
	if (v)
		*v += len;
	else
		bpf_map_update_elem(&proto_bytes, &key, &len, BPF_NOEXIST);
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
