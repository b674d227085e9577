// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * globals - global data of every kind, each becoming an internal array map.
 *
 *   .data          initialised globals (`counter`, a struct, a static with local linkage)
 *   .rodata        `const volatile` knobs user space sets before load, plus a plain const table
 *   .bss           zero-initialised globals, where the program writes its results
 *   .data.bar      a custom data section (SEC(".data.bar")), a map of its own
 *   .rodata.foo    a custom read-only section with a `const volatile` knob of its own
 * XDP program `read_globals` (BPF_PROG_TEST_RUN-able): counter, data_bar, static_var += 1 each run, and
 * result = { counter, knob_u32, knob_s64, knob_flag, knob_name, table[knob_u32 & 3], point.x + point.y,
 * static_var, data_bar, rodata_foo, runs }. Defaults give result.table_pick = 13 (table[7 & 3]).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* .data */
__u64 counter = 100;
struct { __u32 x, y; } point = { 3, 4 };
static __u32 static_var = 77;

/* .rodata */
const volatile __u32 knob_u32 = 7;
const volatile __s64 knob_s64 = -1;
const volatile bool knob_flag = false;
const volatile char knob_name[16] = "default";
const __u32 table[4] = { 10, 11, 12, 13 };

/* custom sections */
__u32 data_bar SEC(".data.bar") = 5;
const volatile __u32 rodata_foo SEC(".rodata.foo") = 9;

/* .bss */
struct result {
	__u64 counter;
	__u32 knob_u32;
	__u32 table_pick;
	__s64 knob_s64;
	__u32 knob_flag;
	__u32 point_sum;
	__u32 static_var;
	__u32 data_bar;
	__u32 rodata_foo;
	__u32 runs;
	char knob_name[16];
} result;
__u32 runs;

SEC("xdp")
int read_globals(struct xdp_md *ctx)
{
	int i;

	counter += 1;
	data_bar += 1;
	static_var += 1;	/* written, so it stays a real (STB_LOCAL) variable in .data */
	runs += 1;
	result.counter = counter;
	result.knob_u32 = knob_u32;
	result.table_pick = table[knob_u32 & 3];
	result.knob_s64 = knob_s64;
	result.knob_flag = knob_flag;
	result.point_sum = point.x + point.y;
	result.static_var = static_var;
	result.data_bar = data_bar;
	result.rodata_foo = rodata_foo;
	result.runs = runs;
	for (i = 0; i < sizeof(result.knob_name); i++)
		result.knob_name[i] = knob_name[i];
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
