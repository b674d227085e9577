// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * hello_clone - scenario S2 (BCC's hello world) for kernels without kprobes.
 *
 * BCC's `kprobe__sys_clone` printing "Hello, World!", written with the syscall tracepoints instead: one
 * program on sys_enter_clone (glibc's fork(), older pthread_create), one on sys_enter_clone3 (glibc >= 2.34
 * threads) and one on sys_enter_vfork (Python's subprocess, posix_spawn; x86-64 only - attach what exists).
 * The kprobe flavour is hello_clone_kprobe.bpf.c, the fentry one hello_clone_fentry.bpf.c.
 * No maps, no global data.
 */
#define BPF_NO_GLOBAL_DATA
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_clone")
int hello_clone(void *ctx)
{
	bpf_printk("Hello, World! (clone)");
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_clone3")
int hello_clone3(void *ctx)
{
	bpf_printk("Hello, World! (clone3)");
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_vfork")
int hello_vfork(void *ctx)
{
	bpf_printk("Hello, World! (vfork)");
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
