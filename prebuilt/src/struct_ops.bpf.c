// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * struct_ops - a TCP congestion control written in BPF (struct tcp_congestion_ops), in both spellings:
 *   pybpf_cc        SEC(".struct_ops.link"): registered through a bpf_link (Linux 6.4+)
 *   pybpf_cc_old    SEC(".struct_ops"): registered by the map update itself (5.6+)
 * Both use the same programs; `inits` counts the sockets that started using either (init), `acks` the calls of
 * cong_avoid.  Tests rewrite each `.name` before load, as names are global to the kernel.
 *
 * pybpf-check: variant -DPYBPF_CHECK_OLD_LIBBPF
 * (bpftool 7.1's libbpf 1.1 predates SEC(".struct_ops.link"): the variant puts pybpf_cc in ".struct_ops" too)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

__u64 inits, acks;

SEC("struct_ops")
void BPF_PROG(pybpf_init, struct sock *sk)
{
	__sync_fetch_and_add(&inits, 1);
}

SEC("struct_ops")
__u32 BPF_PROG(pybpf_ssthresh, struct sock *sk)
{
	const struct tcp_sock *tp = (void *)sk;

	return tp->snd_cwnd > 4 ? tp->snd_cwnd >> 1 : 2;
}

SEC("struct_ops")
void BPF_PROG(pybpf_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	__sync_fetch_and_add(&acks, 1);
}

SEC("struct_ops")
__u32 BPF_PROG(pybpf_undo_cwnd, struct sock *sk)
{
	const struct tcp_sock *tp = (void *)sk;

	return tp->snd_cwnd;
}

#ifdef PYBPF_CHECK_OLD_LIBBPF
SEC(".struct_ops")
#else
SEC(".struct_ops.link")
#endif
struct tcp_congestion_ops pybpf_cc = {
	.init = (void *)pybpf_init,
	.ssthresh = (void *)pybpf_ssthresh,
	.cong_avoid = (void *)pybpf_cong_avoid,
	.undo_cwnd = (void *)pybpf_undo_cwnd,
	.name = "pybpf_cc",
};

SEC(".struct_ops")
struct tcp_congestion_ops pybpf_cc_old = {
	.init = (void *)pybpf_init,
	.ssthresh = (void *)pybpf_ssthresh,
	.cong_avoid = (void *)pybpf_cong_avoid,
	.undo_cwnd = (void *)pybpf_undo_cwnd,
	.name = "pybpf_cc_old",
};

char LICENSE[] SEC("license") = "GPL";
