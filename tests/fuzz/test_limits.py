"""Absurd sizes and shapes are rejected quickly and without unbounded memory or recursion: each parse runs in
a child process whose address space is capped (RLIMIT_AS 1 GiB), so an input that made pybpf allocate by what
a header *claims* (not by what the file holds) would die with MemoryError there.  Only a pybpf error naming the
problem may come out.  No timing is asserted: the child's timeout only guards against a hang."""
from __future__ import annotations

import struct

import pytest
from fuzzlib import fuzz_tool, prebuilt, run_limited

from pybpf.btf import BTF, Array, Int, Member, Ptr, Struct, Typedef

HDR = 24
CHECKED: list[str] = []


def _btf_blob(type_words: bytes, strings: bytes = b"\0") -> bytes:
    """A raw little-endian BTF blob from type-section bytes and a string section."""
    return struct.pack("<HBBI4I", 0xEB9F, 1, 0, HDR, 0, len(type_words), len(type_words), len(strings)) \
        + type_words + strings


def _elf_with(section: str, field: str, value: int, name: str = "globals") -> bytes:
    lay = fuzz_tool().elf_layout(prebuilt(name))
    assert lay is not None
    (_, off, fmt), = [f for f in lay.fields if f[0] == f"{section}.{field}"]
    buf = bytearray(prebuilt(name))
    struct.pack_into("<" + fmt, buf, off, value)
    return bytes(buf)


def _expect(result: dict[str, object], error: str, *fragments: str) -> None:
    assert "escaped" not in result, f"a non-pybpf exception escaped: {result}"
    assert result.get("error") == error, result
    for frag in fragments:
        assert frag in str(result["message"]), result


ELF_CASES = [
    ("code section of 2^63 bytes", "xdp", "sh_size", 1 << 63, "ELFError", "runs past the end"),
    (".bss of 2^63 bytes", ".bss", "sh_size", 1 << 63, "ELFError", "claims 9223372036854775808 bytes"),
    (".bss of 2^32 bytes", ".bss", "sh_size", 1 << 32, "ELFError", "value_size is 32 bits"),
    (".data at offset 2^63", ".data", "sh_offset", 1 << 63, "ELFError", "runs past the end"),
    ("symbol table of 2^62 bytes", ".symtab", "sh_size", 1 << 62, "ELFError", ".symtab"),
    ("relocations of 2^40 bytes", ".relxdp", "sh_size", 1 << 40, "ELFError", ".relxdp"),
    (".BTF of 2^63 bytes", ".BTF", "sh_size", 1 << 63, "ELFError", "runs past the end"),
]


@pytest.mark.parametrize("what, section, field, value, error, message", ELF_CASES, ids=[c[0] for c in ELF_CASES])
def test_absurd_elf_sizes(what: str, section: str, field: str, value: int, error: str, message: str) -> None:
    result = run_limited("""
        from pybpf import ObjectFile
        result = outcome(lambda: ObjectFile(obj))
    """, obj=_elf_with(section, field, value))
    _expect(result, error, "<bytes>", message)
    CHECKED.append(what)


def test_huge_symbol_sizes_and_values() -> None:
    """Every symbol of an object claiming 2^63 bytes (or living at 2^63): refused, naming the symbol."""
    lay = fuzz_tool().elf_layout(prebuilt("globals"))
    assert lay is not None
    buf = bytearray(prebuilt("globals"))
    for what, off, fmt in lay.fields:
        if what.endswith((".st_size", ".st_value")):
            struct.pack_into("<Q", buf, off, 1 << 63)
    result = run_limited("""
        from pybpf import ObjectFile
        result = outcome(lambda: ObjectFile(obj))
    """, obj=bytes(buf))
    assert "escaped" not in result and result.get("error") in ("ELFError", "LinkError"), result
    CHECKED.append("symbols of 2^63 bytes")


def test_btf_with_a_million_types_parses_in_bounded_memory() -> None:
    """A million INT types (16 MB, made in the child): parsed lazily, types found by id and by name, well
    under 1 GiB."""
    result = run_limited("""
        import struct
        from pybpf.btf import BTF
        n = 1_000_000
        words = struct.pack("<4I", 1, 1 << 24, 4, 32) * (n - 1) + struct.pack("<4I", 3, 1 << 24, 8, 64)
        strings = b"\\0i\\0last\\0"
        blob = struct.pack("<HBBI4I", 0xEB9F, 1, 0, 24, 0, len(words), len(words), len(strings)) + words + strings
        def go():
            b = BTF.parse(blob)
            return (len(b), b[500_000].name, b[len(b) - 1].size, [t.id for t in b.find("last")])
        result = outcome(go)
    """)
    assert result.get("ok") == "(1000001, 'i', 8, [1000000])", result
    CHECKED.append("BTF with 1,000,000 types")


def test_btf_with_more_types_than_the_kernel_allows() -> None:
    n = (1 << 20) + 10  # BTF_MAX_TYPE is 0xfffff
    blob = _btf_blob(struct.pack("<3I", 0, 2 << 24, 0) * n)  # PTR to void
    result = run_limited("""
        from pybpf.btf import BTF
        result = outcome(lambda: BTF.parse(blob))
    """, blob=blob)
    _expect(result, "BTFError", "more than BTF_MAX_TYPE")
    CHECKED.append(f"BTF with {n} types (over BTF_MAX_TYPE)")


@pytest.mark.parametrize("what, words, message", [
    ("a struct claiming 2^24-1 members", struct.pack("<3I", 0, (4 << 24) | 0xFFFFFF, 8), "runs past the end"),
    ("a type section length of 4 GiB", b"", "type section"),
    ("an array of 2^32-1 arrays of 2^32-1 ints", struct.pack("<4I", 0, 1 << 24, 4, 32)
     + struct.pack("<6I", 0, 3 << 24, 0, 1, 1, 0xFFFFFFFF) + struct.pack("<6I", 0, 3 << 24, 0, 2, 1, 0xFFFFFFFF),
     "overflows 32 bits"),
])
def test_btf_claims(what: str, words: bytes, message: str) -> None:
    blob = _btf_blob(words)
    if not words:
        blob = blob[:12] + struct.pack("<I", 0xFFFFFFFF) + blob[16:]
    result = run_limited("""
        from pybpf.btf import BTF
        def go():
            b = BTF.parse(blob)
            for t in b:
                b.size_of(t)
        result = outcome(go)
    """, blob=blob)
    _expect(result, "BTFError", message)
    CHECKED.append(what)


def _typedef_loop(n: int) -> bytes:
    """typedef t0 -> t1 -> ... -> t(n-1) -> t0: a cycle n long."""
    b = BTF()
    for i in range(n):
        b.add(Typedef(f"t{i}", (i + 1) % n + 1))
    return b.to_bytes()


def _self_containing() -> bytes:
    """struct a { struct b x; }; struct b { struct a y; }; plus an array of itself and a pointer cycle."""
    b = BTF()
    b.add(Struct("a", 8, [Member("x", 2)]))
    b.add(Struct("b", 8, [Member("y", 1)]))
    b.add(Array(3, 0, 4))  # [3]: an array of itself
    b.add(Struct("node", 8, [Member("next", 5)]))  # [4]
    b.add(Ptr(4))  # [5]: a legal pointer cycle
    return b.to_bytes()


def _deep_chain(n: int) -> bytes:
    """int <- typedef <- typedef ... n deep (no cycle), then n nested structs."""
    b = BTF()
    prev = b.add(Int("int", 4, 1))
    for i in range(n):
        prev = b.add(Typedef(f"d{i}", prev))
    prev = b.add(Int("u", 4, 0))
    for i in range(n):
        prev = b.add(Struct(f"s{i}", 4, [Member("m", prev)]))
    return b.to_bytes()


@pytest.mark.parametrize("what, make", [
    ("a 2-typedef cycle", lambda: _typedef_loop(2)),
    ("a 100,000-typedef cycle", lambda: _typedef_loop(100_000)),
    ("structs containing each other, an array of itself", _self_containing),
    ("20,000-deep typedef chain and struct nesting", lambda: _deep_chain(20_000)),
])
def test_cycles_and_deep_chains_never_recurse_unbounded(what: str, make: object) -> None:
    """Every query a user or the loader makes on the types ends with a BTFError (cycle / too deep) or an
    answer -- never RecursionError, never a hang -- even with Python's recursion limit lowered."""
    blob = make()  # type: ignore[operator]
    result = run_limited("""
        import sys
        from pybpf.btf import BTF
        from pybpf.btf.cdump import format_c
        from pybpf.errors import BTFError
        sys.setrecursionlimit(400)
        def go():
            b = BTF.parse(blob)
            outcomes = {}
            for name, fn in (("validate", b.validate), ("c", lambda: format_c(b))):
                try:
                    fn()
                    outcomes[name] = "ok"
                except BTFError as e:
                    outcomes[name] = "BTFError"
            for t in [b[i] for i in (*range(1, 300), *range(len(b) - 300, len(b)))]:
                for q in (b.resolve, b.size_of, b.align_of):
                    try:
                        q(t)
                    except BTFError:
                        pass
            return outcomes
        result = outcome(go)
    """, blob=blob)
    assert "escaped" not in result, result
    assert "ok" in result or result.get("error") == "BTFError", result
    CHECKED.append(what)


def test_ext_claiming_billions_of_records() -> None:
    from pybpf.btf import BTFExt

    btf = BTF()
    btf.add(Int("int", 4, 1))
    raw_btf = btf.to_bytes()
    ext = struct.pack("<HBBI4I2I", 0xEB9F, 1, 0, 32, 0, 16, 16, 0, 0, 0)
    ext += struct.pack("<I", 0xFFFFFFF0) + struct.pack("<2I", 0, 0xFFFFFFFF) + b"\0" * 4  # record size, 4G recs
    assert BTFExt  # the child imports it
    result = run_limited("""
        from pybpf.btf import BTF, BTFExt
        result = outcome(lambda: BTFExt.parse(ext, BTF.parse(raw_btf)))
    """, ext=ext, raw_btf=raw_btf)
    _expect(result, "BTFError", "func_info")
    CHECKED.append("BTF.ext claiming 4 billion records")


def test_assembler_big_inputs() -> None:
    """A 50,000-line program and a number of 5,000 digits: answers, not hangs or crashes."""
    text = "r0 = 0\n" * 50_000 + "exit\nr1 = " + "9" * 5000 + "\n"
    result = run_limited("""
        from pybpf.asm import parse
        result = outcome(lambda: parse(text.decode()))
    """, text=text.encode())
    _expect(result, "AsmError", "line 50002")
    CHECKED.append("50,000-line assembler text with a 5,000-digit number")


def test_zzz_figures() -> None:
    """Print which absurd inputs were checked (pytest -s shows it)."""
    print(f"\nlimits checked under RLIMIT_AS 1 GiB ({len(CHECKED)}): " + "; ".join(CHECKED))
