"""Every ``pybpf`` sub-command and every ready-made tool prints a help text (no root needed)."""
from __future__ import annotations

import argparse
import importlib

import pytest

from pybpf.cli import build_parser, main

TOOLS = ("execsnoop", "opensnoop", "tcptracer", "biolatency", "xdp_drop")


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*path, name))
    return out


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_command_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pybpf" + "".join(" " + c for c in command))


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_help(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"pybpf.tools.{tool}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pybpf-{tool.replace('_', '-')}") and "examples:" in out
    assert module.__doc__ and module.main.__doc__
