"""``pybpf run OBJ``: load an object, attach every program from its SEC() name, stream what it reports (ring
buffer and perf buffer records, decoded from BTF when the record type is known, else hex; ``bpf_printk``
lines) until Ctrl-C, then detach and close everything."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BPFError
from ._common import add_json
from .load import _assignment, _value

if TYPE_CHECKING:
    from ..maps.codec import Codec
    from ..tools.runner import Session

_EXAMPLES = """examples:
    pybpf run prog.bpf.o
    pybpf run execsnoop --set ignore_failed=0           # a prebuilt object, a .rodata knob set before load
    pybpf run xdp_drop --attach xdp_drop=eth1 --set drop_proto=17
    pybpf run tcptracer --record events=tcp_event --json  # name the record type; JSON lines
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` command."""
    p = sub.add_parser("run", help="load and attach an object, print its events until Ctrl-C",
                       description="Load an eBPF object, attach each program as its section says, and print ring "
                                   "buffer / perf buffer records and the object's bpf_printk lines until Ctrl-C; "
                                   "then detach everything.  OBJ is a path or a prebuilt object's name.",
                       epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("object", metavar="OBJ", help="path of the .o file, or a prebuilt name (execsnoop, hello...)")
    p.add_argument("--set", metavar="NAME=VALUE", type=_assignment, action="append", default=[],
                   help="set a global variable (a const volatile knob) before load; repeatable")
    p.add_argument("--program", metavar="NAME", action="append",
                   help="load and attach only this program (repeatable); default: every autoloaded program")
    p.add_argument("--attach", metavar="PROG=TARGET", type=_assignment, action="append", default=[],
                   help="attach PROG to TARGET (an interface for xdp/tc, a cgroup, another tracepoint...)")
    p.add_argument("--record", metavar="MAP=TYPE", type=_assignment, action="append", default=[],
                   help="decode the records of ring/perf buffer MAP as C type TYPE of the object's BTF (default: "
                        "inferred from the output calls' record size, as pybpf gen does)")
    printk = p.add_mutually_exclusive_group()
    printk.add_argument("--no-printk", action="store_true", help="do not read bpf_printk output (trace_pipe)")
    printk.add_argument("--all-printk", action="store_true",
                        help="print every bpf_printk line, not only those matching this object's format strings")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    add_json(p)
    p.set_defaults(func=run)


class RecordPrinter:
    """Prints the records of one ring/perf buffer map: decoded with ``codec`` (the record's BTF type), or as
    hex without one (or for a record too short for it)."""

    def __init__(self, map_name: str, codec: Codec | None, json: bool):
        self.map_name, self.codec, self.json = map_name, codec, json

    def __call__(self, record: Any) -> None:
        codec = self.codec
        value = codec.unpack_from(record, 0) if codec is not None and len(record) >= codec.size else None
        if self.json:
            from ._common import _jsonable

            data = _jsonable(value) if value is not None else bytes(record).hex()
            emit_json({"kind": "record", "map": self.map_name, "data": data})
        else:
            print(f"{self.map_name}: {value if value is not None else bytes(record).hex()}", flush=True)


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON line."""
    import json

    print(json.dumps(obj), flush=True)


def _describe_links(session: Session) -> list[dict[str, Any]]:
    out = []
    for name, link in session.links.items():
        info = link.info()
        prog = session.obj.programs.get(name)  # else a struct_ops map, registered as a whole
        entry = {"program": name, "prog_id": prog.info().id} if prog else {"struct_ops": name, "program": None}
        out.append({**entry, "link_id": info.id, "kind": link.kind, "target": link.target, "mechanism": link.mechanism})
    return out


def _announce(s: Session, json: bool) -> None:
    """Say what is attached (the programs' and links' ids in JSON, for checking nothing is left later)."""
    links = _describe_links(s)
    if json:
        emit_json({"kind": "attached", "object": s.obj.name, "links": links})
    else:
        what = ", ".join(f"{d['program'] or d['struct_ops']} ({' '.join(filter(None, (d['kind'], d['target'])))})"
                         for d in links)
        print(f"pybpf: {s.obj.name}: attached {what or 'nothing'}; Ctrl-C to stop", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Load, attach, stream until Ctrl-C or ``--duration``, detach."""
    from ..gen.skeleton import ring_records
    from ..maps.btfcodec import btf_codec
    from ..sys import abi
    from ..tools.runner import Session

    try:
        session = Session(args.object, globals={k: _value(v) for k, v in args.set}, programs=args.program,
                          targets=dict(args.attach))
    except ValueError as e:
        if isinstance(e, BPFError):  # a bad object (ParseError) or knob
            raise
        raise ValueError(f"{e} (with pybpf run: --attach PROG=TARGET)") from None
    with session as s:
        for name, record in ring_records(s.obj.spec, dict(args.record)).items():
            codec = btf_codec(s.btf, record.type_id) if record.type_id else None
            if codec is None and not args.json:
                print(f"pybpf: {name}: records printed as hex: {record.why}", file=sys.stderr)
            show = RecordPrinter(name, codec, args.json)
            if s.obj.maps[name].type == abi.BPF_MAP_TYPE_RINGBUF:
                s.ring(name, show)
            else:
                s.perf(name, show, lost=_lost(name, args.json))
        if not args.no_printk:
            s.printk(_printk(args.json), only_own=not args.all_printk)
        s.run(ready=lambda: _announce(s, args.json), duration=args.duration)
    if args.json:
        emit_json({"kind": "detached", "object": s.obj.name})
    else:
        print(f"pybpf: {s.obj.name}: detached", file=sys.stderr, flush=True)
    return 0


def _lost(map_name: str, json: bool) -> Callable[[int, int], None]:
    def lost(cpu: int, count: int) -> None:
        if json:
            emit_json({"kind": "lost", "map": map_name, "cpu": cpu, "count": count})
        else:
            print(f"{map_name}: lost {count} records on CPU {cpu}", flush=True)
    return lost


def _printk(json: bool) -> Callable[[Any], None]:
    def line(ln: Any) -> None:
        if json:
            emit_json({"kind": "printk", "task": ln.task, "pid": ln.pid, "cpu": ln.cpu, "timestamp": ln.timestamp,
                       "message": ln.message})
        else:
            print(f"printk: {ln.task}-{ln.pid}: {ln.message}", flush=True)
    return line
