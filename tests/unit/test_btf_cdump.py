"""``format_c`` output compiles with clang-19 -target bpf, and its layouts are the BTF's: every struct's size
and member offsets are checked by the compiler itself (_Static_assert)."""
from __future__ import annotations

import subprocess

import pytest

from btf_testlib import CLANG, CORE_SRC, VMLINUX, build_dir, compile_c, compiled, need_toolchain, sections, sources
from pybpf.btf import (BTF, Array, BTFExt, Const, Enum, Enum64, EnumValue, Float, FuncProto, Fwd, Int, Member, Param,
                       Ptr, Struct, Typedef, Union, Volatile)
from pybpf.btf.cdump import CDumper, format_c
from pybpf.btf.core import Resolver
from pybpf.btf.types import _Composite
from pybpf.sys import abi


def layout_asserts(btf: BTF, dumper: CDumper) -> str:
    """_Static_asserts of size and named non-bitfield member offsets for every struct/union defined."""
    def uses_va_list(type_id: int) -> bool:
        t = btf[type_id]
        while t.kind in (abi.BTF_KIND_TYPEDEF, abi.BTF_KIND_CONST, abi.BTF_KIND_VOLATILE, abi.BTF_KIND_ARRAY):
            if t.name == "__builtin_va_list":
                return True
            t = t.type
        return False

    out = []
    for t in btf:
        if not (isinstance(t, _Composite) and t.name and t.id in dumper._done):
            continue
        if any(uses_va_list(m.type_id) for m in t.members):
            continue  # va_list is the compiler's own type, of another size on the BPF target
        tag = dumper._tag(t)
        out.append(f"_Static_assert(sizeof({tag}) == {t.size}, \"size of [{t.id}]\");")
        out += [f"_Static_assert(__builtin_offsetof({tag}, {m.name}) == {m.bit_offset // 8}, \"[{t.id}].{m.name}\");"
                for m in t.members if m.name and not m.bitfield_size]
    return "\n".join(out) + "\n"


def check_compiles(btf: BTF, name: str) -> None:
    dumper = CDumper(btf)
    text = "".join(dumper.lines())
    proc = compile_c(text + layout_asserts(btf, dumper), name, ("-Werror=implicit-int",))
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_vmlinux_dump_compiles_with_exact_layouts() -> None:
    need_toolchain()
    check_compiles(BTF.load(VMLINUX), "vmlinux_layout")


@pytest.mark.parametrize("name", sources())
def test_object_btf_dump_compiles(name: str) -> None:
    need_toolchain()
    check_compiles(BTF.parse(sections(compiled(name))[".BTF"]), f"obj_{name}")


def test_hand_built_kinds_compile() -> None:
    need_toolchain()
    b = BTF()
    i = b.add(Int("int", 4, abi.BTF_INT_SIGNED))
    c = b.add(Int("char", 1, abi.BTF_INT_SIGNED | abi.BTF_INT_CHAR))
    u8 = b.add(Int("unsigned char", 1))
    ul = b.add(Int("long unsigned int", 8))
    fwd = b.add(Fwd("opaque"))
    node = b.add(Struct("node", 0))  # members filled in below (self reference through a typedef)
    node_t = b.add(Typedef("node_t", node))
    pnode = b.add(Ptr(node_t))
    proto = b.add(FuncProto(i, [Param("", pnode), Param("", b.add(Ptr(c))), Param("", 0)]))
    fnp = b.add(Ptr(proto))
    anon_u = b.add(Union("", 8, [Member("l", ul, 0), Member("b", b.add(Array(u8, i, 8)), 0)]))
    e64 = b.add(Enum64("big", 8, [EnumValue("BIG_A", 1 << 40), EnumValue("BIG_B", -(1 << 40))]))
    small = b.add(Enum("small", 1, [EnumValue("S0", 0), EnumValue("S1", 1)]))
    b.add(Enum("", 4, [EnumValue("LONELY", 5)]))
    arr_of_const_ptr = b.add(Array(b.add(Const(b.add(Ptr(c)))), i, 2))
    ptr_to_arr = b.add(Ptr(b.add(Array(b.add(Volatile(i)), i, 3))))
    dbl = b.add(Float("double", 8))
    b[node].size = 88
    b[node].members = [
        Member("next", pnode, 0), Member("fn", fnp, 64), Member("", anon_u, 128), Member("bits", i, 192, 3),
        Member("more", i, 195, 7), Member("e", e64, 256), Member("s", small, 320),
        Member("strs", arr_of_const_ptr, 384),
        Member("pa", ptr_to_arr, 512), Member("d", dbl, 576), Member("o", b.add(Ptr(fwd)), 576 + 64)]
    b[node].kflag = 1
    b.add(Struct("packed", 5, [Member("x", u8, 0), Member("y", i, 8)]))
    b.add(Struct("gappy", 24, [Member("x", u8, 0), Member("y", i, 96)]))
    check_compiles(BTF.parse(b.to_bytes()), "kinds")
    text = format_c(BTF.parse(b.to_bytes()))
    assert "__attribute__((packed))" in text and "enum {\n\tLONELY = 5,\n};" in text
    assert "BIG_A = 1099511627776LL" in text and "(*pa)[3]" in text and "char *const strs[2];" in text


def test_core_results_same_with_our_vmlinux_h() -> None:
    """Programs compiled against our vmlinux.h relocate exactly as when compiled against bpftool's."""
    need_toolchain()
    vm = BTF.load(VMLINUX)
    inc = build_dir() / "ours"
    inc.mkdir(exist_ok=True)
    (inc / "vmlinux.h").write_text(format_c(vm))
    for name in sources():
        results = []
        for obj in (compiled(name), inc / f"{name}.o"):
            if not obj.exists():
                subprocess.run([CLANG, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", f"-I{inc}", "-c",
                                str(CORE_SRC / f"{name}.bpf.c"), "-o", str(obj)], check=True)
            secs = sections(obj)
            btf = BTF.parse(secs[".BTF"])
            ext = BTFExt.parse(secs[".BTF.ext"], btf)
            r = Resolver(btf, [vm])
            results.append({sec: [(x.relo.insn_off, x.new, x.poison) for x in map(r.resolve, relos)]
                            for sec, relos in ext.core_relos.items()})
        assert results[0] == results[1], name
