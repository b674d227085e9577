// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * core - CO-RE relocations of every kind, on task_struct and sock.
 *
 *   field offsets     BPF_CORE_READ chains: task->real_parent->tgid, task->cred->uid.val,
 *                     task->nsproxy->net_ns->ns.inum, task->mm->exe_file->f_path.dentry->d_name.name
 *   field existence   bpf_core_field_exists(task->__state), and of a field no kernel has
 *   field size/offset bpf_core_field_size(task->comm), bpf_core_field_offset(task->comm)
 *   bitfields         BPF_CORE_READ_BITFIELD_PROBED on task->in_execve and sk->sk_protocol (a u8
 *                     bitfield before 5.6, a u16 since: the probed read handles both)
 *   ___flavor types   task_struct___pre514 (`long state`, before 5.14 renamed it to `__state`)
 *   type existence    bpf_core_type_exists(struct task_struct) and of a type no kernel has;
 *                     bpf_core_type_size(struct task_struct)
 *   enum values       bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_ringbuf_output),
 *                     bpf_core_enum_value_exists() on a real and on a made-up enumerator (flavored enum)
 * `task_info` runs on tracepoint syscalls/sys_enter_getpid for `target_pid` (.rodata; 0 = nobody) and fills
 * `task` in .bss; `sock_info` runs on tracepoint sock/inet_sock_set_state for the same process and fills
 * `sock` in .bss from the struct sock of its last TCP state change.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

const volatile __u32 target_pid = 0;

/* Kernels before 5.14: `long state` instead of `unsigned int __state`. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/* A field no kernel's task_struct has. */
struct task_struct___pybpf {
	int pybpf_no_such_field;
} __attribute__((preserve_access_index));

/* A type no kernel has. */
struct pybpf_no_such_type {
	int x;
} __attribute__((preserve_access_index));

/* Enumerators matched by name without the ___flavor suffix: one exists, one does not. */
enum bpf_map_type___pybpf {
	BPF_MAP_TYPE_RINGBUF___pybpf = 27,
	BPF_MAP_TYPE_PYBPF_NO_SUCH___pybpf = 1000,
};

struct task_core_info {
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 uid;
	__u64 state;
	__u32 has_state_new;		/* task->__state exists */
	__u32 has_fake_field;		/* always 0 */
	__u32 task_exists;		/* always 1 */
	__u32 fake_type_exists;		/* always 0 */
	__u32 task_size;
	__u32 comm_size;		/* 16 */
	__u32 comm_offset;
	__u32 in_execve;		/* bitfield; 0 inside getpid() */
	__u64 func_ringbuf_output;	/* BPF_FUNC_ringbuf_output: 130 */
	__u32 ringbuf_type_exists;	/* 1 on 5.8+ */
	__u32 fake_enum_exists;		/* always 0 */
	__u64 netns_inum;
	char comm[16];
	char exe[32];			/* basename of the executable */
};

struct sock_core_info {
	__u32 family;
	__u32 protocol;			/* IPPROTO_TCP */
	__u32 type;			/* SOCK_STREAM */
	__u32 state;			/* skc_state: still the old state, the tracepoint fires first */
	__u32 sport;
	__u32 dport;
	__u64 netns_inum;
	__u32 gso_disabled;		/* a 1-bit bitfield */
	__u32 changes;			/* how many state changes were seen */
};

struct task_core_info task;
struct sock_core_info sock;

SEC("tracepoint/syscalls/sys_enter_getpid")
int task_info(void *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	const unsigned char *exe_name;

	if (!target_pid || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;

	task.pid = BPF_CORE_READ(t, pid);
	task.tgid = BPF_CORE_READ(t, tgid);
	task.ppid = BPF_CORE_READ(t, real_parent, tgid);
	task.uid = BPF_CORE_READ(t, cred, uid.val);
	if (bpf_core_field_exists(t->__state)) {
		task.has_state_new = 1;
		task.state = BPF_CORE_READ(t, __state);
	} else {
		struct task_struct___pre514 *old = (void *)t;

		task.state = BPF_CORE_READ(old, state);
	}
	task.has_fake_field = bpf_core_field_exists(((struct task_struct___pybpf *)t)->pybpf_no_such_field);
	task.task_exists = bpf_core_type_exists(struct task_struct);
	task.fake_type_exists = bpf_core_type_exists(struct pybpf_no_such_type);
	task.task_size = bpf_core_type_size(struct task_struct);
	task.comm_size = bpf_core_field_size(t->comm);
	task.comm_offset = bpf_core_field_offset(t->comm);
	task.in_execve = BPF_CORE_READ_BITFIELD_PROBED(t, in_execve);
	task.func_ringbuf_output = bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_ringbuf_output);
	task.ringbuf_type_exists = bpf_core_enum_value_exists(enum bpf_map_type___pybpf,
							      BPF_MAP_TYPE_RINGBUF___pybpf);
	task.fake_enum_exists = bpf_core_enum_value_exists(enum bpf_map_type___pybpf,
							   BPF_MAP_TYPE_PYBPF_NO_SUCH___pybpf);
	task.netns_inum = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	BPF_CORE_READ_STR_INTO(&task.comm, t, comm);
	exe_name = BPF_CORE_READ(t, mm, exe_file, f_path.dentry, d_name.name);
	bpf_probe_read_kernel_str(task.exe, sizeof(task.exe), exe_name);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int sock_info(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;

	if (!target_pid || (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	sock.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	sock.protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	sock.type = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type);
	sock.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	sock.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	sock.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	sock.netns_inum = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	sock.gso_disabled = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_gso_disabled);
	sock.changes += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
