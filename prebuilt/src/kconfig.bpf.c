// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * kconfig - `extern ... __kconfig` variables: values the loader supplies in a read-only .kconfig map.
 *
 *   LINUX_KERNEL_VERSION        KERNEL_VERSION(a, b, c) of the running kernel (from uname, not config)
 *   LINUX_HAS_BPF_COOKIE        weak: does the kernel have bpf_get_attach_cookie (loader probes it)
 *   LINUX_HAS_SYSCALL_WRAPPER   weak: are syscalls entered through __<arch>_sys_* wrappers (4.17+ x86-64)
 *   CONFIG_HZ                   an int option (250 on this host)
 *   CONFIG_NR_CPUS              an int option read into a __u64
 *   CONFIG_BPF_SYSCALL          a bool option (y)
 *   CONFIG_BPF_JIT              a tristate (enum libbpf_tristate: TRI_NO / TRI_YES / TRI_MODULE)
 *   CONFIG_KPROBES              weak tristate that is "not set" here (TRI_NO)
 *   CONFIG_DEFAULT_HOSTNAME     weak string option, as a char array ("(none)")
 *   CONFIG_PYBPF_NO_SUCH_OPTION weak and absent from every config: 0
 * The CONFIG_* values come from /proc/config.gz or /boot/config-$(uname -r); a non-weak option missing
 * from there is a load error. XDP program `read_kconfig` (BPF_PROG_TEST_RUN-able) copies them all into
 * `values` in .bss.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern __u32 LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig __weak;
extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig __weak;
extern int CONFIG_HZ __kconfig;
extern __u64 CONFIG_NR_CPUS __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig;
extern enum libbpf_tristate CONFIG_KPROBES __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;
extern int CONFIG_PYBPF_NO_SUCH_OPTION __kconfig __weak;

struct kconfig_values {
	__u32 kernel_version;
	__u32 has_bpf_cookie;
	__u32 has_syscall_wrapper;
	__s32 hz;
	__u64 nr_cpus;
	__u32 bpf_syscall;
	__u32 bpf_jit;			/* enum libbpf_tristate */
	__u32 kprobes;			/* enum libbpf_tristate */
	__s32 no_such_option;
	char default_hostname[16];
} values;

SEC("xdp")
int read_kconfig(struct xdp_md *ctx)
{
	int i;

	values.kernel_version = LINUX_KERNEL_VERSION;
	values.has_bpf_cookie = LINUX_HAS_BPF_COOKIE;
	values.has_syscall_wrapper = LINUX_HAS_SYSCALL_WRAPPER;
	values.hz = CONFIG_HZ;
	values.nr_cpus = CONFIG_NR_CPUS;
	values.bpf_syscall = CONFIG_BPF_SYSCALL;
	values.bpf_jit = CONFIG_BPF_JIT;
	values.kprobes = CONFIG_KPROBES;
	values.no_such_option = CONFIG_PYBPF_NO_SUCH_OPTION;
	for (i = 0; i < sizeof(values.default_hostname); i++)
		values.default_hostname[i] = CONFIG_DEFAULT_HOSTNAME[i];
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
