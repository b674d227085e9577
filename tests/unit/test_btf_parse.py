"""BTF reading, writing and building: byte-exact round trips of compiler and kernel BTF, bpftool's raw view
of the same bytes, queries (names, kinds, sizes, alignment, member offsets), split BTF, byte order."""
from __future__ import annotations

import subprocess

import pytest

from btf_testlib import VMLINUX, compiled, need_toolchain, sections, sources
from pybpf.btf import (BTF, Array, BTFExt, Const, Datasec, DeclTag, Enum, Enum64, EnumValue, Float, Func, FuncProto,
                       Fwd, Int, Member, Param, Ptr, Restrict, Struct, Typedef, TypeTag, Union, Var, VarSecinfo,
                       Volatile)
from pybpf.btf.dump import format_raw, to_dict
from pybpf.errors import BTFError
from pybpf.sys import abi


@pytest.fixture(scope="module")
def vmlinux() -> BTF:
    need_toolchain()
    return BTF.load(VMLINUX)


def every_kind() -> BTF:
    """A BTF with one type of every kind (ids in comments)."""
    b = BTF()
    i = b.add(Int("int", 4, abi.BTF_INT_SIGNED))                        # 1
    c = b.add(Int("char", 1, abi.BTF_INT_SIGNED | abi.BTF_INT_CHAR))    # 2
    p = b.add(Ptr(c))                                                   # 3
    arr = b.add(Array(c, i, 16))                                        # 4
    s = b.add(Struct("s", 24, [Member("a", i, 0), Member("flag", i, 32, 1), Member("p", p, 64),
                               Member("name", arr, 128)]))              # 5
    b.add(Union("u", 8, [Member("x", i), Member("y", p)]))              # 6
    b.add(Enum("e", 4, [EnumValue("A", -1), EnumValue("B", 7)]))        # 7
    b.add(Enum64("e64", 8, [EnumValue("BIG", 1 << 40)]))                # 8
    b.add(Fwd("later", is_union=True))                                  # 9
    b.add(Typedef("s_t", s))                                            # 10
    b.add(Volatile(i))                                                  # 11
    b.add(Const(i))                                                     # 12
    b.add(Restrict(p))                                                  # 13
    proto = b.add(FuncProto(i, [Param("x", i), Param("", 0)]))          # 14
    b.add(Func("f", proto, abi.BTF_FUNC_GLOBAL))                        # 15
    v = b.add(Var("counter", i, abi.BTF_VAR_GLOBAL_ALLOCATED))          # 16
    b.add(Datasec(".data", 4, [VarSecinfo(v, 0, 4)]))                   # 17
    b.add(Float("double", 8))                                           # 18
    b.add(DeclTag("tag", s, 1))                                         # 19
    b.add(TypeTag("user", i))                                           # 20
    return b


def test_every_kind_round_trips() -> None:
    b = every_kind()
    data = b.to_bytes()
    again = BTF.parse(data)
    assert len(again) == len(b) == 21
    for t in b:
        u = again[t.id]
        assert type(u) is type(t) and u._same(t), (t, u)
    assert again.to_bytes() == data
    assert {again[k].kind for k in range(1, 21)} == set(range(1, 20))
    assert again[8].values[0].value == 1 << 40 and again[7].values[0].value == -1
    assert again[5].members[1].bitfield_size == 1 and again[5].kflag == 1
    assert again[14].params[1].type_id == 0


def test_big_endian_round_trips() -> None:
    b = every_kind()
    b.byteorder = "big"
    data = b.to_bytes()
    assert data[:2] == b"\xeb\x9f"
    again = BTF.parse(data)
    assert again.byteorder == "big" and again[5].members[3].name == "name" and again[8].values[0].value == 1 << 40
    assert again.to_bytes() == data


@pytest.mark.parametrize("name", sources())
def test_object_btf_and_ext_round_trip(name: str) -> None:
    need_toolchain()
    secs = sections(compiled(name))
    btf = BTF.parse(secs[".BTF"])
    ext = BTFExt.parse(secs[".BTF.ext"], btf)
    assert ext.func_info and ext.line_info and ext.core_relos
    assert btf.to_bytes() == secs[".BTF"]  # nothing decoded: records copied
    for _ in btf:  # now every record is re-encoded from its object
        pass
    assert btf.to_bytes() == secs[".BTF"]
    assert ext.to_bytes(btf) == secs[".BTF.ext"]


@pytest.mark.parametrize("name", sources())
def test_raw_dump_matches_bpftool(name: str) -> None:
    need_toolchain()
    obj = compiled(name)
    want = subprocess.run(["bpftool", "btf", "dump", "file", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    assert "\n".join(format_raw(BTF.parse(sections(obj)[".BTF"]))) + "\n" == want


def test_vmlinux_round_trip_and_raw_dump(vmlinux: BTF) -> None:
    raw = open(VMLINUX, "rb").read()
    assert vmlinux.to_bytes() == raw
    want = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX], capture_output=True, text=True,
                          check=True).stdout
    assert "\n".join(format_raw(vmlinux)) + "\n" == want
    assert vmlinux.to_bytes() == raw  # every type decoded now, and re-encoded identically


def test_queries_on_vmlinux(vmlinux: BTF) -> None:
    ts = vmlinux.find_one("task_struct", abi.BTF_KIND_STRUCT)
    assert ts.name == "task_struct" and ts.id == vmlinux.find("task_struct")[0].id
    pid = vmlinux.field(ts, "pid")
    assert vmlinux.resolve(pid.type_id).name == "int" and pid.byte_offset == ts.member("pid").byte_offset
    assert vmlinux.size_of(ts) == ts.size and vmlinux.align_of(ts) == 8
    assert vmlinux.size_of(vmlinux.find_one("pid_t")) == 4
    # a member inside an anonymous union/struct is found through it, like C
    sk = vmlinux.find_one("sock", abi.BTF_KIND_STRUCT)
    fam = vmlinux.field(sk, "__sk_common.skc_family")
    assert fam.byte_offset == 16
    assert vmlinux.find("pybpf_no_such_type") == []
    with pytest.raises(BTFError):
        vmlinux.find_one("pybpf_no_such_type")
    with pytest.raises(BTFError):
        vmlinux.field(ts, "no_such_member")
    structs = list(vmlinux.types(abi.BTF_KIND_STRUCT))
    assert ts in structs and all(t.kind == abi.BTF_KIND_STRUCT for t in structs)
    assert to_dict(ts)["kind"] == "STRUCT"


def test_bitfields_and_packed_alignment() -> None:
    b = BTF()
    u8 = b.add(Int("unsigned char", 1))
    u32 = b.add(Int("unsigned int", 4))
    s = b.add(Struct("bits", 4, [Member("a", u32, 0, 3), Member("b", u32, 3, 5), Member("c", u8, 8)]))
    packed = b.add(Struct("packed", 5, [Member("x", u8, 0), Member("y", u32, 8)]))
    arr = b.add(Array(u32, u32, 3))
    assert b.field(s, "b").bit_offset == 3 and b.field(s, "b").bitfield_size == 5
    assert b.align_of(s) == 4 and b.align_of(packed) == 1 and b.size_of(arr) == 12 and b.align_of(arr) == 4
    c = b.add(Const(arr))
    assert b.resolve(c) is b[arr]


def test_split_btf_on_vmlinux(vmlinux: BTF) -> None:
    mod = BTF(base=vmlinux)
    ts = vmlinux.find_one("task_struct", abi.BTF_KIND_STRUCT)
    ptr = mod.add(Ptr(ts.id))
    first = mod.add(Struct("pybpf_mod_struct", 8, [Member("task", ptr, 0)]))
    data = mod.to_bytes()
    again = BTF.parse(data, vmlinux)
    assert again.first_id == len(vmlinux) and len(again) == len(vmlinux) + 2
    assert again[first].name == "pybpf_mod_struct" and again[ptr].type.name == "task_struct"
    assert [t.id for t in again.find("pybpf_mod_struct")] == [first]
    assert again.find_one("task_struct", abi.BTF_KIND_STRUCT).id == ts.id  # base types are found too
    assert again.to_bytes() == data
    with pytest.raises(BTFError):
        again[len(again)]


def test_replace_and_add_update_lookups() -> None:
    b = every_kind()
    b2 = BTF.parse(b.to_bytes())
    b2.replace(1, Int("renamed", 4, abi.BTF_INT_SIGNED))
    assert b2.find("int") == [] and b2.find_one("renamed").id == 1
    new = b2.add(Struct("fresh", 0))
    assert b2.find_one("fresh").id == new
    again = BTF.parse(b2.to_bytes())
    assert again[1].name == "renamed" and again[new].name == "fresh" and again[5].name == "s"
