#!/usr/bin/env python3
"""Generate pybpf's kernel ABI from a kernel's BTF: ``pybpf/sys/abi.py`` and ``pybpf/sys/_cffi_abi.py``.

Build-time only.  The input is a kernel's BTF, read through ``bpftool btf dump`` (C and raw views).  From it we take:

* every UAPI enum named in ``NAMED_ENUMS`` and every anonymous UAPI enum whose enumerators start with one of
  ``ANON_PREFIXES`` -> IntEnum classes (named) or plain constants (anonymous) in ``abi.py``;
* the structs and unions named in ``STRUCTS`` (with everything they reference) -> a cffi cdef compiled in
  out-of-line ABI mode into ``_cffi_abi.py`` (pure Python: importing it parses no C).

UAPI ``#define`` constants are not in BTF; they are listed in ``DEFINES`` below, in kernel names.
The generated cdef is checked member by member against the sizes cffi computes, so a layout cffi would get
wrong (packing, alignment) fails the generation instead of corrupting a syscall.

Usage:  tools/gen_abi.py [--btf /sys/kernel/btf/vmlinux]   (needs bpftool and cffi's parser)
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_ABI = os.path.join(ROOT, "pybpf", "sys", "abi.py")
OUT_CFFI = os.path.join(ROOT, "pybpf", "sys", "_cffi_abi.py")

NAMED_ENUMS = [
    "bpf_cmd", "bpf_map_type", "bpf_prog_type", "bpf_attach_type", "bpf_link_type", "bpf_perf_event_type",
    "bpf_func_id", "bpf_stats_type", "bpf_stack_build_id_status", "bpf_task_fd_type", "bpf_core_relo_kind",
    "bpf_cgroup_iter_order", "bpf_addr_space_cast", "bpf_adj_room_mode", "bpf_hdr_start_off",
    "bpf_lwt_encap_mode", "bpf_check_mtu_flags", "bpf_check_mtu_ret", "bpf_ret_code", "bpf_cond_pseudo_jmp",
    "tcx_action_base", "sk_action", "xdp_action", "btf_func_linkage", "nf_inet_hooks",
    "perf_type_id", "perf_hw_id", "perf_hw_cache_id", "perf_hw_cache_op_id", "perf_hw_cache_op_result_id",
    "perf_sw_ids", "perf_event_sample_format", "perf_branch_sample_type", "perf_event_read_format",
    "perf_event_ioc_flags", "perf_event_type", "perf_callchain_context", "perf_record_ksymbol_type",
    "perf_bpf_event_type", "perf_sample_regs_abi", "nlmsgerr_attrs",
]

# Anonymous enums are kept when their first enumerator starts with one of these (UAPI flag sets).
ANON_PREFIXES = (
    "BPF_ANY", "BPF_F_", "BPF_REG_", "BPF_RB_", "BPF_RINGBUF_", "BPF_LOCAL_STORAGE", "BPF_SOCK_OPS_",
    "BPF_TCP_", "BPF_FIB_", "BPF_CSUM_LEVEL", "BPF_ADJ_ROOM", "BPF_SK_LOOKUP", "BPF_SKB_", "BPF_LOAD_HDR",
    "BPF_WRITE_HDR", "BPF_FLOW_DISSECTOR", "BPF_TASK_ITER", "BPF_XFRM",
    "BTF_KIND_", "BTF_VAR_", "BTF_F_", "XDP_ATTACHED_", "IFLA_XDP_", "TCA_BPF_", "IFLA_UNSPEC", "TCA_UNSPEC",
    "TCP_BPF_", "SK_BPF_CB", "RTM_BASE", "NFPROTO_",
)

STRUCTS = [
    "union bpf_attr", "struct bpf_insn", "struct bpf_prog_info", "struct bpf_map_info", "struct bpf_btf_info",
    "struct bpf_link_info", "struct bpf_token_info", "struct bpf_func_info", "struct bpf_line_info",
    "struct bpf_core_relo", "struct btf_header", "struct perf_event_attr", "struct perf_event_mmap_page",
    "struct perf_event_header", "struct bpf_stack_build_id", "struct bpf_ringbuf_hdr",
    "struct bpf_perf_event_value", "struct bpf_lpm_trie_key_hdr", "struct bpf_cgroup_storage_key",
    "union bpf_iter_link_info",
]

# UAPI #defines (linux/bpf_common.h, bpf.h, btf.h, perf_event.h, netlink.h, if_link.h, pkt_*.h, socket.h): not in BTF.
DEFINES = """
# instruction classes (bpf_common.h, bpf.h)
BPF_LD 0x00
BPF_LDX 0x01
BPF_ST 0x02
BPF_STX 0x03
BPF_ALU 0x04
BPF_JMP 0x05
BPF_JMP32 0x06
BPF_ALU64 0x07
BPF_RET 0x06
BPF_MISC 0x07
# ld/ldx sizes
BPF_W 0x00
BPF_H 0x08
BPF_B 0x10
BPF_DW 0x18
# ld/ldx modes
BPF_IMM 0x00
BPF_ABS 0x20
BPF_IND 0x40
BPF_MEM 0x60
BPF_LEN 0x80
BPF_MSH 0xa0
BPF_MEMSX 0x80
BPF_ATOMIC 0xc0
BPF_XADD 0xc0
# alu/jmp operations
BPF_ADD 0x00
BPF_SUB 0x10
BPF_MUL 0x20
BPF_DIV 0x30
BPF_OR 0x40
BPF_AND 0x50
BPF_LSH 0x60
BPF_RSH 0x70
BPF_NEG 0x80
BPF_MOD 0x90
BPF_XOR 0xa0
BPF_MOV 0xb0
BPF_ARSH 0xc0
BPF_END 0xd0
BPF_TO_LE 0x00
BPF_TO_BE 0x08
BPF_FROM_LE 0x00
BPF_FROM_BE 0x08
BPF_JA 0x00
BPF_JEQ 0x10
BPF_JGT 0x20
BPF_JGE 0x30
BPF_JSET 0x40
BPF_JNE 0x50
BPF_JSGT 0x60
BPF_JSGE 0x70
BPF_CALL 0x80
BPF_EXIT 0x90
BPF_JLT 0xa0
BPF_JLE 0xb0
BPF_JSLT 0xc0
BPF_JSLE 0xd0
BPF_JCOND 0xe0
BPF_K 0x00
BPF_X 0x08
BPF_MAXINSNS 4096
# atomic operations (imm of BPF_ATOMIC)
BPF_FETCH 0x01
BPF_XCHG 0xe1
BPF_CMPXCHG 0xf1
BPF_LOAD_ACQ 0x100
BPF_STORE_REL 0x110
# attach flags
BPF_F_ALLOW_OVERRIDE 1
BPF_F_ALLOW_MULTI 2
BPF_F_REPLACE 4
BPF_F_BEFORE 8
BPF_F_AFTER 16
BPF_F_ID 32
BPF_F_LINK 8192
BPF_F_PREORDER 64
# program load flags
BPF_F_STRICT_ALIGNMENT 1
BPF_F_ANY_ALIGNMENT 2
BPF_F_TEST_RND_HI32 4
BPF_F_TEST_STATE_FREQ 8
BPF_F_SLEEPABLE 16
BPF_F_XDP_HAS_FRAGS 32
BPF_F_XDP_DEV_BOUND_ONLY 64
BPF_F_TEST_REG_INVARIANTS 128
BPF_F_NETFILTER_IP_DEFRAG 1
# pseudo sources of ld_imm64 and call
BPF_PSEUDO_MAP_FD 1
BPF_PSEUDO_MAP_VALUE 2
BPF_PSEUDO_BTF_ID 3
BPF_PSEUDO_FUNC 4
BPF_PSEUDO_MAP_IDX 5
BPF_PSEUDO_MAP_IDX_VALUE 6
BPF_PSEUDO_CALL 1
BPF_PSEUDO_KFUNC_CALL 2
# query and test-run flags
BPF_F_QUERY_EFFECTIVE 1
BPF_F_TEST_RUN_ON_CPU 1
BPF_F_TEST_XDP_LIVE_FRAMES 2
BPF_F_TEST_SKB_CHECKSUM_COMPLETE 4
# sizes
BPF_BUILD_ID_SIZE 20
BPF_OBJ_NAME_LEN 16
BPF_TAG_SIZE 8
XDP_PACKET_HEADROOM 256
MAX_BPF_REG 11
# btf.h
BTF_MAGIC 0xeB9F
BTF_VERSION 1
BTF_MAX_TYPE 0x000fffff
BTF_MAX_NAME_OFFSET 0x00ffffff
BTF_MAX_VLEN 0xffff
BTF_INT_SIGNED 1
BTF_INT_CHAR 2
BTF_INT_BOOL 4
# perf_event.h ioctls (_IO('$', n) / _IOW('$', n, type))
PERF_EVENT_IOC_ENABLE 0x2400
PERF_EVENT_IOC_DISABLE 0x2401
PERF_EVENT_IOC_REFRESH 0x2402
PERF_EVENT_IOC_RESET 0x2403
PERF_EVENT_IOC_PERIOD 0x40082404
PERF_EVENT_IOC_SET_OUTPUT 0x2405
PERF_EVENT_IOC_SET_FILTER 0x40082406
PERF_EVENT_IOC_ID 0x80082407
PERF_EVENT_IOC_SET_BPF 0x40042408
PERF_EVENT_IOC_PAUSE_OUTPUT 0x40042409
PERF_EVENT_IOC_QUERY_BPF 0xc008240a
PERF_EVENT_IOC_MODIFY_ATTRIBUTES 0x4008240b
PERF_FLAG_FD_NO_GROUP 1
PERF_FLAG_FD_OUTPUT 2
PERF_FLAG_PID_CGROUP 4
PERF_FLAG_FD_CLOEXEC 8
PERF_ATTR_SIZE_VER0 64
PERF_ATTR_SIZE_VER8 136
# netlink.h (rtnetlink messages: RTM_* and IFLA_*/TCA_* are enums above)
NETLINK_ROUTE 0
SOL_NETLINK 270
NETLINK_CAP_ACK 10
NETLINK_EXT_ACK 11
NETLINK_GET_STRICT_CHK 12
NLM_F_REQUEST 0x01
NLM_F_MULTI 0x02
NLM_F_ACK 0x04
NLM_F_ECHO 0x08
NLM_F_DUMP 0x300
NLM_F_REPLACE 0x100
NLM_F_EXCL 0x200
NLM_F_CREATE 0x400
NLM_F_CAPPED 0x100
NLM_F_ACK_TLVS 0x200
NLA_F_NESTED 0x8000
NLMSG_NOOP 0x1
NLMSG_ERROR 0x2
NLMSG_DONE 0x3
NLMSG_OVERRUN 0x4
# if_link.h XDP attach flags
XDP_FLAGS_UPDATE_IF_NOEXIST 1
XDP_FLAGS_SKB_MODE 2
XDP_FLAGS_DRV_MODE 4
XDP_FLAGS_HW_MODE 8
XDP_FLAGS_REPLACE 16
XDP_FLAGS_MODES 14
# pkt_sched.h / pkt_cls.h (tc handles, cls_bpf)
TC_H_ROOT 0xFFFFFFFF
TC_H_INGRESS 0xFFFFFFF1
TC_H_CLSACT 0xFFFFFFF1
TC_H_MIN_INGRESS 0xFFF2
TC_H_MIN_EGRESS 0xFFF3
TCA_BPF_FLAG_ACT_DIRECT 1
ETH_P_ALL 0x0003
# asm-generic/socket.h (x86-64, arm64)
SO_DETACH_FILTER 27
SO_DETACH_BPF 27
SO_ATTACH_BPF 50
SO_ATTACH_REUSEPORT_EBPF 52
SO_DETACH_REUSEPORT_BPF 68
"""

BASE_TYPEDEFS = """
typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
"""

# libc's syscall(2), declared with fixed integer arguments: glibc's syscall() is a plain register shuffle, so
# a non-variadic call is exact on x86-64 and arm64 and avoids building cdata for each variadic argument.
LIBC_CDEF = """
long syscall(long number, long arg1, long arg2, long arg3, long arg4, long arg5);
"""


def top_level_blocks(src: str) -> dict[str, str]:
    """Map 'struct X' / 'union X' / 'enum X' to its full top-level definition text."""
    out = {}
    for m in re.finditer(r"^(struct|union|enum) (\w+) \{\n.*?^\}( __attribute__\(\(packed\)\))?;\n", src, re.S | re.M):
        out[f"{m.group(1)} {m.group(2)}"] = m.group(0)
    return out


def anon_enums(src: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r"^enum \{\n.*?^\};\n", src, re.S | re.M)]


def enumerators(block: str) -> list[tuple[str, int]]:
    return [(n, int(v)) for n, v in re.findall(r"^\t(\w+) = (-?\d+)(?:U?LL)?,?$", block, re.M)]


def closure(blocks: dict[str, str], roots: list[str]) -> list[str]:
    """Roots plus every struct/union/enum they use, dependencies first."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        body = blocks[name]
        for dep in re.findall(r"\b(struct|union|enum) (\w+)\b(?! \{\n)", body.split("\n", 1)[1]):
            dep_name = f"{dep[0]} {dep[1]}"
            if dep_name in blocks:
                visit(dep_name)
        order.append(name)

    for r in roots:
        visit(r)
    return order


def gen_abi_py(src: str) -> str:
    blocks = top_level_blocks(src)
    lines = [
        '"""The kernel\'s BPF and perf ABI constants, in kernel names.',
        "",
        "Generated by tools/gen_abi.py from a kernel's BTF (enums) and the UAPI headers' #defines.  Do not edit.",
        "Every enumerator is a plain module constant (``BPF_MAP_TYPE_HASH``); each named kernel enum is also an",
        "IntEnum class named as in C (``bpf_map_type``), built on first use so importing this module stays cheap.",
        '"""',
        "from __future__ import annotations",
        "",
        "import os as _os",
        "from enum import IntEnum as _IntEnum",
        "",
        "# fmt: off",
    ]
    enum_members = {}
    for name in NAMED_ENUMS:
        block = blocks.get(f"enum {name}")
        if block is None:
            raise SystemExit(f"enum {name} not in this BTF")
        items = enumerators(block)
        enum_members[name] = [n for n, _ in items]
        lines.append("")
        lines.append(f"# enum {name}")
        for n, v in items:
            lines.append(f"{n} = {v}")
    lines.append("")
    lines.append("_ENUMS = {")
    for name, members in enum_members.items():
        lines.append(f"    {name!r}: {tuple(members)!r},")
    lines.append("}")
    lines.append("")
    lines.append("")
    lines.append("def __getattr__(name: str) -> type[_IntEnum]:")
    lines.append('    """Build the IntEnum class of a named kernel enum on first access."""')
    lines.append("    members = _ENUMS.get(name)")
    lines.append("    if members is None:")
    lines.append('        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")')
    lines.append("    cls = _IntEnum(name, {m: globals()[m] for m in members}, module=__name__)  # type: ignore[misc]")
    lines.append("    globals()[name] = cls")
    lines.append("    return cls")
    lines.append("")
    lines.append("# anonymous UAPI enums")
    seen = set()
    for block in anon_enums(src):
        items = enumerators(block)
        if not items or not items[0][0].startswith(ANON_PREFIXES):
            continue
        for n, v in items:
            if n not in seen:
                seen.add(n)
                lines.append(f"{n} = {v}")
    lines.append("")
    lines.append("# UAPI #defines")
    for line in DEFINES.strip().splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        n, v = line.split()
        lines.append(f"{n} = {v}")
    lines.append("")
    lines.append("# syscall numbers: x86-64 and arm64")
    lines.append("_NR = {'x86_64': (321, 298), 'aarch64': (280, 241)}")
    lines.append("NR_bpf, NR_perf_event_open = _NR.get(_os.uname().machine, (321, 298))")
    return "\n".join(lines) + "\n"


def gen_cdef(src: str) -> str:
    blocks = top_level_blocks(src)
    order = closure(blocks, STRUCTS)
    parts = [BASE_TYPEDEFS]
    for name in order:
        text = blocks[name]
        text = text.replace(" __attribute__((packed))", "")
        parts.append(text)
    parts.append(LIBC_CDEF)
    return "\n".join(parts)


def check_layout(ffi, raw: str) -> None:
    """Fail unless cffi lays out every struct exactly as the kernel's BTF does (size and member offsets).

    ``raw`` is bpftool's raw BTF listing (``[id] STRUCT 'name' size=N vlen=M`` then one line per member)."""
    want = {f"{kind.lower()} {name}": (int(size), body) for kind, name, size, body in re.findall(
        r"^\[\d+\] (STRUCT|UNION) '(\w+)' size=(\d+) vlen=\d+\n((?:\t.*\n)*)", raw, re.M)}
    for name in STRUCTS:
        size, body = want[name]
        if ffi.sizeof(name) != size:
            raise SystemExit(f"{name}: cffi size {ffi.sizeof(name)} != BTF size {size}")
        for member, bits in re.findall(r"^\t'(\w+)' type_id=\d+ bits_offset=(\d+)$", body, re.M):
            if int(bits) % 8 == 0 and ffi.offsetof(name, member) * 8 != int(bits):
                raise SystemExit(f"{name}.{member}: cffi offset {ffi.offsetof(name, member)} != BTF {int(bits) // 8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux", help="kernel BTF to read (default: running kernel)")
    args = ap.parse_args()

    def dump(fmt: str) -> str:
        cmd = ["bpftool", "btf", "dump", "file", args.btf, "format", fmt]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    src = dump("c")
    with open(OUT_ABI, "w") as f:
        f.write(gen_abi_py(src))

    from cffi import FFI

    cdef = gen_cdef(src)
    ffib = FFI()
    ffib.cdef(cdef)
    check_layout(ffib, dump("raw"))
    ffib.set_source("pybpf.sys._cffi_abi", None)
    ffib.emit_python_code(OUT_CFFI)
    print(f"wrote {OUT_ABI} and {OUT_CFFI}")


if __name__ == "__main__":
    sys.exit(main())
