// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * module_kfunc - kfuncs that may live in a kernel module: netfilter conntrack's bpf_xdp_ct_lookup and
 * bpf_ct_release (Linux 6.0+).  Where nf_conntrack is a module (Debian's kernels) both are found in its split
 * BTF and the calls name that BTF object through the program's fd_array (the call's `off` is the index, the
 * same for both calls); where it is built in, in vmlinux (off 0).
 * `ct_lookup` (XDP) looks up the TCP connection 192.0.2.1:1000 -> 192.0.2.2:2000 in the current network
 * namespace, releases it if found, and records in .bss: lookups (calls), found (conntrack entries returned)
 * and error (bpf_ct_opts.error of the last lookup: -ENOENT when there is no such connection).  The options
 * are passed with the 12-byte size every kernel since 6.0 accepts.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CT_OPTS_SIZE_6_0 12	/* sizeof(struct bpf_ct_opts) before ct_zone_id (6.11) */

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *bpf_tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

__u64 lookups, found;
__s32 error;

SEC("xdp")
int ct_lookup(struct xdp_md *ctx)
{
	struct bpf_ct_opts opts = { .netns_id = -1, .l4proto = 6 /* IPPROTO_TCP */ };
	struct bpf_sock_tuple tuple = {};
	struct nf_conn *ct;

	tuple.ipv4.saddr = bpf_htonl(0xc0000201);
	tuple.ipv4.daddr = bpf_htonl(0xc0000202);
	tuple.ipv4.sport = bpf_htons(1000);
	tuple.ipv4.dport = bpf_htons(2000);
	ct = bpf_xdp_ct_lookup(ctx, &tuple, sizeof(tuple.ipv4), &opts, CT_OPTS_SIZE_6_0);
	__sync_fetch_and_add(&lookups, 1);
	if (ct) {
		__sync_fetch_and_add(&found, 1);
		bpf_ct_release(ct);
	}
	error = opts.error;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
