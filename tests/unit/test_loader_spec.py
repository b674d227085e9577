"""ObjectFile -> ObjectSpec without a kernel: programs, maps, globals, relocations, linking, editing."""
from __future__ import annotations

import pytest

import pybpf.prebuilt
from loader_objects import LEGACY, MAPS, SUBPROGS, UNKNOWN_SECTION, build
from pybpf.errors import LinkError, SectionError
from pybpf.loader import ObjectFile, internal_map_name, link_program
from pybpf.loader.reader import object_name
from pybpf.sys import abi


@pytest.mark.parametrize(("obj", "section", "expected"), [
    ("my_object_name", ".rodata", "my_objec.rodata"),  # libbpf's own examples
    ("my_object_name", ".bss", "my_objec.bss"),
    ("my_object_name", ".kconfig", "my_obje.kconfig"),
    ("write_watch", ".rodata", "write_wa.rodata"),
    ("x", ".rodata.str1.1", ".rodata.str1.1"),  # custom sections: no object prefix
    ("x", ".rodata.abracadabra", ".rodata.abracad"),
    ("a-b", ".data", "a_b.data"),
])
def test_internal_map_name(obj: str, section: str, expected: str) -> None:
    assert internal_map_name(obj, section) == expected


def test_object_name() -> None:
    assert object_name("/x/write_watch.bpf.o") == "write_watch"
    assert object_name("a_very_long_object_name_here.o") == "a_very_long_obj"


@pytest.mark.parametrize("obj", pybpf.prebuilt.names())
def test_prebuilt_objects_parse(obj: str) -> None:
    spec = ObjectFile(pybpf.prebuilt.path(obj))
    assert spec.programs
    for prog in spec.programs.values():
        assert prog.instructions[0].symbol == prog.name
        assert prog.type, prog.section
        for fn in link_program(spec, prog.name).functions[1:]:
            assert fn in spec.functions
    assert spec.to_dict()["name"] == spec.name
    assert str(spec).startswith("object ")


def test_subprograms_are_appended_in_libbpf_order(tmp_path: object) -> None:
    spec = ObjectFile(build(tmp_path, SUBPROGS))
    assert set(spec.programs) == {"main_a", "main_b"}
    assert {"a", "b", "c", "cb"} <= set(spec.functions)
    # main_a calls a (which calls c) then b: libbpf appends a, recurses into it (c), then b
    assert link_program(spec, "main_a").functions == ["main_a", "a", "c", "b"]
    linked = link_program(spec, "main_b")
    assert linked.functions == ["main_b", "cb", "c"]
    callback = next(i for i in linked.instructions if i.is_load_func)
    assert callback.reference == "cb" and callback.src == abi.BPF_PSEUDO_FUNC
    # every function got its BTF FUNC, at its first slot, and the first record is at 0
    offsets = linked.instructions.symbol_offsets()
    assert [s for s, _ in linked.func_info()] == [offsets[f] for f in linked.functions]
    slots = [s for s, _ in linked.line_info()]
    assert slots[0] == 0 and slots == sorted(set(slots))
    # references resolve to the right relative offsets
    code = linked.instructions.resolved(maps={name: 0 for name in spec.maps})
    calls = [(slot, ins) for slot, ins in zip(code.offsets(), code) if ins.is_pseudo_call]
    for (slot, ins), orig in zip(calls, [i for i in linked.instructions if i.is_pseudo_call]):
        assert slot + ins.imm + 1 == offsets[orig.reference]


def test_global_data_maps_and_variables(tmp_path: object) -> None:
    spec = ObjectFile(build(tmp_path, SUBPROGS))
    data, rodata, bss = spec.maps["t.data"], spec.maps["t.rodata"], spec.maps["t.bss"]
    assert (data.type, data.key_size, data.max_entries) == (abi.BPF_MAP_TYPE_ARRAY, 4, 1)
    assert rodata.flags == abi.BPF_F_RDONLY_PROG | abi.BPF_F_MMAPABLE
    assert data.flags == abi.BPF_F_MMAPABLE and bss.data is None
    assert spec.get_global("counter") == (7).to_bytes(4, "little")
    assert spec.variables["limit"].readonly
    # a static variable is addressed through the section symbol plus an addend: same map, right offset
    refs = {(i.reference, i.imm >> 32) for i in link_program(spec, "main_a").instructions if i.is_load_map}
    assert ("t.data", spec.variables["counter"].offset) in refs
    assert ("t.data", spec.variables["hidden_counter"].offset) in refs
    assert all(i.src == abi.BPF_PSEUDO_MAP_VALUE for i in link_program(spec, "main_a").instructions
               if i.is_load_map)


def test_spec_editing_and_copies(tmp_path: object) -> None:
    spec = ObjectFile(build(tmp_path, SUBPROGS))
    other = spec.copy()
    assert other == spec
    other.set_global("limit", -3)
    other.set_global("buf", "hi")
    other.maps["t.bss"].max_entries = 1
    other.programs["main_b"].autoload = False
    assert other.get_global("limit") == (-3).to_bytes(4, "little", signed=True)
    assert other.get_global("buf") == b"hi".ljust(16, b"\0")
    assert spec.get_global("limit") == (100).to_bytes(4, "little") and spec.programs["main_b"].autoload
    assert other != spec
    with pytest.raises(LinkError, match="no global variable 'nope'"):
        other.set_global("nope", 1)
    with pytest.raises(LinkError, match="cannot hold"):
        other.set_global("limit", 1 << 40)
    with pytest.raises(LinkError, match="17 bytes given"):
        other.set_global("buf", b"x" * 17)


def test_btf_maps_values_pinning_and_ringbuf(tmp_path: object) -> None:
    spec = ObjectFile(build(tmp_path, MAPS))
    outer = spec.maps["outer"]
    assert outer.inner is not None and outer.inner.name == "outer.inner"
    assert (outer.inner.type, outer.inner.value_size, outer.inner.max_entries) == (abi.BPF_MAP_TYPE_ARRAY, 8, 4)
    assert outer.values == {0: "in0", 2: "in1"} and outer.value_size == 4
    assert spec.maps["jmp"].values == {1: "tail"}
    pinned = spec.maps["pinned"]
    assert pinned.pinning == 1 and pinned.flags == abi.BPF_F_NO_PREALLOC
    assert pinned.key_type and pinned.value_type
    assert spec.maps["rb"].max_entries == 8192  # rounded up to a power-of-two number of pages, as libbpf
    kinds = {(r.kind, r.target) for r in spec.relocations}
    assert ("values", "outer[2]") in kinds and ("values", "jmp[1]") in kinds and ("map", "pinned") in kinds


def test_legacy_maps_of_any_definition_size(tmp_path: object) -> None:
    spec = ObjectFile(build(tmp_path, LEGACY, debug=False))
    counts, arr = spec.maps["counts"], spec.maps["arr"]
    assert (counts.type, counts.key_size, counts.value_size, counts.max_entries) == (abi.BPF_MAP_TYPE_HASH, 4, 8, 16)
    assert (arr.type, arr.max_entries, arr.section) == (abi.BPF_MAP_TYPE_ARRAY, 2, "maps")
    assert spec.btf is None


def test_unknown_section_fails_at_load_naming_it(tmp_path: object) -> None:
    import pybpf.loader as L

    spec = ObjectFile(build(tmp_path, UNKNOWN_SECTION))
    assert spec.programs["odd"].type == 0 and spec.programs["odd"].type_name == "unspec"
    with pytest.raises(SectionError, match="pybpf_no_such_kind/x"):
        L.load(spec)


@pytest.mark.parametrize("name", ["map_in_map", "kconfig", "tcptracer"])
def test_copies_share_nothing_that_can_be_edited(name: str) -> None:
    from pybpf.prebuilt import path

    spec = ObjectFile(path(name))
    before = spec.copy()
    other = spec.copy()
    assert other == spec == before
    for prog in (*other.programs.values(), *other.functions.values()):
        prog.instructions[0].imm += 1
        prog.instructions.append(prog.instructions[0].replace())
        prog.autoload = not prog.autoload
    for m in other.maps.values():
        m.max_entries += 1
        m.values[99] = "x"
        if m.inner is not None:
            m.inner.max_entries += 1
    for v in (*other.variables.values(), *other.kconfig):
        v.offset += 8
    for r in other.relocations:
        r.target = "changed"
    other.externs["x"] = ".ksyms"
    other.weak_externs.add("x")
    other.section_sizes["x"] = 1
    assert spec == before and other != spec
    assert str(spec) == str(before)
