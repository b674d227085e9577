// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * usdt - USDT probes through libbpf's <bpf/usdt.bpf.h>: the header's `__bpf_usdt_specs` and
 * `__bpf_usdt_ip_to_spec_id` maps, its weak global helpers (bpf_usdt_arg, bpf_usdt_arg_cnt, bpf_usdt_cookie)
 * and the `LINUX_HAS_BPF_COOKIE` kconfig extern they use.
 *
 * Every program sends a `struct usdt_event` to the `events` ring buffer when the current process is
 * `target_pid` (`const volatile` in .rodata; 0 = nobody): `probe` says which program ran, `arg_cnt` is
 * bpf_usdt_arg_cnt(), `args` the first three arguments (bpf_usdt_arg()), `cookie` bpf_usdt_cookie().
 *
 *   usdt_gc_start        SEC("usdt"), for Python's python:gc__start (`-4@112(%rsp)`, the generation); probe 1
 *   usdt_function_entry  SEC("usdt"), for python:function__entry (`8@%rbp 8@%r12 -4@%eax`: file name, function
 *                        name, line number); also copies both strings into `filename`/`funcname`; probe 2
 *   usdt_auto_gc_start   SEC("usdt//usr/bin/python3.11:python:gc__start"): auto-attach spelling; probe 3
 *   usdt_args            SEC("usdt"), any probe: the raw arguments as signed longs; probe 4
 *
 * pybpf-build: cflags -idirafter /usr/include/x86_64-linux-gnu
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#define NAME_LEN 64

struct usdt_event {
	__u32 pid;
	__u32 probe;
	__s64 arg_cnt;
	__s64 args[3];
	__u64 cookie;
	char filename[NAME_LEN];
	char funcname[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 4096);
} events SEC(".maps");

/* Process (thread group) id to watch; rewritten in .rodata before load. */
const volatile __u32 target_pid = 0;

/* Noinline on purpose: its parameter type is what puts struct usdt_event into the object's BTF. */
static __noinline int submit_event(struct usdt_event *e)
{
	return bpf_ringbuf_output(&events, e, sizeof(*e), 0);
}

static __always_inline int record(struct pt_regs *ctx, __u32 probe, const char *filename, const char *funcname)
{
	struct usdt_event e = {};
	long val;
	int i;

	e.pid = bpf_get_current_pid_tgid() >> 32;
	if (!target_pid || e.pid != target_pid)
		return 0;
	e.probe = probe;
	e.arg_cnt = bpf_usdt_arg_cnt(ctx);
	for (i = 0; i < 3; i++) {
		if (bpf_usdt_arg(ctx, i, &val) == 0)
			e.args[i] = val;
	}
	e.cookie = bpf_usdt_cookie(ctx);
	if (filename)
		bpf_probe_read_user_str(e.filename, sizeof(e.filename), filename);
	if (funcname)
		bpf_probe_read_user_str(e.funcname, sizeof(e.funcname), funcname);
	submit_event(&e);
	return 0;
}

SEC("usdt")
int BPF_USDT(usdt_gc_start, int generation)
{
	return record(ctx, 1, 0, 0);
}

SEC("usdt")
int BPF_USDT(usdt_function_entry, const char *filename, const char *funcname, int lineno)
{
	return record(ctx, 2, filename, funcname);
}

SEC("usdt//usr/bin/python3.11:python:gc__start")
int BPF_USDT(usdt_auto_gc_start, int generation)
{
	return record(ctx, 3, 0, 0);
}

SEC("usdt")
int usdt_args(struct pt_regs *ctx)
{
	return record(ctx, 4, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
