// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * freplace - programs that attach to a function of another BPF program instead of the kernel.
 *
 * xdp_verdict (XDP) returns what its global function verdict() decides: XDP_PASS.  Two programs here are not
 * loaded by default (SEC("?...")) because they need that loaded program as their target, given at load time
 * (load(..., programs=[...], attach_targets={"drop_verdict": xdp_verdict}), libbpf's
 * bpf_program__set_attach_target):
 *   drop_verdict   freplace/verdict: replaces verdict(), so xdp_verdict returns XDP_DROP while it is attached,
 *                  and counts its calls in `replaced`
 *   verdict_exit   fexit/verdict: records verdict()'s return value in `last_verdict`
 *
 * pybpf-check: variant -DPYBPF_CHECK_NO_TARGETED
 * (bpftool 7.1's libbpf 1.1 fails `prog loadall` on programs it did not load: "can't pin program that wasn't
 * loaded"; the variant leaves the two targeted programs out)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 replaced;
__s64 last_verdict = -1;

__noinline int verdict(struct xdp_md *ctx)
{
	if (!ctx)
		return XDP_ABORTED;
	return XDP_PASS;
}

SEC("xdp")
int xdp_verdict(struct xdp_md *ctx)
{
	return verdict(ctx);
}

#ifndef PYBPF_CHECK_NO_TARGETED
SEC("?freplace/verdict")
int drop_verdict(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&replaced, 1);
	return XDP_DROP;
}

SEC("?fexit/verdict")
int BPF_PROG(verdict_exit, struct xdp_md *xdp, int ret)
{
	last_verdict = ret;
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
