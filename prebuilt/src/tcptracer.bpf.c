// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcptracer - scenario S7 and the `tcptracer` tool, with tracepoints only (no kprobes, no fentry), so it
 * loads and runs on kernels without kprobes (this host). Records: struct tcp_event in tcptracer.h, on the
 * `events` perf event array.
 *
 *  - sock/inet_sock_set_state (4.16+): CLOSE -> SYN_SENT happens inside connect(), so the connecting task is
 *    remembered per socket in `connecting`; SYN_SENT -> ESTABLISHED (often in softirq) emits CONNECT with
 *    that task. Leaving ESTABLISHED for FIN_WAIT1/CLOSE, or CLOSE_WAIT -> LAST_ACK (both from close() or
 *    shutdown() in the closing task) emits CLOSE. Addresses and ports come from the tracepoint's fields,
 *    the network namespace from the socket (CO-RE).
 *  - syscalls/sys_exit_accept4 and sys_exit_accept: the new fd is followed through the task's fd table
 *    (task->files->fdt->fd[fd]->private_data->sk, all CO-RE reads) to emit ACCEPT with the accepting task;
 *    if the task's pid is in `fdinstall_pids`, an FD_INSTALL record with the fd follows.
 * Kprobe flavour: tcptracer_kprobe.bpf.c; fentry flavour: tcptracer_fentry.bpf.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcptracer.h"

/* Who called connect() on a socket still in SYN_SENT. */
struct connector {
	__u32 pid;
	__u32 tid;
	__u32 uid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);		/* struct sock * */
	__type(value, struct connector);
} connecting SEC(".maps");

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 sk = (__u64)ctx->skaddr;
	int old = ctx->oldstate, new = ctx->newstate;
	struct tcp_event e = {};
	struct connector *c;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;

	if (new == TCP_SYN_SENT) {
		struct connector who = {};
		__u64 id = bpf_get_current_pid_tgid();

		who.pid = id >> 32;
		who.tid = (__u32)id;
		who.uid = (__u32)bpf_get_current_uid_gid();
		bpf_get_current_comm(who.comm, sizeof(who.comm));
		bpf_map_update_elem(&connecting, &sk, &who, BPF_ANY);
		return 0;
	}

	if (old == TCP_SYN_SENT) {
		c = bpf_map_lookup_elem(&connecting, &sk);
		if (!c)
			return 0;
		if (new == TCP_ESTABLISHED) {
			event_init(&e, TCP_EVENT_CONNECT);
			e.pid = c->pid;
			e.tid = c->tid;
			e.uid = c->uid;
			__builtin_memcpy(e.comm, c->comm, sizeof(e.comm));
		}
		bpf_map_delete_elem(&connecting, &sk);
		if (new != TCP_ESTABLISHED)
			return 0;	/* refused or timed out: no connection */
	} else if ((old == TCP_ESTABLISHED && (new == TCP_FIN_WAIT1 || new == TCP_CLOSE)) ||
		   (old == TCP_CLOSE_WAIT && new == TCP_LAST_ACK)) {
		event_init(&e, TCP_EVENT_CLOSE);
	} else {
		return 0;
	}

	e.family = ctx->family;
	e.sport = ctx->sport;
	e.dport = ctx->dport;
	/* Arrays in the tracepoint record: copied with (CO-RE) probe reads, the verifier refuses loads
	 * through a ctx pointer moved by a relocated offset. */
	if (ctx->family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)e.saddr, ctx, saddr);
		BPF_CORE_READ_INTO((__u32 *)e.daddr, ctx, daddr);
	} else {
		BPF_CORE_READ_INTO(&e.saddr, ctx, saddr_v6);
		BPF_CORE_READ_INTO(&e.daddr, ctx, daddr_v6);
	}
	e.netns = BPF_CORE_READ((struct sock *)ctx->skaddr, __sk_common.skc_net.net, ns.inum);
	emit_event(ctx, &e);
	return 0;
}

/* The struct sock behind fd `fd` of the current task, or NULL. */
static __always_inline struct sock *sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = NULL;
	struct socket *sock;

	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

static __always_inline int accepted(void *ctx, long ret)
{
	struct tcp_event e = {};
	struct sock *sk;

	if (ret < 0)
		return 0;
	sk = sock_of_fd(ret);
	if (!sk || !sock_is_tcp(sk))
		return 0;
	event_init(&e, TCP_EVENT_ACCEPT);
	event_fill_sock(&e, sk);
	e.fd = ret;
	emit_event(ctx, &e);
	if (fdinstall_watched()) {
		e.type = TCP_EVENT_FD_INSTALL;
		emit_event(ctx, &e);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return accepted(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int sys_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return accepted(ctx, ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
