"""``pybpf prog``: list, show, dump and pin loaded programs (bpftool's grammar)."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._common import SourceLines, add_json, hexbytes, parse_selector, print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pybpf prog ...``."""
    p = sub.add_parser("prog", help="list, show, dump and pin loaded programs",
                       description="PROG := id ID | pinned FILE | name NAME | tag TAG")
    ps = p.add_subparsers(dest="prog_cmd", metavar="{list,show,dump,pin}")
    for name in ("list", "show"):
        q = ps.add_parser(name, help="show loaded programs (all, or the one selected)")
        q.add_argument("prog", nargs="*", help="PROG (default: every program)")
        add_json(q)
        q.set_defaults(func=cmd_show)
    q = ps.add_parser("dump", help="dump a program's instructions as the kernel holds them",
                      description="Dump the translated (xlated) or JIT-compiled instructions of a program.  When "
                                  "the kernel has line info for the program (it was loaded with BTF), each source "
                                  "line is printed as '; <source text>' above the first instruction compiled from "
                                  "it, as 'bpftool prog dump xlated' does; 'linum' (or --linum) adds "
                                  "[file:line:col] to each.")
    q.add_argument("what", choices=("xlated", "jited"))
    q.add_argument("prog", nargs="+", help="PROG [linum]")
    q.add_argument("--linum", action="store_true", help="xlated: show [file:line:col] on every source line")
    q.add_argument("--no-source", action="store_true", help="xlated: leave out the source line annotations")
    add_json(q)
    q.set_defaults(func=cmd_dump)
    q = ps.add_parser("pin", help="pin a program in bpffs")
    q.add_argument("prog", nargs=2, metavar="PROG", help="id ID | pinned FILE | name NAME | tag TAG (two words)")
    q.add_argument("path", help="path inside a bpffs mount")
    q.set_defaults(func=cmd_pin)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def select_programs(words: list[str]) -> list:
    """Open the programs a PROG selector names (every loaded program when ``words`` is empty)."""
    from ..program import Program
    from ..sys import syscall

    if not words:
        ids = list(syscall.object_ids("prog"))
        return [p for p in (_open_quiet(Program.from_id, i) for i in ids) if p is not None]
    how, what = parse_selector(words, "prog")
    if how == "id":
        return [Program.from_id(int(what, 0))]
    if how == "pinned":
        return [Program.from_pin(what)]
    out = []
    for i in list(syscall.object_ids("prog")):
        p = _open_quiet(Program.from_id, i)
        if p is None:
            continue
        info = p.info()
        if (how == "name" and info.name == what) or (how == "tag" and info.tag == what.replace(":", "").lower()):
            out.append(p)
        else:
            p.close()
    if not out:
        from ..errors import BPFError

        raise BPFError(f"no loaded program with {how} {what!r}")
    return out


def _open_quiet(opener, obj_id: int):  # type: ignore[no-untyped-def]
    """Open by id, or None when the object vanished meanwhile (ids race with other users of the kernel)."""
    from ..errors import NotFound

    try:
        return opener(obj_id)
    except NotFound:
        return None


def _boot_to_wall(ns: int) -> str:
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(boot + ns / 1e9))


def cmd_show(args: argparse.Namespace) -> int:
    """Print the selected programs like ``bpftool prog show``."""
    rows = []
    for p in select_programs(args.prog):
        with p:
            rows.append(p.info())
    if args.json:
        print_json([dict(r._asdict(), type=r.type_name) for r in rows])
        return 0
    for r in rows:
        print(f"{r.id}: {r.type_name}  name {r.name}  tag {r.tag}")
        line = f"\tloaded_at {_boot_to_wall(r.load_time_ns)}  xlated {r.xlated_len}B  jited {r.jited_len}B"
        if r.map_ids:
            line += "  map_ids " + ",".join(map(str, r.map_ids))
        if r.btf_id:
            line += f"  btf_id {r.btf_id}"
        print(line)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    """Print a program's translated (or JIT-compiled) instructions."""
    words, linum = list(args.prog), args.linum
    if len(words) > 2 and words[-1] == "linum":  # bpftool's spelling: prog dump xlated id 5 linum
        words, linum = words[:-1], True
    for p in select_programs(words):
        with p:
            if args.what == "jited":
                code = p.jited()
                if args.json:
                    print_json({"id": p.info().id, "jited": code})
                else:
                    for off in range(0, len(code), 16):
                        print(f"{off:6x}:  {hexbytes(code[off:off + 16])}")
                continue
            from ..asm import decode, format_instruction

            insns = decode(p.xlated())
            for ins in insns:
                if ins.is_pseudo_call:  # the kernel keeps the call's pc-relative target in off, the callee's
                    ins.imm, ins.off = ins.off, 0  # subprogram number in imm (bpftool shows "call pc+off")
            lines = [format_instruction(i, helpers=True) for i in insns]
            source = {} if args.no_source else _line_info(p)
            if args.json:
                out: dict[str, object] = {"id": p.info().id, "insns": lines}
                if source:
                    out["lines"] = [{"insn": slot, "file": ln.file, "line": ln.line, "col": ln.col, "text": ln.text}
                                    for slot, ln in sorted(source.items())]
                print_json(out)
            else:
                notes = SourceLines(source, linum)
                for slot, text in zip(insns.offsets(), lines):
                    note = notes.before(slot)
                    if note is not None:
                        print(note)
                    print(f"{slot:5d}: {text}")
    return 0


def _line_info(prog: Any) -> dict[int, Any]:
    """The program's line info ({} with a note on stderr when its BTF cannot be read: the dump goes on)."""
    from ..errors import BPFError

    try:
        return prog.line_info()  # type: ignore[no-any-return]
    except BPFError as e:
        print(f"pybpf: program {prog.name or '?'}: no source lines: {e}", file=sys.stderr)
        return {}


def cmd_pin(args: argparse.Namespace) -> int:
    """Pin the selected program."""
    progs = select_programs(list(args.prog))
    if len(progs) != 1:
        from ..errors import BPFError

        raise BPFError(f"{len(progs)} programs match; pin needs exactly one (select by id)")
    with progs[0] as p:
        p.pin(args.path)
    return 0
