"""``pybpf link``: list, show, detach and pin the kernel's BPF links (bpftool's grammar).

    pybpf link list [--json]             every link the kernel holds
    pybpf link show id 12                one link (LINK := id ID | pinned FILE)
    pybpf link detach pinned /sys/fs/bpf/mylink
    pybpf link pin id 12 /sys/fs/bpf/mylink
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import BPFError
from ._common import add_json, print_json

if TYPE_CHECKING:
    from ..link import Link, LinkInfo

_SELECTOR = "LINK := id ID | pinned FILE"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pybpf link ...``."""
    p = sub.add_parser("link", help="list, show, detach and pin BPF links",
                       description=f"Inspect and manage BPF links (attachments of programs to hooks). {_SELECTOR}")
    ps = p.add_subparsers(dest="link_cmd", metavar="{list,show,detach,pin}")
    for name in ("list", "show"):
        q = ps.add_parser(name, help="show links (all, or the one selected)", description=_SELECTOR)
        q.add_argument("link", nargs="*", help="LINK (default: every link)")
        add_json(q)
        q.set_defaults(func=cmd_show)
    q = ps.add_parser("detach", help="end an attachment now (even if pinned; removes the pin given)",
                      description=f"Detach a link from its hook (BPF_LINK_DETACH). {_SELECTOR}")
    _add_selector(q)
    q.set_defaults(func=cmd_detach)
    q = ps.add_parser("pin", help="pin a link in bpffs so it outlives its owner",
                      description=f"Pin a link at FILE inside a bpffs mount. {_SELECTOR}")
    _add_selector(q)
    q.add_argument("path", metavar="FILE", help="path inside a bpffs mount (e.g. /sys/fs/bpf/mylink)")
    q.set_defaults(func=cmd_pin)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _add_selector(p: argparse.ArgumentParser) -> None:
    p.add_argument("how", choices=("id", "pinned"), help="select the link by id or by pinned file")
    p.add_argument("what", metavar="ID|FILE", help="the link's id, or the bpffs file it is pinned at")


def open_link(words: list[str]) -> Link:
    """Open the link ``id ID`` or ``pinned FILE`` names."""
    from ..link import Link

    if len(words) != 2 or words[0] not in ("id", "pinned"):
        raise BPFError(f"expected LINK as 'id ID' or 'pinned FILE', got {' '.join(words)!r}")
    if words[0] == "pinned":
        return Link.from_pin(words[1])
    try:
        link_id = int(words[1], 0)
    except ValueError:
        raise BPFError(f"bad link id {words[1]!r}") from None
    return Link.from_id(link_id)


def all_links() -> list[Link]:
    """Every link the kernel holds now (links that vanish while listing are left out)."""
    from ..errors import NotFound
    from ..link import Link
    from ..sys import syscall

    out = []
    for link_id in list(syscall.object_ids("link")):
        try:
            out.append(Link.from_id(link_id))
        except NotFound:
            continue
    return out


def _as_dict(info: LinkInfo) -> dict[str, Any]:
    return {"id": info.id, "type": info.type_name, "prog_id": info.prog_id, **info.details}


def _format(info: LinkInfo) -> str:
    head = f"{info.id}: {info.type_name}  prog {info.prog_id}"
    details = "  ".join(f"{k} {v}" for k, v in info.details.items() if v not in ("", None, [], {}))
    return head + (f"\n\t{details}" if details else "")


def cmd_show(args: argparse.Namespace) -> int:
    """Print the selected links like ``bpftool link show``."""
    links = [open_link(args.link)] if args.link else all_links()
    infos = []
    for lk in links:
        try:
            infos.append(lk.info())
        finally:
            lk.close()
    if args.json:
        print_json([_as_dict(i) for i in infos])
    else:
        for i in infos:
            print(_format(i))
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    """Detach the selected link (and remove its pin when selected by pin)."""
    lk = open_link([args.how, args.what])
    lk.detach()
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    """Pin the selected link at FILE."""
    lk = open_link([args.how, args.what])
    try:
        lk.pin(args.path)
    finally:
        lk.close()
    return 0
