// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * write_watch_kprobe - scenario S4: the S3 write watch on the kernel's write path, by kprobe.
 *
 * kprobe on vfs_write (every write(2), pwrite, writev ... goes through it), same `const volatile` pid filter
 * in .rodata as write_watch.bpf.c, and the seed's "pid= %d,name:%s. writing data" line in trace_pipe.
 * Loads anywhere; attaching needs CONFIG_KPROBES (absent on this host): run it in the VM tests.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile int target_pid = 0;

SEC("kprobe/vfs_write")
int BPF_KPROBE(kprobe_vfs_write, struct file *file, const char *buf, size_t count)
{
	int pid = bpf_get_current_pid_tgid() >> 32;
	char comm[16];

	if (target_pid && pid != target_pid)
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	bpf_printk("pid= %d,name:%s. writing data (%lu bytes)", pid, comm, count);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
