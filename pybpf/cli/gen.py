"""``pybpf gen skeleton OBJ`` and ``pybpf gen types OBJ|BTF``: typed Python modules from an eBPF object."""
from __future__ import annotations

import argparse
import sys

from ..errors import BPFError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pybpf gen skeleton`` and ``pybpf gen types``."""
    p = sub.add_parser("gen", help="generate typed Python code from an eBPF object (skeletons, record types)")
    ps = p.add_subparsers(dest="gen_cmd", metavar="{skeleton,types}")
    s = ps.add_parser("skeleton", help="a self-contained typed skeleton module (the object embedded)",
                      description="Write a Python module with a typed class for the object: programs, maps, "
                                  "globals and record types.")
    s.add_argument("object", help="path of the .o file")
    s.add_argument("-o", "--output", help="write the module here (default: standard output)")
    s.add_argument("--name", help="the skeleton's class name (default: from the object's name)")
    _add_record(s)
    s.set_defaults(func=cmd_skeleton)
    t = ps.add_parser("types", help="record types alone, from an object or raw BTF (e.g. /sys/kernel/btf/vmlinux)")
    t.add_argument("source", help="an eBPF object or a raw BTF file")
    t.add_argument("--type", action="append", default=[], metavar="NAME", dest="types",
                   help="a struct, union, enum or typedef to emit (repeatable; default: what a skeleton types, "
                        "or every named type of raw BTF)")
    t.add_argument("-o", "--output", help="write the module here (default: standard output)")
    _add_record(t)
    t.set_defaults(func=cmd_types)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _add_record(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", action="append", default=[], metavar="MAP=TYPE",
                   help="the C type of a ring/perf buffer map's records (repeatable; inferred when unambiguous)")


def _records(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for item in args.record:
        name, sep, ctype = item.partition("=")
        if not sep or not name or not ctype:
            raise BPFError(f"--record {item!r}: expected MAP=TYPE, e.g. events=exec_event")
        out[name] = ctype
    return out


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    with open(output, "w") as f:
        f.write(text)


def cmd_skeleton(args: argparse.Namespace) -> int:
    """Generate a skeleton module."""
    from ..gen import generate_skeleton

    _write(generate_skeleton(args.object, args.name, _records(args)), args.output)
    return 0


def cmd_types(args: argparse.Namespace) -> int:
    """Generate a record types module."""
    from ..gen import generate_types

    _write(generate_types(args.source, args.types, _records(args)), args.output)
    return 0
