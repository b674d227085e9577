"""``pybpf load OBJ --pin DIR``: load every program of an object and pin each as DIR/<name>, like
``bpftool prog loadall``."""
from __future__ import annotations

import argparse


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _value(text: str) -> int | str:
    try:
        return int(text, 0)
    except ValueError:
        return text


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``load`` command."""
    p = sub.add_parser("load", help="load an eBPF object and pin its programs",
                       description="Load every program of an eBPF object (maps created, global data set) and pin "
                                   "each program as DIR/<program name> in bpffs.")
    p.add_argument("object", help="path of the .o file")
    p.add_argument("--pin", metavar="DIR", required=True, help="bpffs directory to pin the programs in")
    p.add_argument("--set", metavar="VAR=VALUE", type=_assignment, action="append", default=[],
                   help="set a global variable (e.g. a const volatile) before load; repeatable")
    p.add_argument("--program", metavar="NAME", action="append",
                   help="load only this program (repeatable); default: every autoloaded program")
    p.add_argument("--pin-maps", metavar="DIR", help="also pin every map as DIR/<map name>")
    p.add_argument("--pin-root", metavar="DIR", default="/sys/fs/bpf",
                   help="where maps with pinning=LIBBPF_PIN_BY_NAME live (default /sys/fs/bpf)")
    p.add_argument("--log-level", type=int, default=0, help="verifier log level (printed for each program)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, pin, report, and close (the pins keep the programs loaded)."""
    import os

    from ..loader import load
    from ..sys.fs import ensure_bpffs, is_bpffs

    pin_dir = os.path.abspath(args.pin)
    if not is_bpffs(os.path.dirname(pin_dir)) and pin_dir.startswith("/sys/fs/bpf"):
        ensure_bpffs()
    globals_ = {k: _value(v) for k, v in args.set}
    with load(args.object, globals=globals_, programs=args.program, pin_root=args.pin_root,
              log_level=args.log_level) as obj:
        pinned = obj.pin_programs(pin_dir)
        for name, path in pinned.items():
            print(f"{name}: {path}")
            if args.log_level and obj.programs[name].verifier_log:
                print(obj.programs[name].verifier_log.rstrip())
        if args.pin_maps:
            os.makedirs(args.pin_maps, exist_ok=True)
            for name, m in obj.maps.items():
                path = os.path.join(args.pin_maps, name)
                m.pin(path)
                print(f"map {name}: {path}")
    return 0
