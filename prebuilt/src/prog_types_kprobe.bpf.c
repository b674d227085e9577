// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * prog_types_kprobe - the kprobe program type in its section spellings:
 *
 *   SEC("kprobe/do_nanosleep")        kprobe on a kernel function (BPF_KPROBE gives typed arguments)
 *   SEC("kretprobe/do_nanosleep")     its return (BPF_KRETPROBE gives the return value)
 *   SEC("kprobe/do_nanosleep+0x1")    kprobe at an offset inside the function
 *   SEC("ksyscall/nanosleep")         a syscall entry, the loader picks __x64_sys_nanosleep or sys_nanosleep
 *   SEC("kretsyscall/nanosleep")      its return
 *   SEC("kprobe.multi/do_nanosleep*") many functions by glob in one link (5.18+, expected attach type
 *                                     BPF_TRACE_KPROBE_MULTI)
 *   SEC("kprobe")                     no target in the section: chosen at attach time
 * Each bumps hits[<its index>] for `target_pid` (.rodata; 0 = every process). They all load on this host
 * (kprobe is also the uprobe program type) but cannot attach here: no CONFIG_KPROBES. VM tests.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

enum { K_KPROBE, K_KRETPROBE, K_OFFSET, K_KSYSCALL, K_KRETSYSCALL, K_MULTI, K_BARE, K_MAX };

const volatile __u32 target_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, K_MAX);
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

SEC("kprobe/do_nanosleep")
int BPF_KPROBE(kprobe_nanosleep, struct hrtimer_sleeper *t, enum hrtimer_mode mode)
{
	return hit(K_KPROBE);
}

SEC("kretprobe/do_nanosleep")
int BPF_KRETPROBE(kretprobe_nanosleep, int ret)
{
	return hit(K_KRETPROBE);
}

SEC("kprobe/do_nanosleep+0x1")
int kprobe_offset(struct pt_regs *ctx)
{
	return hit(K_OFFSET);
}

SEC("ksyscall/nanosleep")
int BPF_KSYSCALL(ksyscall_nanosleep, struct __kernel_timespec *req, struct __kernel_timespec *rem)
{
	return hit(K_KSYSCALL);
}

SEC("kretsyscall/nanosleep")
int BPF_KRETPROBE(kretsyscall_nanosleep, long ret)
{
	return hit(K_KRETSYSCALL);
}

SEC("kprobe.multi/do_nanosleep*")
int kprobe_multi(struct pt_regs *ctx)
{
	return hit(K_MULTI);
}

SEC("kprobe")
int kprobe_bare(struct pt_regs *ctx)
{
	return hit(K_BARE);
}

char LICENSE[] SEC("license") = "GPL";
