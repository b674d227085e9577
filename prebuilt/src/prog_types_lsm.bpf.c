// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * prog_types_lsm - BPF LSM programs (5.7+; the kernel needs CONFIG_BPF_LSM and "bpf" in its lsm= list).
 *
 *   SEC("lsm/file_open")                   on the file_open hook; returning 0 allows, -EPERM would deny
 *   SEC("lsm.s/bprm_committed_creds")      a sleepable LSM program (may call sleepable helpers)
 * Each bumps hits[0 or 1] for `target_pid` (.rodata; 0 = every process) and allows everything.
 * pybpf-check: skip LSM load gives EPERM on this kernel (trampolines refused); VM kernels 6.1/6.12 load it
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void hit(__u32 i)
{
	__u64 *n;

	if (target_pid && (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return;
	n = bpf_map_lookup_elem(&hits, &i);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file)
{
	hit(0);
	return 0;
}

SEC("lsm.s/bprm_committed_creds")
int BPF_PROG(lsm_bprm_committed_creds, struct linux_binprm *bprm)
{
	hit(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
