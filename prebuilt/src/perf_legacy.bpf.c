// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * perf_legacy - scenario S6: a perf event array declared the old way, SEC("maps") + struct bpf_map_def.
 *
 * tracepoint syscalls/sys_enter_write sends one `struct write_event` per write through
 * bpf_perf_event_output() on `log_map` (BPF_MAP_TYPE_PERF_EVENT_ARRAY, max_entries 0 = one slot per CPU,
 * as in the seed). The pid filter is a legacy ARRAY map too (`config_map[0]`, 0 = all), the way programs set
 * knobs before global data (5.2): the object uses no global data and no BTF-defined map, like the
 * seeds' 4.x-era code. It is still built with -g, so `struct write_event` is in .BTF for decoding: it is
 * the parameter type of the noinline subprogram emit(), which is what puts it there.
 *
 * libbpf >= 1.0 refuses SEC("maps"), so bpftool cannot open this object; `-DPYBPF_CHECK_BTF_MAPS` builds a
 * variant with the same maps as BTF-defined maps, which tools/build_objs.sh --check loads instead.
 * pybpf-check: variant -DPYBPF_CHECK_BTF_MAPS
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct write_event {
	__u32 pid;
	__u32 tid;
	__s64 fd;
	__u64 count;
	char comm[16];
};

#ifndef PYBPF_CHECK_BTF_MAPS
/* The layout every pre-BTF loader understood: five __u32, 20 bytes per map. */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") log_map = {
	.type = BPF_MAP_TYPE_PERF_EVENT_ARRAY,
	.key_size = sizeof(int),
	.value_size = sizeof(__u32),
	.max_entries = 0,
};

struct bpf_map_def SEC("maps") config_map = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 1,
};
#else
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(__u32));
} log_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1);
} config_map SEC(".maps");
#endif

static __noinline int emit(void *ctx, struct write_event *e)
{
	return bpf_perf_event_output(ctx, &log_map, BPF_F_CURRENT_CPU, e, sizeof(*e));
}

SEC("tracepoint/syscalls/sys_enter_write")
int trace_write(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct write_event e = {};
	__u32 zero = 0, *target;

	target = bpf_map_lookup_elem(&config_map, &zero);
	if (target && *target && *target != (__u32)(id >> 32))
		return 0;
	e.pid = id >> 32;
	e.tid = (__u32)id;
	e.fd = ctx->args[0];
	e.count = ctx->args[2];
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	emit(ctx, &e);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
