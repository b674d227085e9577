// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * xdp_drop - scenario S5 and the `xdp_drop` tool: drop every packet of one IP protocol at XDP.
 *
 * SEC("xdp") parses ethhdr + iphdr (or ipv6hdr) with bounds checks and returns XDP_DROP when the L4
 * protocol equals `drop_proto`, a `const volatile` in .rodata set before load (default 1 = ICMP, so ping
 * fails while TCP still connects; for ICMPv6 set 58). Per-CPU counters of passed/dropped packets in
 * `xdp_stats`; `verbose` makes it print the seed's "Drop ICMP packets"-style line to trace_pipe.
 * BPF_NO_PRESERVE_ACCESS_INDEX: packet headers are fixed wire formats, so no CO-RE relocations (the object
 * also loads on kernels without BTF).
 */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

/* IP protocol number to drop; rewritten in .rodata before load. */
const volatile __u8 drop_proto = IPPROTO_ICMP;
/* Print one trace_pipe line per dropped packet. */
const volatile bool verbose = false;

enum xdp_stat { STAT_PASS = 0, STAT_DROP = 1, STAT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xdp_stats SEC(".maps");

static __always_inline int count(__u32 stat, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&xdp_stats, &stat);

	if (n)
		*n += 1;
	return verdict;
}

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 proto;

	if ((void *)(eth + 1) > data_end)
		return count(STAT_PASS, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return count(STAT_PASS, XDP_PASS);
		proto = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_PASS, XDP_PASS);
		proto = ip6->nexthdr;
	} else {
		return count(STAT_PASS, XDP_PASS);
	}

	if (proto != drop_proto)
		return count(STAT_PASS, XDP_PASS);
	if (verbose)
		bpf_printk("pybpf-xdp_drop: drop IP protocol %d packet", proto);
	return count(STAT_DROP, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
