// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcptracer_kprobe - scenario S7 the way tcptracer-bpf and BCC's tcptracer hook the kernel: kprobes.
 * Same records (struct tcp_event, tcptracer.h) and maps as tcptracer.bpf.c.
 *
 *  - kprobe + kretprobe on tcp_v4_connect / tcp_v6_connect: the socket is remembered per thread on entry,
 *    CONNECT is emitted on a 0 return (SYN sent; tcptracer-bpf semantics);
 *  - kretprobe on inet_csk_accept: ACCEPT for the returned socket (fd still unknown: -1);
 *  - kprobe on tcp_close: CLOSE, unless the socket never got connected;
 *  - kprobe on fd_install: FD_INSTALL with the fd, for pids in `fdinstall_pids` (any new fd, as tcptracer-bpf).
 * Loads here (kprobe is also the uprobe program type) but needs CONFIG_KPROBES to attach: VM tests.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcptracer.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);		/* thread id */
	__type(value, __u64);		/* struct sock * passed to tcp_v{4,6}_connect */
} connect_sk SEC(".maps");

static __always_inline int connect_entry(struct sock *sk)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 skp = (__u64)sk;

	bpf_map_update_elem(&connect_sk, &tid, &skp, BPF_ANY);
	return 0;
}

static __always_inline int connect_return(void *ctx, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct tcp_event e = {};
	__u64 *skp;

	skp = bpf_map_lookup_elem(&connect_sk, &tid);
	if (!skp)
		return 0;
	if (ret == 0) {
		event_init(&e, TCP_EVENT_CONNECT);
		event_fill_sock(&e, (struct sock *)*skp);
		emit_event(ctx, &e);
	}
	bpf_map_delete_elem(&connect_sk, &tid);
	return 0;
}

SEC("kprobe/tcp_v4_connect")
int BPF_KPROBE(tcp_v4_connect, struct sock *sk)
{
	return connect_entry(sk);
}

SEC("kretprobe/tcp_v4_connect")
int BPF_KRETPROBE(tcp_v4_connect_ret, int ret)
{
	return connect_return(ctx, ret);
}

SEC("kprobe/tcp_v6_connect")
int BPF_KPROBE(tcp_v6_connect, struct sock *sk)
{
	return connect_entry(sk);
}

SEC("kretprobe/tcp_v6_connect")
int BPF_KRETPROBE(tcp_v6_connect_ret, int ret)
{
	return connect_return(ctx, ret);
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(inet_csk_accept_ret, struct sock *newsk)
{
	struct tcp_event e = {};

	if (!newsk || !sock_is_tcp(newsk))
		return 0;
	event_init(&e, TCP_EVENT_ACCEPT);
	event_fill_sock(&e, newsk);
	emit_event(ctx, &e);
	return 0;
}

SEC("kprobe/tcp_close")
int BPF_KPROBE(tcp_close, struct sock *sk)
{
	struct tcp_event e = {};
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);

	if (state == TCP_CLOSE || state == TCP_LISTEN || state == TCP_SYN_SENT)
		return 0;
	event_init(&e, TCP_EVENT_CLOSE);
	event_fill_sock(&e, sk);
	emit_event(ctx, &e);
	return 0;
}

SEC("kprobe/fd_install")
int BPF_KPROBE(fd_install, unsigned int fd, struct file *file)
{
	struct tcp_event e = {};

	if (!fdinstall_watched())
		return 0;
	event_init(&e, TCP_EVENT_FD_INSTALL);
	e.fd = fd;
	emit_event(ctx, &e);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
