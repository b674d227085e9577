"""Hypothesis-driven mutation of the BTF and BTF.ext blobs of the prebuilt objects: header fields, type
words (kinds, vlen, sizes, type ids, name offsets), record sizes and counts of BTF.ext.  ``BTF.parse`` and
``BTFExt.parse`` -- and everything done with the result: decoding every type, resolve/size/alignment,
validate, writing it back, the C dump, describing CO-RE records -- raise only BTFError (with a message), never a
Python-internal error, a RecursionError or a MemoryError."""
from __future__ import annotations

import struct
from collections import Counter
from functools import cache, partial

import pytest
from fuzzlib import PREBUILT, fuzz_tool, only_pybpf_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.btf import BTF, BTFExt

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TALLY: Counter[str] = Counter()


@cache
def blobs() -> dict[str, tuple[bytes, bytes]]:
    """(.BTF, .BTF.ext) of every prebuilt object with BTF of at most 16 KiB."""
    from elftools.elf.elffile import ELFFile

    out = {}
    for p in sorted(PREBUILT.glob("*.bpf.o")):
        with p.open("rb") as f:
            elf = ELFFile(f)
            btf, ext = elf.get_section_by_name(".BTF"), elf.get_section_by_name(".BTF.ext")
            if btf is not None and ext is not None and btf.data_size <= 16 << 10:
                out[p.name.split(".bpf.")[0]] = (btf.data(), ext.data())
    return out


VALUES = st.one_of(st.sampled_from(fuzz_tool().INTERESTING32), st.integers(0, 300),
                   st.integers(1, 31).map(lambda kind: kind << 24), st.integers(0, (1 << 32) - 1))


@SETTINGS
@given(data=st.data())
def test_type_section_mutations(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(blobs())), label="object")
    raw = bytearray(blobs()[name][0])
    fields = fuzz_tool().btf_fields(bytes(raw))
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        _, off, _ = data.draw(st.sampled_from(fields), label="word")
        struct.pack_into("<I", raw, off, data.draw(VALUES, label="value"))
    TALLY["btf"] += 1
    only_pybpf_errors(lambda: fuzz_tool().run_one("btf", bytes(raw)))
    only_pybpf_errors(lambda: BTF.parse(bytes(raw)).validate())


@SETTINGS
@given(data=st.data())
def test_btf_ext_mutations(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(blobs())), label="object")
    btf_raw, ext_raw = blobs()[name]
    ext = bytearray(ext_raw)
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        pos = data.draw(st.integers(0, len(ext) // 4 - 1), label="word") * 4
        struct.pack_into("<I", ext, pos, data.draw(VALUES, label="value"))
    cut = data.draw(st.integers(0, len(ext)), label="cut")
    btf = BTF.parse(btf_raw)
    TALLY["btf.ext"] += 2
    for blob in (bytes(ext), bytes(ext[:cut])):
        only_pybpf_errors(partial(fuzz_tool().run_one, "btfext", fuzz_tool().join_btfext(btf_raw, blob)))
        only_pybpf_errors(partial(BTFExt.parse, blob, btf))


@SETTINGS
@given(seed=st.integers(0, 1 << 32), target=st.sampled_from(["btf", "btfext"]))
def test_the_fuzz_tool_mutator(seed: int, target: str) -> None:
    import random

    tool = fuzz_tool()
    rng = random.Random(seed)
    seeds = [d for _, d in tool.load_corpus([tool.corpus_dir(target)])]
    blob = tool.Mutator(target, rng)(rng.choice(seeds), seeds)
    TALLY[f"tool-{target}"] += 1
    only_pybpf_errors(lambda: tool.run_one(target, blob))


@pytest.mark.parametrize("offset, value, message", [
    (4, 3, "header length 3"),
    (12, 0xFFFFFFFF, "type section"),
    (20, 0xFFFFFFFF, "string section"),
    (24 + 4, (0x1F << 24), "unknown kind 31"),
    (24 + 4, (4 << 24) | 0xFFFF, "vlen 65535 runs past the end"),
    (24, 0xFFFFFFF0, "string offset 4294967280"),
])
def test_specific_corruptions_name_the_place(offset: int, value: int, message: str) -> None:
    raw = bytearray(blobs()["globals"][0])
    struct.pack_into("<I", raw, offset, value)
    err = only_pybpf_errors(lambda: [t for t in BTF.parse(bytes(raw))])
    assert err is not None and message in str(err)


def test_zzz_figures() -> None:
    """Print how many mutated blobs were parsed (pytest -s shows it)."""
    print(f"\nfuzz figures (BTF): {sum(TALLY.values())} mutated blobs: "
          + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
