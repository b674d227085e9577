// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * prog_types_fentry - BPF trampoline programs (5.5+): fentry and fexit on a kernel function.
 *
 *   SEC("fentry/do_nanosleep")   typed arguments straight from the function's BTF prototype
 *   SEC("fexit/do_nanosleep")    the same arguments plus the return value, after the function ran
 * Loading needs the target's BTF id (the loader resolves it in kernel BTF: attach_btf_id) and the
 * function tracer; each bumps hits[0 or 1] for `target_pid` (.rodata; 0 = every process).
 * pybpf-check: skip fentry/fexit load gives EPERM on this kernel (no function tracer); loads on VM kernels
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

static __always_inline int hit(__u32 i)
{
	__u64 *n;

	if (target_pid && (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	n = bpf_map_lookup_elem(&hits, &i);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

SEC("fentry/do_nanosleep")
int BPF_PROG(fentry_nanosleep, struct hrtimer_sleeper *t, enum hrtimer_mode mode)
{
	return hit(0);
}

SEC("fexit/do_nanosleep")
int BPF_PROG(fexit_nanosleep, struct hrtimer_sleeper *t, enum hrtimer_mode mode, int ret)
{
	return hit(1);
}

char LICENSE[] SEC("license") = "GPL";
