"""Hypothesis-driven mutation of assembler text (disassembled prebuilt programs with tokens swapped, lines
inserted, cut or duplicated) and of instruction bytes.  ``pybpf.asm.parse``/``parse_assembly``/``assemble``
raise only AsmError (with the line number of a text error) or LinkError; ``decode``/``disassemble`` only
AsmError; an object written from any text that assembles reads back with ``ObjectFile``."""
from __future__ import annotations

from collections import Counter
from functools import cache

from fuzzlib import fuzz_tool, only_pybpf_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.asm import decode, disassemble, parse
from pybpf.errors import AsmError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TALLY: Counter[str] = Counter()


@cache
def texts() -> list[str]:
    """The assembler corpus (disassembled prebuilt programs, a file with directives, what atheris kept)."""
    tool = fuzz_tool()
    return [d.decode("utf-8", "replace") for _, d in tool.load_corpus([tool.corpus_dir("asm")])]


TOKENS = st.sampled_from(fuzz_tool()._ASM_TOKENS) | st.text(max_size=12)


@SETTINGS
@given(data=st.data())
def test_mutated_text(data: st.DataObject) -> None:
    lines = data.draw(st.sampled_from(texts()), label="text").split("\n")
    for _ in range(data.draw(st.integers(1, 5), label="changes")):
        j = data.draw(st.integers(0, len(lines) - 1), label="line")
        how = data.draw(st.sampled_from(["token", "insert", "cut", "delete", "dup"]), label="how")
        if how == "token":
            toks = lines[j].split(" ")
            toks[data.draw(st.integers(0, len(toks) - 1))] = data.draw(TOKENS)
            lines[j] = " ".join(toks)
        elif how == "insert":
            lines.insert(j, " ".join(data.draw(st.lists(TOKENS, min_size=1, max_size=6))))
        elif how == "cut":
            lines[j] = lines[j][:data.draw(st.integers(0, len(lines[j])))]
        elif how == "delete" and len(lines) > 1:
            del lines[j]
        else:
            lines.insert(j, lines[data.draw(st.integers(0, len(lines) - 1))])
    text = "\n".join(lines)
    TALLY["text"] += 1
    err = only_pybpf_errors(lambda: parse(text))
    if isinstance(err, AsmError) and "several sections" not in str(err):
        assert err.line is not None, f"a text error without its line: {err}"
    only_pybpf_errors(lambda: fuzz_tool().run_one("asm", text.encode("utf-8", "surrogatepass")))


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_random_instruction_bytes(raw: bytes) -> None:
    TALLY["bytes"] += 1
    only_pybpf_errors(lambda: decode(raw))
    only_pybpf_errors(lambda: disassemble(raw))
    only_pybpf_errors(lambda: fuzz_tool().run_one("insn", raw))


@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    TALLY["arbitrary"] += 1
    only_pybpf_errors(lambda: fuzz_tool().run_one("asm", text.encode("utf-8", "surrogatepass")))


def test_zzz_figures() -> None:
    """Print how many inputs were assembled (pytest -s shows it)."""
    print(f"\nfuzz figures (assembler): {sum(TALLY.values())} inputs: "
          + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
