// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * biolatency - the `biolatency` tool: block I/O latency as a log2 histogram.
 *
 * tracepoint block/block_rq_issue (or block_rq_insert with `targ_queued`, to include time in the queue)
 * stamps each request, keyed by (dev, sector) because these tracepoints carry no request pointer;
 * block/block_rq_complete turns the stamp into a latency and bumps `hists[{dev, slot}]`.
 * Slot i counts latencies in [2^i, 2^(i+1)) microseconds (milliseconds with `targ_ms`); slot 0 also counts 0.
 * `dev` is the kernel dev_t (major << 20 | minor) with `targ_per_disk`, else 0; `targ_dev` (with
 * `filter_dev`) keeps one disk only. The tracepoint records are read through vmlinux.h's
 * trace_event_raw_block_rq{,_completion} with CO-RE, so field moves between kernels are relocated; before
 * 5.11 the completion record type was trace_event_raw_block_rq_complete (a ___flavor below).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define MAX_SLOTS	27

const volatile bool targ_per_disk = false;
const volatile bool targ_ms = false;
const volatile bool targ_queued = false;
const volatile bool filter_dev = false;
const volatile __u32 targ_dev = 0;

/* The block_rq_complete record before 5.11, when its event class was still block_rq_complete. */
struct trace_event_raw_block_rq_complete___pre511 {
	dev_t dev;
	sector_t sector;
} __attribute__((preserve_access_index));

struct start_key {
	__u32 dev;
	__u32 _pad;
	__u64 sector;
};

struct hist_key {
	__u32 dev;			/* dev_t with targ_per_disk, else 0 */
	__u32 slot;			/* log2 of the latency */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct start_key);
	__type(value, __u64);		/* bpf_ktime_get_ns() at insert/issue */
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct hist_key);
	__type(value, __u64);		/* count */
} hists SEC(".maps");

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline int stamp(__u32 dev, __u64 sector)
{
	struct start_key key = { .dev = dev, .sector = sector };
	__u64 ts = bpf_ktime_get_ns();

	if (filter_dev && dev != targ_dev)
		return 0;
	bpf_map_update_elem(&start, &key, &ts, BPF_ANY);
	return 0;
}

SEC("tracepoint/block/block_rq_insert")
int block_rq_insert(struct trace_event_raw_block_rq *ctx)
{
	if (!targ_queued)
		return 0;
	return stamp(ctx->dev, ctx->sector);
}

SEC("tracepoint/block/block_rq_issue")
int block_rq_issue(struct trace_event_raw_block_rq *ctx)
{
	if (targ_queued) {
		struct start_key key = { .dev = ctx->dev, .sector = ctx->sector };

		if (bpf_map_lookup_elem(&start, &key))
			return 0;	/* keep the insert time */
	}
	return stamp(ctx->dev, ctx->sector);
}

SEC("tracepoint/block/block_rq_complete")
int block_rq_complete(void *ctx)
{
	struct start_key key = {};
	struct hist_key hkey = {};
	__u64 *tsp, delta, zero = 0, *count;
	__u32 slot;

	/* Probe reads: with two possible layouts clang computes the field offset in a register, and the
	 * verifier refuses loads through a ctx pointer moved by a variable. */
	if (bpf_core_type_exists(struct trace_event_raw_block_rq_completion)) {
		struct trace_event_raw_block_rq_completion *rec = ctx;

		BPF_CORE_READ_INTO(&key.dev, rec, dev);
		BPF_CORE_READ_INTO(&key.sector, rec, sector);
	} else {
		struct trace_event_raw_block_rq_complete___pre511 *rec = ctx;

		BPF_CORE_READ_INTO(&key.dev, rec, dev);
		BPF_CORE_READ_INTO(&key.sector, rec, sector);
	}
	tsp = bpf_map_lookup_elem(&start, &key);
	if (!tsp)
		return 0;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &key);
	if ((__s64)delta < 0)
		return 0;

	delta /= targ_ms ? 1000000U : 1000U;
	slot = log2_u64(delta);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	hkey.slot = slot;
	if (targ_per_disk)
		hkey.dev = key.dev;

	count = bpf_map_lookup_elem(&hists, &hkey);
	if (!count) {
		bpf_map_update_elem(&hists, &hkey, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&hists, &hkey);
		if (!count)
			return 0;
	}
	__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
