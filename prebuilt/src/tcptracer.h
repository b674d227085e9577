/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * tcptracer.h - what the three tcptracer objects share (tcptracer.bpf.c: tracepoints, tcptracer_kprobe.bpf.c,
 * tcptracer_fentry.bpf.c): the event record, the maps and the helpers that fill an event from a struct sock.
 * Include after vmlinux.h, bpf_helpers.h, bpf_core_read.h and bpf_endian.h.
 */
#ifndef PYBPF_TCPTRACER_H
#define PYBPF_TCPTRACER_H

#define AF_INET		2
#define AF_INET6	10

enum tcp_event_type {
	TCP_EVENT_CONNECT = 1,		/* an outgoing connection was made */
	TCP_EVENT_ACCEPT = 2,		/* an incoming connection was accepted */
	TCP_EVENT_CLOSE = 3,		/* an established connection is being closed */
	TCP_EVENT_FD_INSTALL = 4,	/* a process listed in fdinstall_pids got a new (socket) fd */
};

/* One record on the `events` perf buffer; no implicit padding. */
struct tcp_event {
	__u64 ts_ns;			/* bpf_ktime_get_ns() */
	enum tcp_event_type type;
	__u32 pid;			/* thread group id of the task that caused it */
	__u32 tid;
	__u32 netns;			/* inode number of the socket's network namespace */
	__s32 fd;			/* ACCEPT/FD_INSTALL: the new fd; -1 when unknown */
	__u16 family;			/* AF_INET or AF_INET6 */
	__u16 sport;			/* host byte order */
	__u16 dport;			/* host byte order */
	__u16 _pad;
	__u8 saddr[16];			/* network byte order; IPv4 uses the first 4 bytes */
	__u8 daddr[16];
	char comm[16];
	__u32 uid;
};

/* Records for user space: one perf ring per CPU (tcptracer-bpf used perf maps too; works on 4.x kernels). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

/* Processes whose new fds are reported as TCP_EVENT_FD_INSTALL; user space adds and deletes pids. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);		/* pid (tgid) */
	__type(value, __u32);		/* anything, e.g. 1 */
} fdinstall_pids SEC(".maps");

/* The task-dependent part of an event: time, ids, comm, uid. */
static __always_inline void event_init(struct tcp_event *e, enum tcp_event_type type)
{
	__u64 id = bpf_get_current_pid_tgid();

	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->fd = -1;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/* The connection part of an event, read from a struct sock with CO-RE (works from any program type). */
static __always_inline void event_fill_sock(struct tcp_event *e, struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (e->family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	} else if (e->family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* Is this an IPv4/IPv6 TCP socket? (sk_protocol was a bitfield before 5.6: the PROBED read handles both.) */
static __always_inline bool sock_is_tcp(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP;
}

/* Noinline on purpose: its parameter type is what puts struct tcp_event into the object's BTF. */
static __noinline int emit_event(void *ctx, struct tcp_event *e)
{
	return bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
}

static __always_inline bool fdinstall_watched(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	return bpf_map_lookup_elem(&fdinstall_pids, &pid) != NULL;
}

#endif /* PYBPF_TCPTRACER_H */
