// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * prog_types - one small program per common program type, all in one object (many programs across many
 * sections), every one loadable on this host and on 5.10 (sk_lookup needs 5.9). Each program bumps hits[<its index>] (a per-program
 * counter, see enum prog_index) so a test can see which attached program ran.
 *
 *   socket filter       SEC("socket")                  accepts the whole packet
 *   XDP                 SEC("xdp")                     XDP_PASS
 *   tc classifier       SEC("tc")                      TC_ACT_OK (tcx spelling: tcx.bpf.c)
 *   cgroup_skb          SEC("cgroup_skb/ingress"), SEC("cgroup_skb/egress")   allow
 *   cgroup sock_addr    SEC("cgroup/connect4")         allow
 *   cgroup sock         SEC("cgroup/sock_create")      allow
 *   sock_ops            SEC("sockops")                 adds established TCP sockets to sock_hash
 *   tracepoint          SEC("tracepoint/sched/sched_process_exec")
 *   raw tracepoint      SEC("raw_tp/sys_enter")        only for `target_pid` (.rodata)
 *   BTF tracepoint      SEC("tp_btf/sched_process_fork")
 *   uprobe / uretprobe  SEC("uprobe"), SEC("uretprobe")   target chosen at attach time
 *   perf_event          SEC("perf_event")              e.g. on the software cpu-clock
 *   iterator            SEC("iter/task")               one "pid comm" line per task
 *   sk_lookup           SEC("sk_lookup")               SK_PASS
 *   flow_dissector      SEC("flow_dissector")          BPF_FLOW_DISSECTOR_CONTINUE (kernel dissects)
 *   sk_msg              SEC("sk_msg")                  redirect through sock_hash, else pass
 *   sk_skb              SEC("sk_skb/stream_parser"), SEC("sk_skb/stream_verdict")  with sock_map
 * kprobe-type programs are in prog_types_kprobe.bpf.c, fentry/fexit in prog_types_fentry.bpf.c, LSM in
 * prog_types_lsm.bpf.c (this host cannot load the last two).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK	0

enum prog_index {
	P_SOCKET, P_XDP, P_TC, P_CGROUP_INGRESS, P_CGROUP_EGRESS, P_CONNECT4, P_SOCK_CREATE, P_SOCKOPS,
	P_TRACEPOINT, P_RAW_TP, P_TP_BTF, P_UPROBE, P_URETPROBE, P_PERF_EVENT, P_ITER, P_SK_LOOKUP,
	P_FLOW_DISSECTOR, P_SK_MSG, P_SK_SKB_PARSER, P_SK_SKB_VERDICT, P_MAX
};

const volatile __u32 target_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, P_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} sock_map SEC(".maps");

struct sock_key {
	__u32 sip;
	__u32 dip;
	__u32 sport;
	__u32 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__type(key, struct sock_key);
	__type(value, __u64);
} sock_hash SEC(".maps");

static __always_inline void hit(enum prog_index i)
{
	__u32 key = i;
	__u64 *n = bpf_map_lookup_elem(&hits, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("socket")
int socket_filter(struct __sk_buff *skb)
{
	hit(P_SOCKET);
	return skb->len;
}

SEC("xdp")
int xdp_prog(struct xdp_md *ctx)
{
	hit(P_XDP);
	return XDP_PASS;
}

SEC("tc")
int tc_prog(struct __sk_buff *skb)
{
	hit(P_TC);
	return TC_ACT_OK;
}

SEC("cgroup_skb/ingress")
int cgroup_ingress(struct __sk_buff *skb)
{
	hit(P_CGROUP_INGRESS);
	return 1;
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
	hit(P_CGROUP_EGRESS);
	return 1;
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	hit(P_CONNECT4);
	return 1;
}

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *sk)
{
	hit(P_SOCK_CREATE);
	return 1;
}

SEC("sockops")
int sockops_prog(struct bpf_sock_ops *skops)
{
	struct sock_key key;

	hit(P_SOCKOPS);
	if (skops->family != 2 /* AF_INET */)
		return 1;
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	key.sip = skops->local_ip4;
	key.dip = skops->remote_ip4;
	key.sport = skops->local_port;
	key.dport = skops->remote_port;
	bpf_sock_hash_update(skops, &sock_hash, &key, BPF_NOEXIST);
	return 1;
}

SEC("tracepoint/sched/sched_process_exec")
int tracepoint_exec(void *ctx)
{
	hit(P_TRACEPOINT);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_tp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!target_pid || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	hit(P_RAW_TP);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tp_btf_fork, struct task_struct *parent, struct task_struct *child)
{
	hit(P_TP_BTF);
	return 0;
}

SEC("uprobe")
int uprobe_prog(struct pt_regs *ctx)
{
	hit(P_UPROBE);
	return 0;
}

SEC("uretprobe")
int uretprobe_prog(struct pt_regs *ctx)
{
	hit(P_URETPROBE);
	return 0;
}

SEC("perf_event")
int perf_event_prog(struct bpf_perf_event_data *ctx)
{
	hit(P_PERF_EVENT);
	return 0;
}

SEC("iter/task")
int iter_task(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	if (ctx->meta->seq_num == 0)
		hit(P_ITER);
	BPF_SEQ_PRINTF(seq, "%d %s\n", task->pid, task->comm);
	return 0;
}

SEC("sk_lookup")
int sk_lookup_prog(struct bpf_sk_lookup *ctx)
{
	hit(P_SK_LOOKUP);
	return SK_PASS;
}

SEC("flow_dissector")
int flow_dissector_prog(struct __sk_buff *skb)
{
	hit(P_FLOW_DISSECTOR);
	return BPF_FLOW_DISSECTOR_CONTINUE;
}

SEC("sk_msg")
int sk_msg_prog(struct sk_msg_md *msg)
{
	/* The peer's sock_hash key (as sockops stored it): local_port is in host byte order, remote_port
	 * holds the network-order port in its upper 16 bits. */
	struct sock_key key = {
		.sip = msg->remote_ip4,
		.dip = msg->local_ip4,
		.sport = bpf_ntohl(msg->remote_port),
		.dport = bpf_htonl(msg->local_port),
	};

	hit(P_SK_MSG);
	if (msg->family != 2 /* AF_INET */)
		return SK_PASS;
	bpf_msg_redirect_hash(msg, &sock_hash, &key, BPF_F_INGRESS);
	return SK_PASS;
}

SEC("sk_skb/stream_parser")
int sk_skb_parser(struct __sk_buff *skb)
{
	hit(P_SK_SKB_PARSER);
	return skb->len;
}

SEC("sk_skb/stream_verdict")
int sk_skb_verdict(struct __sk_buff *skb)
{
	hit(P_SK_SKB_VERDICT);
	return bpf_sk_redirect_map(skb, &sock_map, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
