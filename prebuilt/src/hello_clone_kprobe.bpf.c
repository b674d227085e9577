// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * hello_clone_kprobe - scenario S2 as BCC wrote it: a kprobe on the clone syscall printing "Hello, World!".
 *
 * Two spellings of the same probe: "kprobe/__x64_sys_clone" names the x86-64 syscall wrapper explicitly
 * (what BCC's `kprobe__sys_clone` resolves to on >= 4.17), "ksyscall/clone" leaves the wrapper name to the
 * loader (libbpf's convention). The programs load anywhere (kprobe is also the uprobe program type), but
 * attaching needs CONFIG_KPROBES: test in the VMs. Tracepoint flavour: hello_clone.bpf.c.
 */
#define BPF_NO_GLOBAL_DATA
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

SEC("kprobe/__x64_sys_clone")
int kprobe__sys_clone(void *ctx)
{
	bpf_printk("Hello, World!");
	return 0;
}

SEC("ksyscall/clone")
int BPF_KSYSCALL(ksyscall_clone, unsigned long clone_flags)
{
	bpf_printk("Hello, World! (ksyscall, flags %lx)", clone_flags);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
