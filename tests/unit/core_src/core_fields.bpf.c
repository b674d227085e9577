// CO-RE field relocations against the running kernel: offsets, sizes, existence, signedness, bitfields,
// BPF_CORE_READ chains, direct (preserve_access_index) loads and load-size adjustments.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* a local flavor with a wider unsigned field than the kernel's: the load size is adjusted */
struct task_struct___wide {
	unsigned long flags;
	long pid;			/* signed and wider: the memory-size adjustment fails -> poisoned */
	int no_such_field_here;		/* missing in the kernel */
} __attribute__((preserve_access_index));

SEC("raw_tp/sys_enter")
int fields(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	long acc = 0;

	acc += BPF_CORE_READ(t, pid);
	acc += BPF_CORE_READ(t, real_parent, tgid);
	acc += BPF_CORE_READ(t, mm, mmap_base);
	acc += bpf_core_field_size(t->comm);
	acc += bpf_core_field_offset(t->tgid);
	acc += bpf_core_field_exists(t->pid);
	acc += bpf_core_field_size(t->se.vruntime);
	acc += bpf_core_field_offset(t->se.sum_exec_runtime);
	acc += bpf_core_field_exists(((struct task_struct___wide *)t)->no_such_field_here);
	acc += __builtin_preserve_field_info(t->prio, BPF_FIELD_SIGNED);
	acc += __builtin_preserve_field_info(t->flags, BPF_FIELD_SIGNED);
	return acc;
}

SEC("raw_tp/sys_exit")
int bitfields(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	long acc = 0;

	acc += BPF_CORE_READ_BITFIELD_PROBED(t, in_execve);
	acc += BPF_CORE_READ_BITFIELD_PROBED(t, sched_remote_wakeup);
	acc += BPF_CORE_READ_BITFIELD_PROBED(t, init_private_fork_class);
	acc += bpf_core_field_offset(t->in_iowait);
	acc += bpf_core_field_size(t->in_iowait);
	return acc;
}

SEC("tp_btf/sched_switch")
int direct(u64 *ctx)
{
	struct task_struct *t = (void *)ctx[1];
	struct task_struct___wide *w = (void *)t;
	long acc = 0;

	acc += t->pid;
	acc += t->tgid;
	acc += t->comm[2];
	acc += t->se.load.weight;
	acc += t->real_parent->pid;
	acc += w->flags;
	if (bpf_core_field_exists(w->no_such_field_here))
		acc += w->no_such_field_here;
	acc += w->pid;
	return acc;
}

SEC("raw_tp/sched_process_exec")
int sockets(void *ctx)
{
	struct sock *sk = (void *)bpf_get_current_task();
	struct sk_buff *skb = (void *)sk;
	long acc = 0;

	acc += BPF_CORE_READ(sk, __sk_common.skc_family);
	acc += BPF_CORE_READ(sk, __sk_common.skc_dport);
	acc += BPF_CORE_READ(sk, sk_protocol);
	acc += BPF_CORE_READ(skb, len);
	acc += (long)BPF_CORE_READ(skb, head);
	acc += bpf_core_field_offset(skb->cb[3]);
	acc += bpf_core_field_size(sk->__sk_common.skc_rcv_saddr);
	acc += BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	return acc;
}
