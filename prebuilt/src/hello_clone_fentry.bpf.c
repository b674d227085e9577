// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * hello_clone_fentry - scenario S2 with fentry: "Hello, World!" on every kernel_clone() (the function behind
 * fork/clone/clone3 since 5.10; older kernels call it _do_fork).
 *
 * fentry needs BTF of the target at load time and the function tracer (trampolines); this host refuses
 * fentry loads with EPERM, so this stays in an object of its own. Test in the VMs.
 * pybpf-check: skip fentry load gives EPERM on this kernel (no function tracer); VM kernels 6.1/6.12 load it
 */
#define BPF_NO_GLOBAL_DATA
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("fentry/kernel_clone")
int BPF_PROG(hello_kernel_clone, struct kernel_clone_args *args)
{
	bpf_printk("Hello, World! (kernel_clone, flags %llx)", args->flags);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
