"""Hand-encoded BPF programs for the attach tests (the assembler and loader are tested elsewhere).

Each program bumps a u64 counter in slot 0 of an array map, optionally only for one process (tgid), and
returns a fixed value; the packet programs drop ICMP and count what they dropped.
"""
from __future__ import annotations

import struct
import subprocess

import pybpf
from pybpf.sys import abi

R0, R1, R2, R3, R6, R10 = 0, 1, 2, 3, 6, 10


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def ld_map(reg: int, fd: int) -> bytes:
    return insn(0x18, reg, abi.BPF_PSEUDO_MAP_FD, imm=fd) + insn(0)


def mov(dst: int, imm: int) -> bytes:
    return insn(0xB7, dst, imm=imm)


EXIT = insn(0x95)


def bump(map_fd: int, key: int = 0) -> bytes:
    """``counter[key] += 1`` (atomically); clobbers r0-r5. 13 slots."""
    return (insn(0x62, R10, off=-4, imm=key) + ld_map(R1, map_fd) + insn(0xBF, R2, R10) + insn(0x07, R2, imm=-4)
            + insn(0x85, imm=abi.BPF_FUNC_map_lookup_elem) + insn(0x15, R0, off=2, imm=0) + mov(R1, 1)
            + insn(0xDB, R0, R1, imm=abi.BPF_ADD))


def counter(map_fd: int, pid: int | None = None, ret: int = 0) -> bytes:
    """Count calls (of process ``pid`` only, when given) in ``counter[0]``; return ``ret``."""
    body = bump(map_fd)
    head = b""
    if pid is not None:
        skip = len(body) // 8
        head = (insn(0x85, imm=abi.BPF_FUNC_get_current_pid_tgid) + insn(0x77, R0, imm=32)
                + insn(0x55, R0, off=skip, imm=pid))
    return head + body + mov(R0, ret) + EXIT


def counter_map() -> pybpf.Map:
    return pybpf.Map.create("array", 4, 8, 1, key="I", value="Q")


def load_counter(prog_type: str, pid: int | None = None, ret: int = 0, **load: object) -> tuple[pybpf.Program,
                                                                                                   pybpf.Map]:
    """A counter program of ``prog_type`` and its map."""
    m = counter_map()
    try:
        return pybpf.Program.load(counter(m.fd, pid, ret), prog_type, name="t_count", **load), m
    except BaseException:
        m.close()
        raise


def icmp_dropper(map_fd: int, drop: int, pass_: int, data_off: int, end_off: int) -> bytes:
    """Return ``drop`` for IPv4 ICMP packets (counting them), ``pass_`` otherwise.

    ``data_off``/``end_off`` are where the context holds the packet's data and data_end pointers (u32 loads:
    xdp_md and __sk_buff both expose them as u32)."""
    count_and_drop = bump(map_fd) + mov(R0, drop) + EXIT
    tail = mov(R0, pass_) + EXIT
    checks = [
        insn(0x61, R2, R1, off=data_off),        # r2 = data
        insn(0x61, R3, R1, off=end_off),         # r3 = data_end
        insn(0xBF, R1, R2),                      # r1 = data
        insn(0x07, R1, imm=34),                  # r1 += 14 + 20
    ]
    # then: if r1 > r3 goto pass; r1 = *(u16 *)(r2 + 12); if r1 != htons(0x0800) goto pass;
    #       r1 = *(u8 *)(r2 + 23); if r1 != 1 goto pass; <count and drop>
    body = count_and_drop
    cond3 = insn(0x71, R1, R2, off=23) + insn(0x55, R1, off=len(body) // 8, imm=1)
    body = cond3 + body
    cond2 = insn(0x69, R1, R2, off=12) + insn(0x55, R1, off=len(body) // 8, imm=0x0008)
    body = cond2 + body
    cond1 = insn(0x2D, R1, R3, off=len(body) // 8)
    body = cond1 + body
    return b"".join(checks) + body + tail


def btf_id(name: str, kind: str) -> int:
    """The vmlinux BTF id of ``kind`` (FUNC, TYPEDEF...) named ``name``, via bpftool (the test oracle)."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], check=True,
                         capture_output=True, text=True).stdout
    needle = f"] {kind} '{name}' "
    for line in out.splitlines():
        if needle in line:
            return int(line[1:line.index("]")])
    raise LookupError(f"{kind} {name} not in vmlinux BTF")


def printk(marker: bytes, pid: int) -> bytes:
    """``bpf_printk(marker)`` (at most 7 bytes) from process ``pid`` only; returns 0."""
    if len(marker) > 7:
        raise ValueError("marker too long")
    word = int.from_bytes(marker.ljust(8, b"\0"), "little")
    body = (insn(0x18, R1, imm=word & 0xFFFFFFFF) + insn(0, imm=word >> 32)   # r1 = marker (ld_imm64)
            + insn(0x7B, R10, R1, off=-8)                                   # *(u64 *)(r10 - 8) = r1
            + insn(0xBF, R1, R10) + insn(0x07, R1, imm=-8) + mov(R2, 8)
            + insn(0x85, imm=abi.BPF_FUNC_trace_printk))
    head = (insn(0x85, imm=abi.BPF_FUNC_get_current_pid_tgid) + insn(0x77, R0, imm=32)
            + insn(0x55, R0, off=len(body) // 8, imm=pid))
    return head + body + mov(R0, 0) + EXIT
