"""The ``pybpf`` command.  Each command group lives in its own module here and provides
``register(subparsers)``, which adds its sub-parser(s) and sets ``func`` to a handler ``(args) -> int``.
Modules import heavy dependencies inside their handlers, so ``pybpf --help`` stays fast."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import BPFError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module's sub-commands registered."""
    parser = argparse.ArgumentParser(
        prog="pybpf", description="Inspect, assemble, load and attach eBPF programs; list and dump maps.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{__name__}.{mod}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pybpf`` console script: run one command, return its exit status."""
    parser = build_parser()
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
