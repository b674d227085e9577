"""The ``pybpf`` command.  Each command group lives in its own module here and provides
``register(subparsers)``, which adds its sub-parser(s) and sets ``func`` to a handler ``(args) -> int``.
Running a command imports and registers only its own module (the full parser is built for ``--help`` and for
what is not a command); modules import heavy dependencies inside their handlers, so start-up stays fast."""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import BPFError

#: command -> the module registering it (tests check this against what the modules register)
COMMANDS = {"asm": "asm", "disasm": "asm", "btf": "btf", "feature": "feature", "gen": "gen", "inspect": "inspect",
            "link": "link", "load": "load", "map": "map", "prog": "prog", "run": "run", "trace-pipe": "trace_pipe"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every command module's sub-commands registered -- or, given one of
    :data:`COMMANDS`, only the sub-commands of its module (all that running it needs)."""
    parser = argparse.ArgumentParser(
        prog="pybpf", description="Inspect, assemble, load and attach eBPF programs; list and dump maps.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else sorted(set(COMMANDS.values()))
    for mod in modules:
        importlib.import_module(f"{__name__}.{mod}").register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` runs: its first argument that is not ``--debug`` (None if that is an option)."""
    first = next((a for a in argv if a != "--debug"), None)
    return None if first is None or first.startswith("-") else first


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pybpf`` console script: run one command, return its exit status."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BPFError as e:
        if args.debug:
            raise
        print(f"pybpf: error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"pybpf: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
