"""A short smoke run of the coverage-guided fuzzer (tools/fuzz.py) in the normal suite: the committed corpus
replays without findings, the built-in coverage-guided loop runs a fixed, seeded number of mutated inputs per
target, and -- where atheris is installed -- atheris itself runs a few thousand inputs.  Figures are printed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fuzzlib import ROOT, fuzz_tool

RUNS = 120  # mutated inputs per target with line-coverage tracing: a few seconds in all


@pytest.mark.parametrize("target", fuzz_tool().TARGETS)
def test_corpus_replays_without_findings(target: str) -> None:
    tool = fuzz_tool()
    result = tool.replay(target, [tool.corpus_dir(target)])
    print(f"\n{result.line()}")
    assert result.runs >= 20, f"the {target} corpus is nearly empty: run tools/fuzz.py seed"
    assert not result.findings, "\n".join(f"{k}: {v}" for k, v in result.findings.items())


@pytest.mark.parametrize("target", fuzz_tool().TARGETS)
def test_builtin_coverage_guided_loop(target: str, tmp_path: Path) -> None:
    tool = fuzz_tool()
    seeds = list(dict.fromkeys(d for _, d in tool.load_corpus([tool.corpus_dir(target)])))
    result = tool.builtin_fuzz(target, seeds, RUNS + len(seeds), 0, seed=7, crashes=tmp_path / "crashes")
    print(f"\n{result.line()}")
    assert result.runs == RUNS + len(seeds) and result.covered > 300
    assert not result.findings, "\n".join(f"{k}: {v}" for k, v in result.findings.items())


def test_atheris_smoke(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris): the built-in loop "
                                          "stands in for it")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz.py"), "insn", "--engine", "atheris",
                        "--runs", "3000", "--corpus-out", str(tmp_path / "out"), "--extra-corpus",
                        str(fuzz_tool().corpus_dir("insn")), "--crashes", str(tmp_path / "crashes")],
                       capture_output=True, text=True, timeout=300, check=False)
    done = [ln for ln in r.stderr.splitlines() if "DONE" in ln or "Done" in ln]
    print("\natheris:", *done[-2:])
    assert r.returncode == 0, r.stderr[-3000:]
    assert any("Done 3000 runs" in ln for ln in done), r.stderr[-2000:]
