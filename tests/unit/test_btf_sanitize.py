"""Sanitising an object's BTF for kernels without some BTF kinds (libbpf's rules), and filling in DATASEC sizes
and variable offsets from the ELF."""
from __future__ import annotations

import pytest

from btf_testlib import build_dir, compile_c, need_toolchain, sections
from pybpf.btf import BTF, Datasec, Var, VarSecinfo
from pybpf.btf.sanitize import Feature, fixup_datasecs, sanitize
from pybpf.errors import BTFError
from pybpf.sys import abi
from test_btf_parse import every_kind

K = abi


def kinds(btf: BTF) -> dict[int, int]:
    return {t.id: t.kind for t in btf}


def test_all_features_change_nothing() -> None:
    orig = BTF.parse(every_kind().to_bytes())
    assert sanitize(orig, Feature.ALL).to_bytes() == orig.to_bytes()


def test_nothing_supported() -> None:
    orig = BTF.parse(every_kind().to_bytes())
    before = orig.to_bytes()
    out = sanitize(orig, Feature.NONE)
    assert orig.to_bytes() == before  # the original is untouched
    k = kinds(out)
    assert k[16] == k[19] == K.BTF_KIND_INT and out[16].size == 1 and out[16].bits == 8  # VAR, DECL_TAG
    assert out[16].name == "counter"
    ds = out[17]
    assert ds.kind == K.BTF_KIND_STRUCT and ds.name == "_data" and ds.members[0].name == "counter"
    assert ds.members[0].type_id == 16 and ds.size == 4
    fp = out[14]
    assert fp.kind == K.BTF_KIND_ENUM and fp.size == 4 and [v.value for v in fp.values] == [1, 0]
    assert out[15].kind == K.BTF_KIND_TYPEDEF and out[15].name == "f" and out[15].type_id == 14
    assert out[18].kind == K.BTF_KIND_STRUCT and out[18].name == "" and out[18].size == 8  # FLOAT
    assert out[20].kind == K.BTF_KIND_CONST and out[20].name == ""  # TYPE_TAG
    assert out[7].kind == K.BTF_KIND_ENUM and not out[7].signed
    u = out[8]
    assert u.kind == K.BTF_KIND_UNION and u.size == 8 and u.members[0].name == "BIG"
    ph = out[u.members[0].type_id]
    assert ph.name == "enum64_placeholder" and ph.size == 1 and ph.id == len(out) - 1
    again = BTF.parse(out.to_bytes())
    assert kinds(again) == kinds(out)


@pytest.mark.parametrize("missing,type_id,kind", [
    (Feature.DATASEC, 17, K.BTF_KIND_STRUCT), (Feature.DECL_TAG, 19, K.BTF_KIND_INT),
    (Feature.FLOAT, 18, K.BTF_KIND_STRUCT), (Feature.TYPE_TAG, 20, K.BTF_KIND_CONST),
    (Feature.ENUM64, 8, K.BTF_KIND_UNION), (Feature.FUNC, 15, K.BTF_KIND_TYPEDEF),
])
def test_one_missing_feature(missing: Feature, type_id: int, kind: int) -> None:
    orig = BTF.parse(every_kind().to_bytes())
    out = sanitize(orig, Feature.ALL & ~missing)
    changed = {i for i in range(1, len(orig)) if out[i].kind != orig[i].kind}
    assert out[type_id].kind == kind and type_id in changed


def test_global_func_and_qmark_datasec() -> None:
    b = every_kind()
    b.add(Datasec("?.struct_ops", 0, []))
    orig = BTF.parse(b.to_bytes())
    out = sanitize(orig, Feature.ALL & ~(Feature.GLOBAL_FUNC | Feature.QMARK_DATASEC))
    assert out[15].kind == K.BTF_KIND_FUNC and out[15].linkage == K.BTF_FUNC_STATIC
    assert out[21].name == "_.struct_ops" and out[17].name == ".data"


SRC = """
int counter = 1;
static int hidden_static = 2;
__attribute__((visibility("hidden"))) int hidden_global = 3;
const volatile long config = 4;
char buf[100];
long more;
int get(void) { return counter + hidden_static + hidden_global + config + buf[3] + more; }
"""


def test_fixup_datasecs_from_elf() -> None:
    need_toolchain()
    proc = compile_c(SRC, "globals")
    assert proc.returncode == 0, proc.stderr
    obj = build_dir() / "globals.o"
    from elftools.elf.elffile import ELFFile

    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sizes = {s.name: s.header.sh_size for s in elf.iter_sections()}
        symtab = elf.get_section_by_name(".symtab")
        symbols = {s.name: s["st_value"] for s in symtab.iter_symbols() if s.name}
        hidden = {s.name for s in symtab.iter_symbols() if s["st_other"]["visibility"] in ("STV_HIDDEN",
                                                                                            "STV_INTERNAL")}
    btf = BTF.parse(sections(obj)[".BTF"])
    fixup_datasecs(btf, sizes, symbols, hidden)
    secs = {t.name: t for t in btf.types(K.BTF_KIND_DATASEC)}
    assert {".data", ".bss", ".rodata"} <= set(secs)
    for name, ds in secs.items():
        assert ds.size == sizes[name]
        offs = [v.offset for v in ds.vars]
        assert offs == sorted(offs)
        for v in ds.vars:
            var = btf[v.type_id]
            if var.linkage != K.BTF_VAR_STATIC or var.name == "hidden_global":
                assert v.offset == symbols[var.name], var.name
    assert btf.find_one("hidden_global", K.BTF_KIND_VAR).linkage == K.BTF_VAR_STATIC
    assert btf.find_one("counter", K.BTF_KIND_VAR).linkage == K.BTF_VAR_GLOBAL_ALLOCATED
    BTF.parse(btf.to_bytes())


def test_fixup_errors() -> None:
    b = BTF()
    i = b.add(Var("v", 0))
    b.add(Datasec(".data", 0, [VarSecinfo(i, 0, 4)]))
    with pytest.raises(BTFError, match="no section"):
        fixup_datasecs(b, {}, {})
    with pytest.raises(BTFError, match="no ELF symbol"):
        fixup_datasecs(b, {".data": 4}, {})
    b2 = BTF()
    k = b2.add(Var("k", 0, abi.BTF_VAR_GLOBAL_EXTERN))
    ks = b2.add(Datasec(".kconfig", 0, [VarSecinfo(k, 8, 4), VarSecinfo(k, 0, 4)]))
    fixup_datasecs(b2, {}, {})  # extern sections are only sorted
    assert [v.offset for v in b2[ks].vars] == [0, 8]
