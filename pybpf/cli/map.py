"""``pybpf map``: list, show, dump, look up, update, delete and pin maps (bpftool's grammar)."""
from __future__ import annotations

import argparse

from ..errors import BPFError
from ._common import add_json, hexbytes, parse_bytes, parse_selector, print_json

_UPDATE_FLAGS = {"any": 0, "noexist": 1, "exist": 2}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pybpf map ...``."""
    p = sub.add_parser("map", help="list, show, dump, look up, update, delete and pin maps",
                       description="MAP := id ID | pinned FILE | name NAME;  DATA := [hex] BYTES")
    ps = p.add_subparsers(dest="map_cmd", metavar="{list,show,dump,lookup,update,delete,pin,freeze}")
    for name in ("list", "show"):
        q = ps.add_parser(name, help="show maps (all, or the one selected)")
        q.add_argument("map", nargs="*", help="MAP (default: every map)")
        add_json(q)
        q.set_defaults(func=cmd_show)
    q = ps.add_parser("dump", help="print every entry of a map")
    q.add_argument("map", nargs=2, metavar="MAP", help="id ID | pinned FILE | name NAME (two words)")
    add_json(q)
    q.set_defaults(func=cmd_dump)
    q = ps.add_parser("lookup", help="print the value at a key: map lookup MAP key DATA")
    q.add_argument("words", nargs="+", metavar="MAP key DATA")
    add_json(q)
    q.set_defaults(func=cmd_lookup)
    q = ps.add_parser("update", help="store a value: map update MAP key DATA value DATA [any|exist|noexist]")
    q.add_argument("words", nargs="+", metavar="MAP key DATA value DATA")
    q.set_defaults(func=cmd_update)
    q = ps.add_parser("delete", help="delete a key: map delete MAP key DATA")
    q.add_argument("words", nargs="+", metavar="MAP key DATA")
    q.set_defaults(func=cmd_delete)
    q = ps.add_parser("pin", help="pin a map in bpffs: map pin MAP FILE")
    q.add_argument("map", nargs=2, metavar="MAP", help="id ID | pinned FILE | name NAME (two words)")
    q.add_argument("path")
    q.set_defaults(func=cmd_pin)
    q = ps.add_parser("freeze", help="make a map read-only for user space")
    q.add_argument("map", nargs=2, metavar="MAP", help="id ID | pinned FILE | name NAME (two words)")
    q.set_defaults(func=cmd_freeze)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def select_maps(words: list[str]) -> list:
    """Open the maps a MAP selector names (every map when ``words`` is empty)."""
    from ..maps import Map
    from ..sys import syscall
    from .prog import _open_quiet

    if not words:
        return [m for m in (_open_quiet(Map.from_id, i) for i in list(syscall.object_ids("map"))) if m is not None]
    how, what = parse_selector(words, "map")
    if how == "id":
        return [Map.from_id(int(what, 0))]
    if how == "pinned":
        return [Map.from_pin(what)]
    out = []
    for i in list(syscall.object_ids("map")):
        m = _open_quiet(Map.from_id, i)
        if m is None:
            continue
        if m.name == what:
            out.append(m)
        else:
            m.close()
    if not out:
        raise BPFError(f"no map named {what!r}")
    return out


def _one_map(words: list[str]):  # type: ignore[no-untyped-def]
    maps = select_maps(words)
    if len(maps) != 1:
        for m in maps:
            m.close()
        raise BPFError(f"{len(maps)} maps match {' '.join(words)!r}; select one by id")
    return maps[0]


def _split(words: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split ``MAP key ... value ... [flag]`` into the selector and the keyword groups."""
    sel, rest = words[:2], words[2:]
    groups: dict[str, list[str]] = {}
    current = None
    for w in rest:
        if w in ("key", "value") or w in _UPDATE_FLAGS:
            current = w
            groups[w] = []
        elif current is None:
            raise BPFError(f"unexpected {w!r}: expected key/value")
        else:
            groups[current].append(w)
    return sel, groups


def cmd_show(args: argparse.Namespace) -> int:
    """Print maps like ``bpftool map show``."""
    infos = []
    for m in select_maps(args.map):
        with m:
            infos.append(m.info())
    if args.json:
        print_json([dict(i._asdict(), type=i.type_name) for i in infos])
        return 0
    for i in infos:
        line = f"{i.id}: {i.type_name}  name {i.name}  flags 0x{i.map_flags:x}"
        print(line)
        tail = f"\tkey {i.key_size}B  value {i.value_size}B  max_entries {i.max_entries}"
        if i.btf_id:
            tail += f"  btf_id {i.btf_id}"
        print(tail)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    """Print every entry of a map."""
    with _one_map(args.map) as m:
        rows = list(m.items())
    if args.json:
        print_json([{"key": k, "value": v} for k, v in rows])
        return 0
    for k, v in rows:
        if isinstance(v, list):
            print(f"key: {hexbytes(k)}")
            for cpu, val in enumerate(v):
                print(f"\tvalue (CPU {cpu:02d}): {hexbytes(val)}")
        else:
            print(f"key: {hexbytes(k)}  value: {hexbytes(v)}")
    print(f"Found {len(rows)} element{'s' if len(rows) != 1 else ''}")
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    """Print the value stored at a key."""
    sel, groups = _split(args.words)
    key = parse_bytes(groups.get("key", []))
    with _one_map(sel) as m:
        value = m.peek() if m.keyless else m.lookup(key)
    if value is None:
        raise BPFError(f"key {hexbytes(key)} not found")
    if args.json:
        print_json({"key": key, "value": value})
    elif isinstance(value, list):
        for cpu, val in enumerate(value):
            print(f"value (CPU {cpu:02d}): {hexbytes(val)}")
    else:
        print(f"key: {hexbytes(key)}  value: {hexbytes(value)}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """Store a value at a key."""
    sel, groups = _split(args.words)
    flag = next((f for f in _UPDATE_FLAGS if f in groups), "any")
    with _one_map(sel) as m:
        value = parse_bytes(groups.get("value", []))
        if m.keyless:
            m.push(value)
        else:
            m.update(parse_bytes(groups.get("key", [])), value, _UPDATE_FLAGS[flag])
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a key."""
    sel, groups = _split(args.words)
    key = parse_bytes(groups.get("key", []))
    with _one_map(sel) as m:
        if not m.delete(key):
            raise BPFError(f"key {hexbytes(key)} not found")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    """Pin a map."""
    with _one_map(list(args.map)) as m:
        m.pin(args.path)
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    """Freeze a map."""
    with _one_map(list(args.map)) as m:
        m.freeze()
    return 0
