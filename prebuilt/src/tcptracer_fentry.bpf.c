// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcptracer_fentry - scenario S7 with fentry/fexit (BPF trampolines, 5.5+): the kprobe flavour's hooks
 * without kprobes. Same records (struct tcp_event, tcptracer.h) and maps as tcptracer.bpf.c.
 *
 *  - fexit on tcp_v4_connect / tcp_v6_connect: arguments and return value in one program, no stash map;
 *  - fexit on inet_csk_accept: its arguments changed in 6.10, so where the return value sits in the
 *    context is decided with bpf_core_type_exists() (bpf_get_func_ret() would need 5.17);
 *  - fentry on tcp_close and fd_install as in the kprobe flavour.
 * This host refuses fentry/fexit loads (EPERM): VM tests only.
 * pybpf-check: skip fentry/fexit load gives EPERM on this kernel (no function tracer); loads on VM kernels
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcptracer.h"

static __always_inline int connected(void *ctx, struct sock *sk, int ret)
{
	struct tcp_event e = {};

	if (ret)
		return 0;
	event_init(&e, TCP_EVENT_CONNECT);
	event_fill_sock(&e, sk);
	emit_event(ctx, &e);
	return 0;
}

SEC("fexit/tcp_v4_connect")
int BPF_PROG(tcp_v4_connect_exit, struct sock *sk, struct sockaddr *uaddr, int addr_len, int ret)
{
	return connected(ctx, sk, ret);
}

SEC("fexit/tcp_v6_connect")
int BPF_PROG(tcp_v6_connect_exit, struct sock *sk, struct sockaddr *uaddr, int addr_len, int ret)
{
	return connected(ctx, sk, ret);
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(inet_csk_accept_exit)
{
	struct tcp_event e = {};
	struct sock *newsk = NULL;

	/* An fexit context holds the arguments, then the return value. inet_csk_accept(sk, flags, err, kern)
	 * became inet_csk_accept(sk, arg) in 6.10, together with struct proto_accept_arg: CO-RE picks the
	 * slot. Probe reads, because clang merges the two loads into one through a ctx pointer moved by a
	 * register, which the verifier refuses. */
	if (bpf_core_type_exists(struct proto_accept_arg))
		bpf_probe_read_kernel(&newsk, sizeof(newsk), &ctx[2]);
	else
		bpf_probe_read_kernel(&newsk, sizeof(newsk), &ctx[4]);
	if (!newsk || !sock_is_tcp(newsk))
		return 0;
	event_init(&e, TCP_EVENT_ACCEPT);
	event_fill_sock(&e, newsk);
	emit_event(ctx, &e);
	return 0;
}

SEC("fentry/tcp_close")
int BPF_PROG(tcp_close_entry, struct sock *sk, long timeout)
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

SEC("fentry/fd_install")
int BPF_PROG(fd_install_entry, unsigned int fd, struct file *file)
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
