// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * hello - scenario S1: the smallest useful program.
 *
 * A tracepoint on syscalls/sys_enter_execve that calls bpf_printk; the line shows up in trace_pipe whenever
 * any process execs. Built with BPF_NO_GLOBAL_DATA so the format string is built on the stack: the program
 * references no map and no global data (it loads on kernels without global data, like the seeds' 4.15/4.18).
 * clang still leaves the string literals in an unreferenced .rodata.str1.1 section (libbpf makes a map of
 * it anyway; a loader may skip data sections nothing refers to).
 */
#define BPF_NO_GLOBAL_DATA
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_execve")
int hello(void *ctx)
{
	char msg[] = "Hello, World!";
	int pid = bpf_get_current_pid_tgid() >> 32;

	bpf_printk("pybpf-hello: %s (execve from pid %d)", msg, pid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
