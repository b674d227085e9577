"""CO-RE rules on hand-built BTF: flavor names, field/type compatibility and matching, candidate search
(vmlinux before modules, pruning), ambiguity, poisoning, load-size adjustment, and instruction patching."""
from __future__ import annotations

import pytest

from pybpf.btf import (BTF, Array, CoreRelo, Enum, Enum64, EnumValue, Float, FuncProto, Fwd, Int, Member, Param,
                       Ptr, Struct, Typedef, Union)
from pybpf.btf.core import POISON_IMM, Resolver, describe, essential_name, fields_compat, patch, resolve, \
    types_compat, types_match
from pybpf.errors import LinkError
from pybpf.sys import abi

try:
    from pybpf.asm import Instruction as Insn
except ImportError:  # the assembler may not be there yet: a stand-in with the same attributes
    from btf_testlib import Insn

S = abi.BTF_INT_SIGNED
ALU_MOV_K = abi.BPF_ALU64 | abi.BPF_MOV | abi.BPF_K
LDX_W = abi.BPF_LDX | abi.BPF_MEM | abi.BPF_W
LDX_DW = abi.BPF_LDX | abi.BPF_MEM | abi.BPF_DW
LD_IMM64 = abi.BPF_LD | abi.BPF_IMM | abi.BPF_DW


def local_btf() -> BTF:
    b = BTF()
    i = b.add(Int("int", 4, S))                                                     # 1
    ul = b.add(Int("unsigned long", 8))                                             # 2
    arr = b.add(Array(i, i, 4))                                                     # 3
    flex = b.add(Array(i, i, 0))                                                    # 4
    b.add(Struct("s", 32, [Member("a", i, 0), Member("b", ul, 64), Member("arr", arr, 128),
                           Member("flex", flex, 256)]))                             # 5
    b.add(Struct("gone", 4, [Member("x", i, 0)]))                                   # 6
    b.add(Enum("color", 4, [EnumValue("RED", 0), EnumValue("BLUE", 1)]))            # 7
    b.add(Struct("s___wide", 16, [Member("a", b.add(Int("long", 8, S)), 0)]))       # 9 (8 = long)
    b.add(Struct("", 4, [Member("x", i, 0)]))                                       # 10
    return b


def target_btf() -> BTF:
    b = BTF()
    i = b.add(Int("int", 4, S))                                                     # 1
    u = b.add(Int("unsigned int", 4))                                               # 2
    arr = b.add(Array(i, i, 2))                                                     # 3
    flex = b.add(Array(i, i, 0))                                                    # 4
    un = b.add(Union("", 4, [Member("a", i, 0)]))                                   # 5
    b.add(Struct("s", 40, [Member("pad", u, 0), Member("", un, 32),
                           Member("b", u, 64), Member("arr", arr, 96), Member("flex", flex, 320)]))  # 6
    b.add(Enum("color", 4, [EnumValue("BLUE", 7), EnumValue("RED", 9)]))            # 7
    return b


def relo(type_id: int, access: str, kind: int, insn: int = 0) -> CoreRelo:
    return CoreRelo(insn * 8, type_id, access, kind)


def test_essential_name() -> None:
    assert essential_name("task_struct___old") == "task_struct"
    assert essential_name("a___b___c") == "a___b"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("foo___") == "foo___"
    assert essential_name("foo____bar") == "foo____bar"
    assert essential_name("___foo") == "___foo"


def test_field_offsets_through_anonymous_members() -> None:
    r = resolve(local_btf(), relo(5, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), [target_btf()])
    assert (r.orig, r.new, r.poison) == (0, 4, False)
    assert r.target_spec.raw == [0, 1, 0] and str(r.target_spec).endswith("s.a (0:1:0 @ offset 4)")


def test_array_and_flex_array_access() -> None:
    loc, tgt = local_btf(), [target_btf()]
    r = resolve(loc, relo(5, "0:2:1", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    assert (r.orig, r.new) == (20, 16)
    r = resolve(loc, relo(5, "0:2:3", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)  # index 3 past target's [2]
    assert r.poison
    r = resolve(loc, relo(5, "0:3:7", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)  # flexible array: any index
    assert (r.orig, r.new) == (32 + 28, 40 + 28)
    with pytest.raises(LinkError, match="past the end of array"):
        resolve(loc, relo(5, "0:2:9", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)


def test_sizes_signedness_existence_and_shifts() -> None:
    loc, tgt = local_btf(), [target_btf()]
    assert resolve(loc, relo(5, "0:1", abi.BPF_CORE_FIELD_BYTE_SIZE), tgt).new == 4
    assert resolve(loc, relo(5, "0:0", abi.BPF_CORE_FIELD_SIGNED), tgt).new == 1
    assert resolve(loc, relo(5, "0:1", abi.BPF_CORE_FIELD_SIGNED), tgt).new == 0
    assert resolve(loc, relo(5, "0:1", abi.BPF_CORE_FIELD_EXISTS), tgt).new == 1
    assert resolve(loc, relo(6, "0:0", abi.BPF_CORE_FIELD_EXISTS), tgt).new == 0
    assert resolve(loc, relo(5, "0:0", abi.BPF_CORE_FIELD_LSHIFT_U64), tgt).new == 64 - 32
    assert resolve(loc, relo(5, "0:0", abi.BPF_CORE_FIELD_RSHIFT_U64), tgt).new == 32


def test_type_and_enum_relocations() -> None:
    loc, tgt = local_btf(), [target_btf()]
    assert resolve(loc, relo(5, "0", abi.BPF_CORE_TYPE_EXISTS), tgt).new == 1
    assert resolve(loc, relo(6, "0", abi.BPF_CORE_TYPE_EXISTS), tgt).new == 0
    assert resolve(loc, relo(5, "0", abi.BPF_CORE_TYPE_SIZE), tgt).new == 40
    r = resolve(loc, relo(5, "0", abi.BPF_CORE_TYPE_ID_TARGET), tgt)
    assert (r.orig, r.new, r.validate) == (5, 6, False)
    assert resolve(loc, relo(9, "0", abi.BPF_CORE_TYPE_ID_LOCAL), tgt).new == 9
    assert resolve(loc, relo(7, "1", abi.BPF_CORE_ENUMVAL_VALUE), tgt).new == 7
    assert resolve(loc, relo(7, "0", abi.BPF_CORE_ENUMVAL_EXISTS), tgt).new == 1
    assert resolve(loc, relo(5, "0", abi.BPF_CORE_TYPE_MATCHES), tgt).new == 0  # local 'b' is 8 bytes


def test_errors() -> None:
    loc, tgt = local_btf(), [target_btf()]
    for access in ("", ":1", "0::1", "0:x", "0:-1", "0:" + ":".join(["0"] * 70)):
        with pytest.raises(LinkError):
            resolve(loc, relo(5, access, abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    with pytest.raises(LinkError, match="anonymous"):
        resolve(loc, relo(10, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    with pytest.raises(LinkError, match="expected '0'"):
        resolve(loc, relo(5, "0:1", abi.BPF_CORE_TYPE_SIZE), tgt)
    with pytest.raises(LinkError, match="out of range"):
        resolve(loc, relo(99, "0", abi.BPF_CORE_TYPE_SIZE), tgt)
    with pytest.raises(LinkError, match="unknown relocation kind"):
        resolve(loc, relo(5, "0:0", 77), tgt)


def _flavors(offset_b: int, size_b: int) -> BTF:
    b = BTF()
    i = b.add(Int("int", 4, S))
    other = b.add(Int("other", size_b))
    b.add(Struct("s", 16, [Member("a", i, 0)]))
    b.add(Struct("s___v2", 16, [Member("a", i, 0), Member("b", other, offset_b)]))
    return b


def test_ambiguity_and_candidate_pruning() -> None:
    loc = BTF()
    i = loc.add(Int("int", 4, S))
    sid = loc.add(Struct("s", 16, [Member("a", i, 0), Member("b", i, 64)]))
    # two candidates with the same offsets and sizes: fine; different offset: ambiguous
    tgt = BTF()
    ti = tgt.add(Int("int", 4, S))
    tgt.add(Struct("s", 16, [Member("a", ti, 0), Member("b", ti, 32)]))
    tgt.add(Struct("s___v2", 16, [Member("a", ti, 0), Member("b", ti, 64)]))
    assert resolve(loc, relo(sid, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), [tgt]).new == 0
    with pytest.raises(LinkError, match="field offset ambiguity"):
        resolve(loc, relo(sid, "0:1", abi.BPF_CORE_FIELD_BYTE_OFFSET), [tgt])
    # same offset, different size: the relocation decision is ambiguous
    tgt2 = BTF()
    ti, tl = tgt2.add(Int("int", 4, S)), tgt2.add(Int("long", 8, S))
    tgt2.add(Struct("s", 16, [Member("b", ti, 64)]))
    tgt2.add(Struct("s___v2", 16, [Member("b", tl, 64)]))
    with pytest.raises(LinkError, match="decision ambiguity"):
        resolve(loc, relo(sid, "0:1", abi.BPF_CORE_FIELD_BYTE_SIZE), [tgt2])
    # candidates that matched once are the only ones considered afterwards (libbpf's pruning)
    tgt3 = BTF()
    ti = tgt3.add(Int("int", 4, S))
    tgt3.add(Struct("s", 16, [Member("a", ti, 0)]))
    tgt3.add(Struct("s___v2", 16, [Member("a", ti, 0), Member("b", ti, 32)]))
    res = Resolver(loc, [tgt3])
    assert len(res.candidates(sid)) == 2
    assert res.resolve(relo(sid, "0:1", abi.BPF_CORE_FIELD_BYTE_OFFSET)).new == 4
    assert [t for _, t in res.candidates(sid)] == [3]


def test_modules_only_when_vmlinux_has_no_candidate() -> None:
    vm = target_btf()
    mod = BTF(base=vm)
    mi = mod.add(Int("int", 4, S))
    mod.add(Struct("gone", 8, [Member("pad", mi, 0), Member("x", mi, 32)]))
    mod = BTF.parse(mod.to_bytes(), vm)
    r = resolve(local_btf(), relo(6, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), [vm, mod])
    assert r.new == 4 and r.target_btf is mod
    # 's' exists in vmlinux: a module's 's' is never looked at
    mod2 = BTF(base=vm)
    mod2.add(Struct("s", 8, []))
    mod2 = BTF.parse(mod2.to_bytes(), vm)
    assert Resolver(local_btf(), [vm, mod2]).candidates(5) == [(vm, 6)]


def test_compat_rules() -> None:
    a, b = BTF(), BTF()
    ids = {}
    for btf, prefix in ((a, "l"), (b, "t")):
        i4 = btf.add(Int("int", 4, S))
        i8 = btf.add(Int("long", 8, S))
        ids[prefix] = dict(
            i4=i4, i8=i8, bad_int=btf.add(Int("odd", 4, 0, 3, 1)), p=btf.add(Ptr(i4)),
            st=btf.add(Struct("x", 4, [])), un=btf.add(Union("y", 4, [])), f=btf.add(Float("double", 8)),
            e=btf.add(Enum("e", 4, [EnumValue("A", 0)])), e64=btf.add(Enum64("e___v", 8, [EnumValue("A", 0)])),
            anon_e=btf.add(Enum("", 4, [])), other_e=btf.add(Enum("zz", 4, [])),
            arr=btf.add(Array(i4, i4, 3)), arrp=btf.add(Array(btf.add(Ptr(0)), i4, 3)),
            td=btf.add(Typedef("t", i8)), fwd=btf.add(Fwd("x")), fwdu=btf.add(Fwd("x", True)),
            fp=btf.add(FuncProto(i4, [Param("", i4)])), fp2=btf.add(FuncProto(i4, [])),
        )
    L, T = ids["l"], ids["t"]

    def fc(x: str, y: str) -> bool:
        return fields_compat(a, L[x], b, T[y])

    assert fc("i4", "i8") and fc("i4", "td") and not fc("i4", "bad_int") and not fc("i4", "p")
    assert fc("st", "un") and fc("p", "p") and fc("f", "f") and fc("arr", "arr") and not fc("arr", "arrp")
    assert fc("e", "e64") and fc("e", "anon_e") and not fc("e", "other_e")
    assert types_compat(a, L["i4"], b, T["i8"]) and not types_compat(a, L["st"], b, T["un"])
    assert types_compat(a, L["fp"], b, T["fp"]) and not types_compat(a, L["fp"], b, T["fp2"])
    assert types_compat(a, L["td"], b, T["td"]) and not types_compat(a, L["td"], b, T["i8"])
    assert types_match(a, L["i4"], b, T["i4"]) and not types_match(a, L["i4"], b, T["i8"])
    assert types_match(a, L["e"], b, T["e64"]) is False  # sizes differ
    assert types_match(a, L["fp"], b, T["fp"]) and not types_match(a, L["fp"], b, T["fp2"])
    assert types_match(a, L["fwd"], b, T["fwd"]) and not types_match(a, L["fwd"], b, T["fwdu"])


def test_types_match_structs_and_pointers() -> None:
    def mk(members: list[tuple[str, str]], fwd_target: bool = False) -> tuple[BTF, int]:
        b = BTF()
        kinds = {"int": b.add(Int("int", 4, S)), "uint": b.add(Int("unsigned int", 4))}
        inner = b.add(Fwd("inner") if fwd_target else Struct("inner", 4, [Member("z", kinds["int"], 0)]))
        kinds["ptr"] = b.add(Ptr(inner))
        return b, b.add(Struct("outer", 16, [Member(n, kinds[k], 32 * j) for j, (n, k) in enumerate(members)]))

    la, lid = mk([("a", "int"), ("p", "ptr")])
    tb, tid = mk([("x", "uint"), ("a", "int"), ("p", "ptr")], fwd_target=True)
    assert types_match(la, lid, tb, tid)            # subset of members; struct behind a pointer matches a fwd
    tc, cid = mk([("a", "uint"), ("p", "ptr")])
    assert not types_match(la, lid, tc, cid)        # signedness differs
    td, did = mk([("a", "int")])
    assert not types_match(la, lid, td, did)        # member missing


def test_poison_and_patch() -> None:
    loc, tgt = local_btf(), [target_btf()]
    gone = resolve(loc, relo(6, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), [target_btf()])
    assert gone.poison and "no matching target field" in gone.fail_reason
    insn = Insn(ALU_MOV_K, 1, 0, 0, 0)
    assert patch(insn, gone) == [insn] and (insn.code, insn.imm) == (abi.BPF_JMP | abi.BPF_CALL, POISON_IMM)
    enum_gone = resolve(loc, relo(7, "1", abi.BPF_CORE_ENUMVAL_VALUE), [local_btf()])
    assert not enum_gone.poison and enum_gone.new == 1
    ld = Insn(LD_IMM64, 1, 0, 0, 0)
    missing = BTF()
    missing.add(Enum("color", 4, [EnumValue("GREEN", 3)]))
    res = resolve(loc, relo(7, "1", abi.BPF_CORE_ENUMVAL_VALUE), [missing])
    out = patch(ld, res)
    assert res.poison and len(out) == 2 and all(i.imm == POISON_IMM for i in out) and out[0] is ld
    # ALU: the compiler's value is checked, then replaced
    off = resolve(loc, relo(5, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    insn = Insn(ALU_MOV_K, 1, 0, 0, 0)
    patch(insn, off)
    assert insn.imm == 4
    with pytest.raises(LinkError, match="unexpected ALU imm"):
        patch(Insn(ALU_MOV_K, 1, 0, 0, 99), off)
    with pytest.raises(LinkError, match="register source"):
        patch(Insn(abi.BPF_ALU64 | abi.BPF_ADD | abi.BPF_X, 1, 2), off)
    # LDX of an 8-byte unsigned field that is 4 bytes (unsigned) in the target: offset and size change
    b = resolve(loc, relo(5, "0:1", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    ldx = Insn(LDX_DW, 1, 2, 8)
    assert patch(ldx, b) == [ldx] and ldx.off == 8 and ldx.code == LDX_W
    with pytest.raises(LinkError, match="accesses 4 bytes"):
        patch(Insn(LDX_W, 1, 2, 8), b)
    # a signed 8-byte field that shrank: an ALU use is fine, a load is poisoned
    wide = resolve(loc, relo(9, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET), tgt)
    assert wide.fail_memsz_adjust and not wide.poison
    ldx = Insn(LDX_DW, 1, 2, 0)
    patch(ldx, wide)
    assert ldx.imm == POISON_IMM
    # ld_imm64 carries the whole 64-bit value
    big = BTF()
    big.add(Enum64("color", 8, [EnumValue("BLUE", 1 << 40)]))
    res = resolve(loc, relo(7, "1", abi.BPF_CORE_ENUMVAL_VALUE), [big])
    ld = Insn(LD_IMM64, 1, 0, 0, 1)
    patch(ld, res)
    assert ld.imm == 1 << 40


def test_describe() -> None:
    loc = local_btf()
    r = relo(5, "0:0", abi.BPF_CORE_FIELD_BYTE_OFFSET, insn=3)
    res = resolve(loc, r, [target_btf()])
    d = describe(loc, r, res)
    assert d["kind"] == "byte_off" and d["insn"] == 3 and d["local"] == "[5] struct s.a (0:0 @ offset 0)"
    assert d["target"] == "[6] struct s.a (0:1:0 @ offset 4)" and d["text"].endswith("=> 0 -> 4")
    assert "invalid" in describe(loc, relo(5, "0:99", 0))["local"]
