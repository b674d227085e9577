// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * write_watch - scenario S3: watch the write() calls of one process, by tracepoint.
 *
 * tracepoint syscalls/sys_enter_write, filtered by `target_pid`, a `const volatile` in .rodata that user
 * space sets before loading (0 = every process). One trace_pipe line per write of that process.
 * The kprobe flavour (S4) is write_watch_kprobe.bpf.c.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Process (thread group) id to watch; rewritten in .rodata before load. */
const volatile int target_pid = 0;

SEC("tracepoint/syscalls/sys_enter_write")
int handle_write(struct trace_event_raw_sys_enter *ctx)
{
	int pid = bpf_get_current_pid_tgid() >> 32;

	if (target_pid && pid != target_pid)
		return 0;
	bpf_printk("pybpf-write: pid %d fd %ld count %ld", pid, ctx->args[0], ctx->args[2]);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
