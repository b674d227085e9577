// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * execsnoop - the `execsnoop` tool: one record per execve(), with its arguments and result.
 *
 * tracepoint syscalls/sys_enter_execve builds a `struct exec_event` (pid, ppid, uid, filename + argv
 * packed as NUL-separated strings) in the `execs` hash, keyed by thread id; syscalls/sys_exit_execve adds
 * the return value and the new comm, and copies it to the `events` ring buffer (5.8+).
 * Knobs in .rodata: `targ_uid` ((u32)-1 = every user), `ignore_failed` (drop failed execs, default true,
 * like BCC's execsnoop without -x), `max_args` (argv strings kept, at most MAX_ARGS; BCC's --max-args).
 * `args` holds filename, argv[1], argv[2], ... (each NUL-terminated, args_size bytes in all); when argv was
 * cut short, args_count < the real argc.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN	16
#define ARGSIZE		128			/* longest single argument kept */
#define MAX_ARGS	20			/* argv strings kept, filename included */
#define ARGS_BUF	(ARGSIZE * MAX_ARGS)

struct exec_event {
	__u64 ts_ns;
	__u32 pid;			/* thread group id */
	__u32 tid;
	__u32 ppid;			/* real parent's thread group id */
	__u32 uid;
	__s32 retval;			/* execve() result: 0 or -errno */
	__u32 args_count;		/* strings in args */
	__u32 args_size;		/* bytes of args used */
	char comm[TASK_COMM_LEN];	/* after the exec */
	char args[ARGS_BUF];
};

const volatile __u32 targ_uid = (__u32)-1;
const volatile bool ignore_failed = true;
const volatile int max_args = MAX_ARGS;

/* Zeroed template for new entries of `execs` (too big for the BPF stack). */
static const struct exec_event empty_event = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);			/* thread id */
	__type(value, struct exec_event);
} execs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int tracepoint__syscalls__sys_enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, uid = (__u32)bpf_get_current_uid_gid();
	const char **argv = (const char **)ctx->args[1];
	struct task_struct *task;
	struct exec_event *e;
	const char *argp;
	long ret;
	int i;

	if (targ_uid != (__u32)-1 && uid != targ_uid)
		return 0;
	if (bpf_map_update_elem(&execs, &tid, &empty_event, BPF_NOEXIST))
		return 0;
	e = bpf_map_lookup_elem(&execs, &tid);
	if (!e)
		return 0;

	task = (struct task_struct *)bpf_get_current_task();
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = tid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = uid;

	ret = bpf_probe_read_user_str(e->args, ARGSIZE, (const char *)ctx->args[0]);
	if (ret < 0)
		return 0;
	e->args_count = 1;
	e->args_size = ret;

	for (i = 1; i < MAX_ARGS && i < max_args; i++) {
		if (bpf_probe_read_user(&argp, sizeof(argp), &argv[i]) || !argp)
			return 0;
		if (e->args_size > ARGS_BUF - ARGSIZE)
			return 0;
		ret = bpf_probe_read_user_str(&e->args[e->args_size], ARGSIZE, argp);
		if (ret < 0)
			return 0;
		e->args_count++;
		e->args_size += ret;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int tracepoint__syscalls__sys_exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct exec_event *e;

	e = bpf_map_lookup_elem(&execs, &tid);
	if (!e)
		return 0;
	e->retval = ctx->ret;
	if (!(ignore_failed && ctx->ret < 0)) {
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	}
	bpf_map_delete_elem(&execs, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
