"""Start-up cost: what the load and tool paths import.  A fresh interpreter imports the modules a command or a
tool needs and reports which heavy modules came along; each one listed here is only imported by the feature
that uses it."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path


def _imported(code: str, modules: tuple[str, ...], cache: Path | None = None) -> list[str]:
    """Which of ``modules`` running ``code`` imports in a fresh interpreter (not counting what the interpreter's
    start-up imported: an editable install's import hook, say).  With ``cache`` (an XDG_CACHE_HOME), ``code``
    runs once before, so what it caches is there: the warm start every start after the first one gets."""
    probe = (f"import sys\nbefore = set(sys.modules)\n{code}\n"
             f"print(sorted(m for m in {modules!r} if m in sys.modules and m not in before))")
    env = dict(os.environ, XDG_CACHE_HOME=str(cache)) if cache is not None else None
    for _ in range(2 if cache is not None else 1):
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                             env=env).stdout
    return ast.literal_eval(out)


def test_readers_do_not_import_asyncio() -> None:
    assert _imported("import pybpf.maps.ringbuf, pybpf.maps.perfbuf, pybpf.tools.runner", ("asyncio",)) == []


def test_cli_command_table_matches_the_modules() -> None:
    import argparse

    from pybpf.cli import COMMANDS, build_parser

    def choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(sub.choices)

    full = choices(build_parser())
    assert sorted(full) == sorted(COMMANDS)
    for command, module in COMMANDS.items():
        alone = choices(build_parser(command))
        assert sorted(alone) == sorted(c for c, m in COMMANDS.items() if m == module)
        assert alone[command].format_help() == full[command].format_help()


def test_a_command_imports_only_its_own_module() -> None:
    code = ("from pybpf.cli import build_parser, _command\n"
            "build_parser(_command(['--debug', 'load', 'x.o', '--pin', '/sys/fs/bpf/x']))")
    others = tuple(f"pybpf.cli.{m}" for m in ("asm", "btf", "feature", "gen", "inspect", "link", "map", "prog", "run",
                                              "trace_pipe"))
    assert _imported(code, others + ("pybpf.cli.load",)) == ["pybpf.cli.load"]


def test_maps_pins_and_namespaces_do_not_import_ctypes_or_ipaddress() -> None:
    assert _imported("import pybpf.maps.map, pybpf.sys.fs, pybpf.sys.netns", ("ctypes", "ipaddress")) == []


def test_reading_an_object_does_not_import_the_text_assembler() -> None:
    code = "from pybpf.loader import ObjectFile\nfrom pybpf.prebuilt import path\nObjectFile(path('hello'))"
    assert _imported(code, ("pybpf.asm.text", "pybpf.asm.elf")) == []


def test_reading_an_object_again_imports_neither_pyelftools_nor_dataclasses(tmp_path: Path) -> None:
    code = ("from pybpf.loader import ObjectFile\nfrom pybpf.prebuilt import path\nimport pybpf.loader.object, "
            "pybpf.loader.linker, pybpf.loader.externs, pybpf.link.auto, pybpf.link.perf\n"
            "ObjectFile(path('execsnoop'))")
    assert _imported(code, ("elftools", "dataclasses", "inspect"), cache=tmp_path) == []


def test_commands_import_json_only_to_print_it() -> None:
    assert _imported("from pybpf.cli import build_parser\nbuild_parser('load')", ("json",)) == []
