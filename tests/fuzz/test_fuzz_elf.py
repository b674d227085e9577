"""Hypothesis-driven mutation of real eBPF objects (the prebuilt corpus): ELF header, section table, symbol
table, relocations, the BTF and BTF.ext blobs inside, legacy map definitions, and raw bytes.  Whatever is
changed, ``pybpf.ObjectFile`` either parses the object or raises a pybpf error that names the object
(``<bytes>: ...``) -- never IndexError, struct.error, KeyError, RecursionError..."""
from __future__ import annotations

import struct
from collections import Counter

import pytest
from fuzzlib import fuzz_tool, only_pybpf_errors, prebuilt, small_objects
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.loader import ObjectFile

SMALL = small_objects()
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GROUPS = {
    "header": lambda f: f.startswith(("e_", "ei_")),
    "sections": lambda f: ".sh_" in f,
    "symbols": lambda f: f.startswith("sym"),
    "relocations": lambda f: "#" in f,
    "btf": lambda f: f.startswith(".BTF+"),
    "btf_ext": lambda f: f.startswith(".BTF.ext+"),
    "legacy_maps": lambda f: f.startswith("maps+"),
}
OBJECTS = {"legacy_maps": ["legacy_maps", "legacy_maps_ext", "perf_legacy"]}
TALLY: Counter[str] = Counter()  # inputs tried per group, printed at the end of the module


def _fields(name: str, group: str) -> list[tuple[str, int, str]]:
    lay = fuzz_tool().elf_layout(prebuilt(name))
    assert lay is not None, f"{name} is not an ELF64 object"
    return [f for f in lay.fields if GROUPS[group](f[0])]


VALUES = st.one_of(st.sampled_from(fuzz_tool().INTERESTING64), st.integers(0, 1 << 20), st.integers(0, (1 << 64) - 1))


def _mutated(data: st.DataObject, group: str) -> bytes:
    names = [n for n in OBJECTS.get(group, SMALL) if _fields(n, group)]
    name = data.draw(st.sampled_from(names), label="object")
    fields = _fields(name, group)
    buf = bytearray(prebuilt(name))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        what, off, fmt = data.draw(st.sampled_from(fields), label="field")
        value = data.draw(VALUES, label=what) & ((1 << (8 * struct.calcsize(fmt))) - 1)
        struct.pack_into("<" + fmt, buf, off, value)
    return bytes(buf)


@pytest.mark.parametrize("group", sorted(GROUPS))
@SETTINGS
@given(data=st.data())
def test_structure_mutations_raise_only_located_pybpf_errors(group: str, data: st.DataObject) -> None:
    blob = _mutated(data, group)
    TALLY[group] += 1
    only_pybpf_errors(lambda: ObjectFile(blob), located="<bytes>")


@SETTINGS
@given(name=st.sampled_from(SMALL), flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                   min_size=1, max_size=10), cut=st.integers(0, 1 << 20))
def test_byte_mutations_and_truncation(name: str, flips: list[tuple[int, int]], cut: int) -> None:
    buf = bytearray(prebuilt(name))
    for pos, val in flips:
        buf[pos % len(buf)] = val
    TALLY["bytes"] += 2
    only_pybpf_errors(lambda: ObjectFile(bytes(buf)), located="<bytes>")
    only_pybpf_errors(lambda: ObjectFile(bytes(buf[:cut % (len(buf) + 1)])), located="<bytes>")


@SETTINGS
@given(seed=st.integers(0, 1 << 32))
def test_the_fuzz_tool_mutator_on_every_small_object(seed: int) -> None:
    """The same structure-aware mutator the coverage-guided runs use (tools/fuzz.py), through the whole elf
    target: parse, link and encode every program, format as ``pybpf inspect``."""
    import random

    tool = fuzz_tool()
    rng = random.Random(seed)
    seeds = [prebuilt(n) for n in SMALL]
    blob = tool.Mutator("elf", rng)(rng.choice(seeds), seeds)
    TALLY["tool-mutator"] += 1
    only_pybpf_errors(lambda: tool.run_one("elf", blob))


@pytest.mark.parametrize("what, patch, message", [
    ("a PROGBITS section claiming 2^63 bytes", ("sh_size", 1 << 63, "xdp"), "runs past the end"),
    (".bss claiming 2^63 bytes", ("sh_size", 1 << 63, ".bss"), "claims 9223372036854775808 bytes"),
    ("section offset 2^64-1", ("sh_offset", (1 << 64) - 1, ".data"), "runs past the end"),
    ("symbol table entry size 0", ("sh_entsize", 0, ".symtab"), "section #16: ELFError: Expected entry size"),
    ("string table link out of range", ("sh_link", 4000, ".symtab"),
     "section #16: ELFParseError: Reading section 4000"),
    ("relocations for a missing section", ("sh_info", 0xFFFF, ".relxdp"), "#65535, which does not exist"),
])
def test_absurd_section_headers_say_what(what: str, patch: tuple[str, int, str], message: str) -> None:
    field, value, section = patch
    lay = fuzz_tool().elf_layout(prebuilt("globals"))
    assert lay is not None
    (_, off, fmt), = [f for f in lay.fields if f[0] == f"{section}.{field}"]
    buf = bytearray(prebuilt("globals"))
    struct.pack_into("<" + fmt, buf, off, value)
    err = only_pybpf_errors(lambda: ObjectFile(bytes(buf)), located="<bytes>")
    assert err is not None and message in str(err), f"{what}: {err}"


def test_zzz_figures() -> None:
    """Print how many mutated objects the tests above parsed (pytest -s shows it; tests/README.md keeps it)."""
    print(f"\nfuzz figures (ObjectFile): {sum(TALLY.values())} mutated objects: "
          + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
