// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * module_fentry - fentry on a function that may live in a kernel module: veth_xmit (the veth driver's
 * transmit).  Where veth is a module (Debian's kernels), the attach target is found in the module's split
 * BTF (/sys/kernel/btf/veth) and the program is loaded with that BTF object's fd (attach_btf_obj_fd); where
 * veth is built in, in vmlinux.
 * Counts in .bss `xmits`/`bytes` the frames of exactly `frame_len` bytes (.rodata; 0 = none) sent by the
 * device with ifindex `target_ifindex` (.rodata), so a test can send frames of an unusual size and find
 * exactly its own among ARP, IPv6 and other traffic.
 * pybpf-check: skip fentry programs are refused (EPERM) on this host
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile int target_ifindex = 0;
const volatile __u32 frame_len = 0;

__u64 xmits, bytes;

SEC("fentry/veth_xmit")
int BPF_PROG(veth_xmit_entry, struct sk_buff *skb, struct net_device *dev)
{
	if (dev->ifindex != target_ifindex || skb->len != frame_len)
		return 0;
	__sync_fetch_and_add(&xmits, 1);
	__sync_fetch_and_add(&bytes, skb->len);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
