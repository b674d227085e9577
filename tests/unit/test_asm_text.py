"""The text assembler beyond llvm's syntax: labels, symbolic references, pasted bpftool/verifier/objdump text,
directives and error locations; and the builder producing the same instructions as the text."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.asm import (
    R0, R1, R2, R6, R10, W1, W2, Instruction, Instructions, add, assemble, atomic_add, be, bswap, call, call_func,
    call_kfunc, cmpxchg, disassemble, exit, gotol, jeq, jgt, jset, ld_abs, ld_func, ld_imm64, ld_ind, ld_map_fd,
    ld_map_value, load, lsh, may_goto, mov, movsx, neg, parse, parse_assembly, sdiv, smod, store, xchg,
)
from pybpf.errors import AsmError, LinkError
from pybpf.sys.abi import (
    BPF_FUNC_map_lookup_elem, BPF_MAP_TYPE_HASH, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL,
    BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE,
)

PROGRAM = """
    r6 = r1                        # keep the context
    *(u32 *)(r10 - 4) = 0
    r1 = map[counts] ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
    r1 = map_value[counts + 8] ll  // a map value
    r2 = func[callback] ll
    call callback
    w1 = (s8)w2
    r1 s/= 3
    w1 s%= w2
    r0 = be16 r0
    r0 = bswap64 r0
    r1 = -r1
    r1 <<= 4
    w2 = xchg32_32(r1 + 0, w2)
    r0 = cmpxchg_64(r1 - 8, r0, r2)
    r0 = *(s16 *)(r6 + 2)
    r0 = *(u16 *)skb[12]
    r0 = *(u8 *)skb[r1]
    r1 = 0x123456789 ll
    if r1 > 5 goto out
    if w1 & w2 goto out
    may_goto out
    gotol out
    call kfunc(bpf_rcu_read_lock)
out:
    r0 = 0
    exit
callback:
    r0 = 1 ; the callback's result
    exit
"""


def built() -> Instructions:
    return Instructions([
        mov(R6, R1), store(R10, -4, 0, bits=32), ld_map_fd(R1, "counts"), mov(R2, R10), add(R2, -4),
        call("bpf_map_lookup_elem"), jeq(R0, 0, "out"), mov(R1, 1), atomic_add(R0, 0, R1),
        ld_map_value(R1, "counts", 8), ld_func(R2, "callback"), call_func("callback"), movsx(W1, W2, 8),
        sdiv(R1, 3), smod(W1, W2), be(R0, 16), bswap(R0, 64), neg(R1), lsh(R1, 4), xchg(R1, 0, W2),
        cmpxchg(R1, -8, R2), load(R0, R6, 2, bits=16, signed=True), ld_abs(16, 12), ld_ind(8, R1),
        ld_imm64(R1, 0x123456789), jgt(R1, 5, "out"), jset(W1, W2, "out"), may_goto("out"), gotol("out"),
        call_kfunc("bpf_rcu_read_lock"), mov(R0, 0).with_symbol("out"), exit(),
        mov(R0, 1).with_symbol("callback"), exit(),
    ])


def test_builder_and_text_give_identical_instructions_and_bytes() -> None:
    text = parse(PROGRAM)
    assert text == built()
    maps = {"counts": 5}
    externs = {"bpf_rcu_read_lock": 1234}
    assert text.encode(maps, externs) == built().encode(maps, externs)


def test_symbolic_round_trip_through_listing() -> None:
    prog = parse(PROGRAM)
    assert parse(str(prog)) == prog


def test_references_resolve_to_slot_offsets() -> None:
    prog = parse(PROGRAM)
    offsets = prog.offsets()
    assert offsets[3] == 4 and prog.slots == offsets[-1] + 1  # the ld_imm64 takes two slots
    symbols = prog.symbol_offsets()
    code = Instructions.decode(prog.encode({"counts": 7}, {"bpf_rcu_read_lock": 99}))
    by_slot = dict(zip(code.offsets(), code))
    lookup = by_slot[prog.offsets()[5]]
    assert lookup.is_helper_call and lookup.imm == BPF_FUNC_map_lookup_elem
    jump = by_slot[offsets[6]]
    assert offsets[6] + 1 + jump.off == symbols["out"]
    map_load, value_load = by_slot[offsets[2]], by_slot[offsets[9]]
    assert (map_load.src, map_load.imm) == (BPF_PSEUDO_MAP_FD, 7)
    assert (value_load.src, value_load.imm) == (BPF_PSEUDO_MAP_VALUE, 8 << 32 | 7)
    func_load, pcall = by_slot[offsets[10]], by_slot[offsets[11]]
    assert func_load.src == BPF_PSEUDO_FUNC and offsets[10] + 1 + func_load.imm == symbols["callback"]
    assert pcall.is_pseudo_call and offsets[11] + 1 + pcall.imm == symbols["callback"]
    gl = by_slot[offsets[28]]
    assert offsets[28] + 1 + gl.imm == symbols["out"]
    kf = by_slot[offsets[29]]
    assert kf.is_kfunc_call and kf.imm == 99


def test_unresolved_references_raise_link_error_naming_them() -> None:
    with pytest.raises(LinkError, match="counts.*bpf_rcu_read_lock|bpf_rcu_read_lock.*counts"):
        parse(PROGRAM).encode()
    with pytest.raises(LinkError, match="elsewhere"):
        assemble("call elsewhere\nexit")


def test_call_forms() -> None:
    prog = parse("""
        call 1
        call bpf_map_lookup_elem
        call bpf_map_lookup_elem#12345
        call bpf_obj_new_impl#777
        call pc+3
        call pc-0x2
        call kfunc(0x10)
        call kfunc(0x10, 2)
        callx r3
        call local
    local:
        exit
    """)
    assert [(i.src, i.imm, i.off, i.reference) for i in prog[:8]] == [
        (0, 1, 0, None), (0, 1, 0, None), (0, 1, 0, None),
        (BPF_PSEUDO_KFUNC_CALL, 777, 0, "bpf_obj_new_impl"),
        (BPF_PSEUDO_CALL, 3, 0, None), (BPF_PSEUDO_CALL, -2, 0, None),
        (BPF_PSEUDO_KFUNC_CALL, 0x10, 0, None), (BPF_PSEUDO_KFUNC_CALL, 0x10, 2, None),
    ]
    assert prog[9].is_pseudo_call and prog[9].reference == "local"
    assert disassemble(assemble("call 1"), helpers=True) == ["call bpf_map_lookup_elem"]


def test_pasted_verifier_log_and_bpftool_xlated() -> None:
    log = """
func#0 @0
0: R1=ctx() R10=fp0
0: (b7) r0 = 0                        ; R0_w=0
1: (18) r1 = 0xffff888100a2b000
3: (62) *(u32 *)(r10 -4) = 0
4: (07) r2 += -8
5: (61) r0 = *(u32 *)(r1 +4)
6: (15) if r0 == 0x0 goto pc+2
7: (85) call bpf_map_lookup_elem#1
8: (85) call pc+2#bpf_prog_9efe8873120741b3_F
from 6 to 9: R0=0
9: (db) r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)
10: (c3) w3 = atomic_xchg((u32 *)(r1 -8), w3)
11: (db) r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)
12: (48) r0 = *(u16 *)skb[r1 + 4]
13: (95) exit
processed 13 insns
"""
    prog = parse(log)
    assert [str(i) for i in prog] == [
        "r0 = 0x0", "r1 = -0x777eff5d5000 ll", "*(u32 *)(r10 - 0x4) = 0x0", "r2 += -0x8",
        "w0 = *(u32 *)(r1 + 0x4)", "if r0 == 0x0 goto +0x2", "call 0x1", "call pc+0x2",
        "r2 = atomic_fetch_add((u64 *)(r1 + 0x0), r2)", "w3 = xchg32_32(r1 - 0x8, w3)",
        "r0 = cmpxchg_64(r1 + 0x0, r0, r2)", "r0 = *(u16 *)skb[r1 + 0x4]", "exit",
    ]
    with pytest.raises(AsmError, match="map ids.*map\\[NAME\\]") as e:
        parse("1: (18) r1 = map[id:1580]")
    assert e.value.line == 1 and e.value.token == "id"


def test_pasted_objdump_output() -> None:
    dump = """
/tmp/x.o:	file format elf64-bpf

Disassembly of section xdp:

0000000000000000 <prog>:
       0:	b7 00 00 00 01 00 00 00	r0 = 0x1
       1:	18 01 00 00 34 12 00 00	r1 = 0x1234 ll
       2:	00 00 00 00 00 00 00 00
       3:	05 00 00 00 00 00 00 00	goto +0x0 <prog+0x20>
       4:	95 00 00 00 00 00 00 00	exit
"""
    asm = parse_assembly(dump)
    assert list(asm.sections) == ["xdp"]
    prog = asm.sections["xdp"]
    assert prog[0].symbol == "prog" and [str(i) for i in prog] == ["r0 = 0x1", "r1 = 0x1234 ll", "goto +0x0", "exit"]


def test_objdump_section_header_with_slashes() -> None:
    """A section name holding '//' (a uprobe's binary path) is a section, not the start of a comment."""
    asm = parse_assembly("Disassembly of section uretprobe//bin/bash:readline:\nf:\n\tr0 = 0 // zero\n\texit\n")
    assert list(asm.sections) == ["uretprobe//bin/bash:readline"]
    assert [str(i) for i in asm.sections["uretprobe//bin/bash:readline"]] == ["r0 = 0x0", "exit"]


def test_directives_and_sections() -> None:
    asm = parse_assembly("""
        .file "x.c"
        .globl helper, prog
        .license "Dual BSD/GPL"
        .map counts, type=hash, key_size=4, value_size=8, max_entries=16, flags=1
        .map ring, type=BPF_MAP_TYPE_RINGBUF, max_entries=4096
        .section "tracepoint/syscalls/sys_enter_execve","ax",@progbits
    prog:
        .p2align 3
        r0 = 0
        exit
        .text
    helper: .LBB0_1:
        exit
    """)
    assert list(asm.sections) == ["tracepoint/syscalls/sys_enter_execve", ".text"]
    assert asm.license == "Dual BSD/GPL" and asm.globals == ["helper", "prog"]
    counts = asm.maps["counts"]
    assert (counts.type, counts.key_size, counts.value_size, counts.max_entries, counts.flags) == (
        BPF_MAP_TYPE_HASH, 4, 8, 16, 1)
    assert asm.maps["ring"].max_entries == 4096
    with pytest.raises(AsmError, match="several sections"):
        parse(".section a\nexit\n.section b\nexit")


def test_label_aliases_resolve_to_the_same_instruction() -> None:
    prog = parse("goto b\na:\nb: exit")
    assert prog[1].symbol == "a" and prog[0].reference == "a"
    assert assemble("goto b\na:\nb: exit") == assemble("goto +0\nexit")


@pytest.mark.parametrize(("text", "column", "token", "message"), [
    ("r11 = 1", 1, "r11", "unknown instruction"),
    ("r1 = r2 + 3", 9, "+", "unexpected token"),
    ("w1 += r2", 7, "r2", "32-bit wN"),
    ("r1 = *(u128 *)(r2 + 0)", 8, "u128", "expected a type"),
    ("goto +40000", 7, "40000", "16 bits"),
    ("r1 = 0x1ffffffff", 6, "0x1ffffffff", "does not fit 32 bits"),
    ("if r1 ~ r2 goto +1", 7, "~", "comparison"),
    ("lock *(u32 *)(r1 + 0) += r2", 26, "r2", "32-bit wN"),
    ("r0 = cmpxchg_64(r1 + 0, r3, r2)", 25, "r3", "r0"),
    ("r1 = le16 r2", 11, "r2", "in place"),
    ("frobnicate r1", 1, "frobnicate", "unknown instruction"),
    ("call", None, None, "end of line"),
    (".bogus 1", 1, ".bogus", "unknown directive"),
])
def test_errors_name_line_column_and_token(text: str, column: int | None, token: str | None, message: str) -> None:
    with pytest.raises(AsmError, match=message) as e:
        parse("exit\n" + text)
    assert e.value.line == 2
    if column is not None:
        assert e.value.column == column
    if token is not None:
        assert e.value.token == token


def test_label_errors() -> None:
    with pytest.raises(AsmError, match="defined twice"):
        parse("a: exit\na: exit")
    with pytest.raises(AsmError, match="not followed by an instruction"):
        parse("exit\nend:")


def test_builder_rejects_bad_operands() -> None:
    with pytest.raises(AsmError):
        mov(R1, W2)
    with pytest.raises(AsmError):
        movsx(W1, W2, 32)
    with pytest.raises(AsmError):
        call("no_such_helper")
    with pytest.raises(AsmError):
        mov(R1, 1 << 32)
    assert Instruction(0xB7, 1, imm=-1) == mov(R1, 0xFFFFFFFF)


_FRAGMENTS = ["r1", "w2", "=", "+=", "s", ">>=", "*", "(", ")", "u32", "s8", "+", "-", "0x10", "7", "goto", "if",
              "call", "lock", "ll", "map", "[", "]", ",", ":", "#", "pc", "skb", "exit", "label", "kfunc", "be16",
              "atomic_fetch_add", "xchg_64", "cmpxchg_64", ".section", ".map", "ld_pseudo", "\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map(" ".join) | st.text(max_size=40))
def test_garbage_text_raises_asm_error_only(text: str) -> None:
    try:
        parse(text)
    except (AsmError, LinkError):
        pass
