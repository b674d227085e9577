// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * ksyms - `extern ... __ksym`: kernel functions called as kfuncs, and kernel symbol addresses.
 *
 *   bpf_task_acquire / bpf_task_release  kfuncs (typed: their BTF prototypes are matched against the
 *                                        kernel's; the call becomes BPF_PSEUDO_KFUNC_CALL with the BTF id)
 *   schedule                             untyped ksym (`const void`): ld_imm64 of its address, from
 *                                        /proc/kallsyms
 *   pybpf_no_such_symbol                 weak untyped ksym that does not exist: address 0
 * `on_newtask` is a tp_btf program on task_newtask (arguments are typed kernel pointers, which is what
 * lets it pass `task` to the kfunc). For children of `target_pid` (.rodata, 0 = nobody) it acquires and
 * releases the new task and records in .bss: child_pid, acquired (times), schedule_addr, missing_addr (0).
 * Variable ksyms (per-CPU `runqueues`) are in ksyms_var.bpf.c: they do not resolve on this host.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern const void schedule __ksym;
extern const void pybpf_no_such_symbol __ksym __weak;

const volatile __u32 target_pid = 0;

__u32 child_pid;
__u64 acquired, schedule_addr, missing_addr;

SEC("tp_btf/task_newtask")
int BPF_PROG(on_newtask, struct task_struct *task, __u64 clone_flags)
{
	struct task_struct *t;

	if (!target_pid || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	t = bpf_task_acquire(task);
	if (!t)
		return 0;
	child_pid = t->pid;
	acquired += 1;
	bpf_task_release(t);
	schedule_addr = (__u64)&schedule;
	missing_addr = (__u64)&pybpf_no_such_symbol;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
