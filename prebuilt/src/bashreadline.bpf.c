// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * bashreadline - scenario S8: the command lines typed in any bash, from a uretprobe on readline().
 *
 * SEC("uretprobe//bin/bash:readline") (libbpf's auto-attach spelling: binary path, then symbol) reads the
 * string readline() returns and sends a `struct readline_event` (pid, comm, line) to the `events` ring
 * buffer. Debian's /bin/bash exports readline from its own bundled copy; where bash links libreadline,
 * attach to that library's readline instead.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN	16
#define MAX_LINE	256

struct readline_event {
	__u32 pid;
	__u32 uid;
	char comm[TASK_COMM_LEN];
	char line[MAX_LINE];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 4096);
} events SEC(".maps");

/* Noinline on purpose: its parameter type is what puts struct readline_event into the object's BTF. */
static __noinline int submit_event(struct readline_event *e)
{
	return bpf_ringbuf_output(&events, e, sizeof(*e), 0);
}

SEC("uretprobe//bin/bash:readline")
int BPF_KRETPROBE(bash_readline, const char *ret)	/* BPF_URETPROBE in newer libbpf */
{
	struct readline_event e = {};

	if (!ret)
		return 0;
	e.pid = bpf_get_current_pid_tgid() >> 32;
	e.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_probe_read_user_str(e.line, sizeof(e.line), ret);
	submit_event(&e);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
