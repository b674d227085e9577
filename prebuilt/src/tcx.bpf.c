// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcx - tc programs in the tcx spelling (6.6+: attached with bpf_link to a device's tcx hook, no qdisc).
 *
 *   SEC("tcx/ingress")  program type sched_cls, expected attach type BPF_TCX_INGRESS
 *   SEC("tcx/egress")   program type sched_cls, expected attach type BPF_TCX_EGRESS
 * Both count packets and bytes per direction in `counters` and return TCX_NEXT (-1, run the next program).
 * The tcx section names came with libbpf 1.3: the bpftool (libbpf 1.1) on this host cannot tell the program type
 * from them, so the --check passes `type classifier`.
 * pybpf-check: type classifier
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TCX_NEXT	-1

struct dir_counters {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);		/* 0 = ingress, 1 = egress */
	__type(key, __u32);
	__type(value, struct dir_counters);
} counters SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, __u32 dir)
{
	struct dir_counters *c = bpf_map_lookup_elem(&counters, &dir);

	if (c) {
		c->packets += 1;
		c->bytes += skb->len;
	}
	return TCX_NEXT;
}

SEC("tcx/ingress")
int tcx_ingress(struct __sk_buff *skb)
{
	return count(skb, 0);
}

SEC("tcx/egress")
int tcx_egress(struct __sk_buff *skb)
{
	return count(skb, 1);
}

char LICENSE[] SEC("license") = "GPL";
