"""``pybpf inspect OBJ [--json]``: what ObjectFile finds in an object (programs, maps, globals, relocations)."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` command."""
    p = sub.add_parser("inspect", help="show the programs, maps, globals and relocations of an eBPF object",
                       description="Parse an eBPF ELF object (no kernel needed) and print what pybpf found.")
    p.add_argument("object", help="path of the .o file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-relocations", action="store_true", help="leave relocations out of the text report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the object's spec."""
    from ..loader import ObjectFile
    from ..loader.format import format_spec

    spec = ObjectFile(args.object)
    if args.json:
        print(json.dumps(spec.to_dict(), indent=2))
    else:
        print(format_spec(spec, relocations=not args.no_relocations))
    return 0
