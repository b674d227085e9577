// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * subprogs - bpf-to-bpf calls: static and global subprograms shared by several programs.
 *
 *   square()       static __noinline: verified in its caller's context
 *   sum_squares()  static __noinline calling square() twice (a call chain)
 *   scaled()       global (non-static) function: verified once on its own, from its BTF prototype
 *   pkt_len()      global function taking the context (struct xdp_md *)
 *   bump()         __hidden global: global linkage in the ELF but internal to the object
 * Two XDP programs (both BPF_PROG_TEST_RUN-able) call them, so a loader must copy the subprograms into
 * each program and fix up the call offsets: calc_a stores into .bss a_result = sum_squares(3, 4) +
 * scaled(2) (= 25 + 20 = 45) and a_len = packet length; calc_b stores b_result = scaled(sum_squares(1, 2))
 * (= 50) and bumps calls twice. Both return XDP_PASS.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 a_result, a_len, b_result, calls;

static __noinline int square(int x)
{
	return x * x;
}

static __noinline int sum_squares(int a, int b)
{
	return square(a) + square(b);
}

__noinline int scaled(int x)
{
	return x * 10;
}

__noinline int pkt_len(struct xdp_md *ctx)
{
	if (!ctx)
		return 0;
	return ctx->data_end - ctx->data;
}

__hidden __noinline int bump(void)
{
	__sync_fetch_and_add(&calls, 1);
	return 0;
}

SEC("xdp")
int calc_a(struct xdp_md *ctx)
{
	a_result = sum_squares(3, 4) + scaled(2);
	a_len = pkt_len(ctx);
	bump();
	return XDP_PASS;
}

SEC("xdp")
int calc_b(struct xdp_md *ctx)
{
	b_result = scaled(sum_squares(1, 2));
	bump();
	bump();
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
