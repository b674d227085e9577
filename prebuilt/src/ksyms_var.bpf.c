// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * ksyms_var - kernel *variables* as `__ksym` externs (5.10+ for typed per-CPU ones).
 *
 *   runqueues   typed per-CPU variable (`struct rq`, from kernel BTF): bpf_this_cpu_ptr() and
 *               bpf_per_cpu_ptr() give typed pointers into it
 *   init_task   untyped (`const void`) data symbol: its address, from /proc/kallsyms
 * `rq_info` (raw tracepoint sys_enter, for `target_pid` in .rodata) records nr_running of this CPU's and of
 * CPU 0's runqueue and the address of init_task in .bss.
 * This host's kernel is built without CONFIG_KALLSYMS_ALL: data symbols are missing from /proc/kallsyms and
 * the kernel itself refuses the typed per-CPU ksym ("ldimm64 failed to find the address for kernel
 * symbol"), under libbpf too. Test in the VMs.
 * pybpf-check: skip variable ksyms do not resolve here (no CONFIG_KALLSYMS_ALL); test in the VMs
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern const struct rq runqueues __ksym;
extern const void init_task __ksym;

const volatile __u32 target_pid = 0;

__u32 this_cpu_nr_running, cpu0_nr_running;
__u64 init_task_addr;

SEC("raw_tp/sys_enter")
int rq_info(void *ctx)
{
	struct rq *rq;

	if (!target_pid || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	rq = bpf_this_cpu_ptr(&runqueues);
	this_cpu_nr_running = rq->nr_running;
	rq = bpf_per_cpu_ptr(&runqueues, 0);
	if (rq)
		cpu0_nr_running = rq->nr_running;
	init_task_addr = (__u64)&init_task;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
