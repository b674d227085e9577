// CO-RE type- and enum-based relocations: existence, size, matches, ids, enum values (incl. 64-bit),
// ___flavor structs that match, differ, or do not exist at all.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct___old {
	long state;		/* renamed to __state in 5.14 */
} __attribute__((preserve_access_index));

struct pybpf_no_such_struct {
	int x;
} __attribute__((preserve_access_index));

struct list_head___same {
	struct list_head___same *next, *prev;
};

struct list_head___diff {
	int next;
};

enum pybpf_local_enum {
	PYBPF_A = 1,
};

enum bpf_map_type___mine {
	BPF_MAP_TYPE_HASH___mine = 42,
	BPF_MAP_TYPE_ARRAY___mine = 43,
	BPF_MAP_TYPE_NOPE___mine = 44,
};

enum pybpf_big64___x {
	BIG_ONE = 0x100000000ULL,
};

typedef int pybpf_missing_t;

SEC("raw_tp/sys_enter")
int types(void *ctx)
{
	long acc = 0;

	acc += bpf_core_type_exists(struct task_struct);
	acc += bpf_core_type_exists(struct pybpf_no_such_struct);
	acc += bpf_core_type_exists(pybpf_missing_t);
	acc += bpf_core_type_size(struct task_struct);
	acc += bpf_core_type_size(struct list_head);
	acc += bpf_core_type_size(pid_t);
	acc += bpf_core_type_matches(struct list_head___same);
	acc += bpf_core_type_matches(struct list_head___diff);
	acc += bpf_core_type_matches(struct task_struct);
	acc += bpf_core_type_matches(enum bpf_map_type___mine);
	acc += bpf_core_type_id_local(struct task_struct);
	acc += bpf_core_type_id_kernel(struct task_struct);
	acc += bpf_core_type_id_kernel(struct pybpf_no_such_struct);
	acc += bpf_core_type_exists(struct list_head___diff);
	return acc;
}

SEC("raw_tp/sys_exit")
int enums(void *ctx)
{
	long acc = 0;

	acc += bpf_core_enum_value_exists(enum bpf_map_type___mine, BPF_MAP_TYPE_ARRAY___mine);
	acc += bpf_core_enum_value_exists(enum bpf_map_type___mine, BPF_MAP_TYPE_NOPE___mine);
	acc += bpf_core_enum_value(enum bpf_map_type___mine, BPF_MAP_TYPE_HASH___mine);
	acc += bpf_core_enum_value(enum bpf_map_type___mine, BPF_MAP_TYPE_ARRAY___mine);
	acc += bpf_core_enum_value_exists(enum pybpf_local_enum, PYBPF_A);
	acc += bpf_core_enum_value(enum pybpf_big64___x, BIG_ONE);
	acc += bpf_core_enum_value(enum bpf_map_type___mine, BPF_MAP_TYPE_NOPE___mine);
	return acc;
}

SEC("raw_tp/sched_process_exec")
int flavors(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	struct task_struct___old *o = (void *)t;
	long acc = 0;

	if (bpf_core_field_exists(o->state))
		acc += BPF_CORE_READ(o, state);
	else
		acc += BPF_CORE_READ(t, __state);
	acc += bpf_core_field_exists(o->state);
	return acc;
}
