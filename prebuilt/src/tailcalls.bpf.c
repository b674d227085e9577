// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tailcalls - bpf_tail_call through a BPF_MAP_TYPE_PROG_ARRAY filled at load time from `.values`.
 *
 * `jump` is statically initialised with program pointers ([0] = stage1, [1] = stage2, [3] = from_subprog),
 * which the loader must turn into program fds after loading the programs. XDP, BPF_PROG_TEST_RUN-able:
 *   entry:   trace |= 1, tail call jump[0]         (returns XDP_ABORTED if the tail call fails)
 *   stage1:  trace |= 2, tail call jump[1]
 *   stage2:  trace |= 4, tail call jump[2] (empty slot: falls through), returns XDP_PASS
 *   via_subprog: calls a static subprogram that tail calls jump[3] (tail calls from subprograms, 5.10+)
 *   from_subprog: trace |= 8, returns XDP_TX
 * So entry gives XDP_PASS with trace == 7; via_subprog gives XDP_TX with trace |= 8.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u32 trace;
/* What jump_from_subprog() returns when its tail call fails. A variable, not a constant, so that clang
 * cannot fold that return value into via_subprog(): after a successful tail call from a subprogram, the
 * target's return value comes back to the subprogram's caller. */
__u32 no_target_verdict = XDP_ABORTED;

int stage1(struct xdp_md *ctx);
int stage2(struct xdp_md *ctx);
int from_subprog(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__array(values, int (struct xdp_md *));
} jump SEC(".maps") = {
	.values = {
		[0] = (void *)&stage1,
		[1] = (void *)&stage2,
		[3] = (void *)&from_subprog,
	},
};

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	trace |= 1;
	bpf_tail_call(ctx, &jump, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int stage1(struct xdp_md *ctx)
{
	trace |= 2;
	bpf_tail_call(ctx, &jump, 1);
	return XDP_ABORTED;
}

SEC("xdp")
int stage2(struct xdp_md *ctx)
{
	trace |= 4;
	bpf_tail_call(ctx, &jump, 2);
	return XDP_PASS;
}

static __noinline int jump_from_subprog(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump, 3);
	return no_target_verdict;
}

SEC("xdp")
int via_subprog(struct xdp_md *ctx)
{
	return jump_from_subprog(ctx);
}

SEC("xdp")
int from_subprog(struct xdp_md *ctx)
{
	trace |= 8;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
