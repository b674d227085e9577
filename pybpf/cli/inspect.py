"""``pybpf inspect OBJ [--json] [--btf FILE]``: what ObjectFile finds in an object (programs, maps, globals,
relocations, CO-RE relocations) and, given a target BTF, what each CO-RE relocation resolves to there.
``pybpf inspect --usdt BINARY [--json]``: the USDT probes of an executable or library."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..btf import BTF
    from ..loader import ObjectSpec

_EPILOG = """with --btf, each CO-RE relocation line ends in what it resolves to against that BTF:
    => 1264                   the value the instruction gets (offset, size, existence, enum value, type id)
    => 1272 (compiled 1264)   ... differing from what the compiler wrote
    => poisoned: REASON       libbpf poisons the instruction: the program fails to verify if it reaches it
    => fails: REASON          the object cannot be loaded against this BTF (libbpf fails the same way)

examples:
    pybpf inspect prog.bpf.o --btf /sys/kernel/btf/vmlinux       # this kernel
    pybpf inspect prog.bpf.o --btf vmlinux-6.1.btf --json         # another kernel's BTF (raw, or an ELF's .BTF)
    pybpf inspect --usdt /usr/bin/python3.11                      # a binary's USDT probes (SEC("usdt/...") targets)
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` command."""
    p = sub.add_parser("inspect", help="show the programs, maps, globals and relocations of an eBPF object",
                       description="Parse an eBPF ELF object (no kernel needed) and print what pybpf found.  "
                                   "--btf resolves the CO-RE relocations against a target BTF, as the loader "
                                   "would against that kernel: check an object against another kernel's BTF "
                                   "without running it.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("object", help="path of the .o file (with --usdt: an executable or shared library)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-relocations", action="store_true", help="leave relocations out of the text report")
    p.add_argument("--btf", metavar="FILE",
                   help="resolve CO-RE relocations against this BTF: a raw BTF file (/sys/kernel/btf/vmlinux, "
                        "another kernel's extracted BTF), an ELF file with a .BTF section (a vmlinux), or "
                        "'vmlinux' for the running kernel's")
    p.add_argument("--usdt", action="store_true",
                   help="list the USDT probes (.note.stapsdt) of OBJECT, an executable or library, instead: "
                        "provider:name, file offset, semaphore file offset, arguments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the object's spec (with CO-RE resolutions against ``--btf``), or a binary's USDT probes."""
    from ..loader import ObjectFile

    if args.usdt:
        return _usdt(args.object, args.json)
    from ..loader.format import format_spec

    spec = ObjectFile(args.object)
    resolved = resolve_core(spec, _targets(args.btf)) if args.btf else None
    if args.json:
        d = spec.to_dict()
        if resolved is not None:
            for p in (*d["programs"], *d["functions"]):
                if p["name"] in resolved:
                    p["core_resolved"] = resolved[p["name"]]
            d["core_target"] = {"btf": args.btf, **_summary(resolved)}
        print(json.dumps(d, indent=2))
        return 0
    core = {name: [_line(r) for r in rows] for name, rows in resolved.items()} if resolved is not None else None
    print(format_spec(spec, relocations=not args.no_relocations, core=core))
    if resolved is not None:
        s = _summary(resolved)
        print(f"CO-RE against {args.btf}: {s['relocations']} relocations, {s['resolved']} resolved "
              f"({s['changed']} changed), {s['poisoned']} poisoned, {s['failed']} failed")
    return 0


def _usdt(path: str, as_json: bool) -> int:
    from ..link.usdt import read_notes

    notes = read_notes(path)
    if as_json:
        print(json.dumps([{"provider": n.provider, "name": n.name, "address": n.address, "offset": n.offset,
                           "semaphore": n.semaphore, "semaphore_offset": n.semaphore_offset, "args": n.args}
                          for n in notes], indent=2))
        return 0
    if not notes:
        print(f"{path}: no USDT probes (.note.stapsdt)")
    for n in notes:
        sema = f"semaphore {n.semaphore_offset:#x}" if n.semaphore else "no semaphore"
        print(f"{n.provider}:{n.name}  offset {n.offset:#x}  {sema}  args {n.args or '-'}")
    return 0


def _targets(path: str) -> list[BTF]:
    """The BTF(s) to resolve against: the file's BTF, after its base when it is split BTF (a module's)."""
    from .btf import load_source

    btf = load_source(path)
    return [btf.base, btf] if btf.base is not None else [btf]


def resolve_core(spec: ObjectSpec, targets: list[BTF]) -> dict[str, list[dict[str, Any]]]:
    """Program/function name -> one record per CO-RE relocation (in instruction order), resolved against
    ``targets`` with one :class:`pybpf.btf.core.Resolver` for the whole object, as the loader does:
    :func:`pybpf.btf.core.describe`'s fields plus ``status`` (``ok``, ``poisoned`` or ``failed``) and, for a
    relocation that cannot be resolved, ``error``."""
    from ..btf.core import Resolver, describe
    from ..errors import LinkError

    out: dict[str, list[dict[str, Any]]] = {}
    if spec.btf is None:
        return out
    resolver = Resolver(spec.btf, targets)
    for prog in (*spec.programs.values(), *spec.functions.values()):
        rows = []
        for ins in prog.instructions:
            if ins.core is None:
                continue
            try:
                result = resolver.resolve(ins.core)
            except LinkError as e:
                row = describe(spec.btf, ins.core)
                row.update(status="failed", error=str(e))
            else:
                row = describe(spec.btf, ins.core, result)
                row["status"] = "poisoned" if result.poison else "ok"
                if result.fail_memsz_adjust:
                    row["memsz_poisoned"] = True
            rows.append(row)
        if rows:
            out[prog.name] = rows
    return out


def _line(row: dict[str, Any]) -> str:
    """``byte_off [5] struct task_struct.pid (0:92 @ offset 1264) => 1272 (compiled 1264)``."""
    head = f"{row['kind']} {row['local']} => "
    if row["status"] == "failed":
        return head + f"fails: {row['error']}"
    if row["status"] == "poisoned":
        reason = (row["reason"] or "").split(": <", 1)[0]  # the reason repeats the local spec after ': <'
        return head + f"poisoned: {reason}"
    text = head + str(row["new"]) + (f" (compiled {row['orig']})" if row["new"] != row["orig"] else "")
    if row.get("memsz_poisoned"):
        text += f", but a load/store of it is poisoned: {row['reason']}"
    return text


def _summary(resolved: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    rows = [r for rs in resolved.values() for r in rs]
    ok = [r for r in rows if r["status"] == "ok"]
    return {"relocations": len(rows), "resolved": len(ok), "changed": sum(r["new"] != r["orig"] for r in ok),
            "poisoned": sum(r["status"] == "poisoned" for r in rows),
            "failed": sum(r["status"] == "failed" for r in rows)}
