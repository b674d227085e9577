// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * opensnoop - the `opensnoop` tool: one record per open()/openat(), with the path, flags and result.
 *
 * syscalls/sys_enter_open and sys_enter_openat remember (path pointer, flags, mode) per thread in `start`;
 * the matching sys_exit_* tracepoints build a `struct open_event` and send it to the `events` ring buffer.
 * (sys_enter_open exists on x86-64 but not on arm64: attach what exists.)
 * Knobs in .rodata, 0 / (u32)-1 meaning "any": `targ_pid` (process), `targ_tid` (thread), `targ_uid`,
 * and `targ_failed` (only report failed opens, BCC's -x).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TASK_COMM_LEN	16
#define NAME_MAX	255

struct open_event {
	__u64 ts_ns;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__s32 ret;			/* fd, or -errno */
	__s32 flags;			/* O_* flags as passed */
	__u32 mode;
	char comm[TASK_COMM_LEN];
	char fname[NAME_MAX + 1];
};

struct open_args {
	const char *fname;
	__s32 flags;
	__u32 mode;
};

const volatile __u32 targ_pid = 0;
const volatile __u32 targ_tid = 0;
const volatile __u32 targ_uid = (__u32)-1;
const volatile bool targ_failed = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);		/* thread id */
	__type(value, struct open_args);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline bool wanted(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (targ_pid && targ_pid != id >> 32)
		return false;
	if (targ_tid && targ_tid != (__u32)id)
		return false;
	if (targ_uid != (__u32)-1 && targ_uid != (__u32)bpf_get_current_uid_gid())
		return false;
	return true;
}

static __always_inline int enter(const char *fname, int flags, __u32 mode)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args args = { .fname = fname, .flags = flags, .mode = mode };

	if (wanted())
		bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

/* Noinline on purpose: its parameter type is what puts struct open_event into the object's BTF. */
static __noinline int submit_event(struct open_event *e)
{
	return bpf_ringbuf_output(&events, e, sizeof(*e), 0);
}

static __always_inline int leave(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct open_args *args;
	struct open_event e = {};

	args = bpf_map_lookup_elem(&start, &tid);
	if (!args)
		return 0;
	if (targ_failed && ret >= 0)
		goto out;
	e.ts_ns = bpf_ktime_get_ns();
	e.pid = id >> 32;
	e.tid = tid;
	e.uid = (__u32)bpf_get_current_uid_gid();
	e.ret = ret;
	e.flags = args->flags;
	e.mode = args->mode;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_probe_read_user_str(e.fname, sizeof(e.fname), args->fname);
	submit_event(&e);
out:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int tracepoint__syscalls__sys_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[0], (int)ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tracepoint__syscalls__sys_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[1], (int)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_open")
int tracepoint__syscalls__sys_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int tracepoint__syscalls__sys_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
