"""``pybpf load OBJ [--pin DIR] [--attach]``: load every program of an object, pin each as DIR/<name> like
``bpftool prog loadall``, and with ``--attach`` attach each from its SEC() name and pin the link as
DIR/<name>_link, so the attachments outlive the command."""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import BPFError
from ._common import add_json, print_json

if TYPE_CHECKING:
    from ..link import Link

LINK_SUFFIX = "_link"

_EXAMPLES = """layout of DIR:
    DIR/<program>         each loaded program (as bpftool prog loadall)
    DIR/<program>_link    with --attach: the program's link; the attachment lasts until this pin is removed
                          (rm -r DIR detaches and unloads everything)

examples:
    pybpf load prog.bpf.o                              # load only: check that it loads (and is verified)
    pybpf load prog.bpf.o --pin /sys/fs/bpf/prog       # programs pinned, nothing attached
    pybpf load hello --pin /sys/fs/bpf/hello --attach  # attached until rm -r /sys/fs/bpf/hello
    pybpf load xdp_drop --pin /sys/fs/bpf/xd --attach --target xdp_drop=eth1
    pybpf load freplace --program drop_verdict --attach-prog drop_verdict=pinned:/sys/fs/bpf/xdp/xdp_verdict \
        --pin /sys/fs/bpf/ext --attach                 # replace a function of a loaded XDP program
"""


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
    p = sub.add_parser("load", help="load an eBPF object, pin its programs, optionally attach them",
                       description="Load every program of an eBPF object (maps created, global data set).  With "
                                   "--pin DIR each program is pinned as DIR/<program name> in bpffs; with --attach "
                                   "as well, each program is attached as its SEC() name says and its link pinned "
                                   "as DIR/<program name>_link, so the attachment outlives this command (until the "
                                   "pin is removed).  --attach needs --pin: to stay attached only while a command "
                                   "runs, use 'pybpf run'.  Without --pin the object is loaded (and verified) and "
                                   "unloaded again.  OBJ is a path or a prebuilt object's name.",
                       epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("object", help="path of the .o file, or a prebuilt name (hello, execsnoop...)")
    p.add_argument("--pin", metavar="DIR", help="bpffs directory to pin the programs (and links) in")
    p.add_argument("--attach", action="store_true",
                   help="attach every loaded program from its SEC() name and pin its link as DIR/<program>_link "
                        "(needs --pin)")
    p.add_argument("--target", metavar="PROG=TARGET", type=_assignment, action="append", default=[],
                   help="with --attach: attach PROG to TARGET (an interface for xdp/tc, a cgroup path...)")
    p.add_argument("--attach-prog", metavar="PROG=TARGET", type=_assignment, action="append", default=[],
                   help="load PROG (freplace, or fentry/fexit on a BPF function) against an already loaded program: "
                        "TARGET is id:ID, pinned:PATH or name:NAME (as 'pybpf prog' selects), then optionally "
                        "@FUNCTION (default: the function PROG's section names)")
    p.add_argument("--set", metavar="VAR=VALUE", type=_assignment, action="append", default=[],
                   help="set a global variable (e.g. a const volatile) before load; repeatable")
    p.add_argument("--program", metavar="NAME", action="append",
                   help="load only this program (repeatable); default: every autoloaded program")
    p.add_argument("--pin-maps", metavar="DIR", help="also pin every map as DIR/<map name>")
    p.add_argument("--pin-root", metavar="DIR", default="/sys/fs/bpf",
                   help="where maps with pinning=LIBBPF_PIN_BY_NAME live (default /sys/fs/bpf)")
    p.add_argument("--log-level", type=int, default=0, help="verifier log level (printed for each program)")
    add_json(p)
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    if args.attach and not args.pin:
        raise BPFError("--attach needs --pin DIR: the attachments would end when pybpf exits (links are pinned as "
                       "DIR/<program>_link); use 'pybpf run OBJ' to stay attached until Ctrl-C")
    if args.target and not args.attach:
        raise BPFError("--target PROG=TARGET is for --attach")


def _attach_targets(assignments: list[tuple[str, str]]) -> dict[str, Any]:
    """``--attach-prog`` values -> ``load(attach_targets=)``: each TARGET opened as a Program (the caller closes
    them), with its function when ``@FUNCTION`` is given."""
    from .prog import select_programs

    out: dict[str, Any] = {}
    try:
        for name, target in assignments:
            selector, at, func = target.rpartition("@") if "@" in target else (target, "", "")
            how, colon, what = selector.partition(":")
            if not colon or how not in ("id", "pinned", "name") or not what or (at and not func):
                raise BPFError(f"--attach-prog {name}={target}: TARGET is id:ID, pinned:PATH or name:NAME, "
                               "then optionally @FUNCTION")
            found = select_programs([how, what])
            if len(found) > 1:
                for p in found:
                    p.close()
                raise BPFError(f"--attach-prog {name}={target}: {len(found)} loaded programs are named {what!r}; "
                               "select one by id: or pinned:")
            out[name] = (found[0], func) if func else found[0]
    except BaseException:
        _close_targets(out)
        raise
    return out


def _close_targets(targets: dict[str, Any]) -> None:
    for t in targets.values():
        (t[0] if isinstance(t, tuple) else t).close()


def run(args: argparse.Namespace) -> int:
    """Load, pin, attach and pin the links, report, and close (the pins keep programs and links alive).  A
    failure removes every pin made so far, so nothing is left half attached."""
    from ..loader import load
    from ..sys.fs import ensure_bpffs, is_bpffs
    from ..tools.runner import object_path

    _check_args(args)
    pin_dir = os.path.abspath(args.pin) if args.pin else None
    if pin_dir and not is_bpffs(os.path.dirname(pin_dir)) and pin_dir.startswith("/sys/fs/bpf"):
        ensure_bpffs()
    globals_ = {k: _value(v) for k, v in args.set}
    targets = dict(args.target)
    attach_targets = _attach_targets(args.attach_prog)
    pins: list[str] = []
    links: list[Link] = []
    made_dir = pin_dir is not None and not os.path.exists(pin_dir)
    report: dict[str, Any] = {}
    try:
        with load(object_path(args.object), globals=globals_, programs=args.program, pin_root=args.pin_root,
                  log_level=args.log_level, attach_targets=attach_targets) as obj:
            unknown = set(targets) - set(obj.programs)
            if unknown:
                raise BPFError(f"--target names no loaded program: {', '.join(sorted(unknown))} "
                               f"(programs: {', '.join(obj.programs)})")
            report = {"object": obj.name, "programs": [], "maps": []}
            for name, prog in obj.programs.items():
                entry: dict[str, Any] = {"name": name, "id": prog.info().id, "pinned": None}
                report["programs"].append(entry)
                if pin_dir is not None:
                    entry["pinned"] = _pin(pins, prog.pin, pin_dir, name)
            if args.attach:
                assert pin_dir is not None
                clash = sorted(n for n in obj.programs if n + LINK_SUFFIX in obj.programs)
                if clash:
                    raise BPFError(f"cannot pin links as DIR/<program>{LINK_SUFFIX}: programs "
                                   + ", ".join(f"{n!r} and {n + LINK_SUFFIX!r}" for n in clash) + " would clash")
                for entry in report["programs"]:
                    name = entry["name"]
                    try:
                        link = obj.programs[name].attach(targets.get(name))
                    except ValueError as e:  # a hook that needs a target (interface, cgroup...), or a bad one
                        if isinstance(e, BPFError) or name in targets:
                            raise
                        raise BPFError(f"{e} (with pybpf load: --target {name}=TARGET)") from None
                    links.append(link)
                    info = link.info()
                    entry["link"] = {"id": info.id, "kind": link.kind, "target": link.target,
                                     "mechanism": link.mechanism,
                                     "pinned": _pin(pins, link.pin, pin_dir, name + LINK_SUFFIX, name)}
            if args.pin_maps:
                os.makedirs(args.pin_maps, exist_ok=True)
                for name, m in obj.maps.items():
                    report["maps"].append({"name": name, "pinned": _pin(pins, m.pin, args.pin_maps, name)})
            logs = {n: p.verifier_log for n, p in obj.programs.items() if args.log_level and p.verifier_log}
    except BaseException:
        for link in links:
            link.close()  # its pin (if any) goes below: the attachment ends
        for path in reversed(pins):
            try:
                os.unlink(path)
            except OSError:
                pass
        if made_dir:
            try:
                os.rmdir(pin_dir)  # type: ignore[arg-type]
            except OSError:
                pass
        raise
    finally:
        _close_targets(attach_targets)  # the loaded programs hold their targets now
    for link in links:
        link.close()  # the pin holds it
    _print(report, logs, args.json)
    return 0


def _pin(pins: list[str], pin: Any, directory: str, name: str, what: str | None = None) -> str:
    """Pin with ``pin(path)`` at ``directory/name``, remembering the path for the undo on failure."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    try:
        pin(path)
    except BPFError as e:
        if what is None:
            raise
        # a link attached the legacy way (perf event ioctl, netlink...) has no bpf_link to pin
        raise BPFError(f"program {what!r}: cannot pin its link at {path}: {e}; 'pybpf run' keeps such "
                       "attachments while it runs") from None
    pins.append(path)
    return path


def _print(report: dict[str, Any], logs: dict[str, str], json: bool) -> None:
    if json:
        print_json(report)
        return
    for entry in report["programs"]:
        name = entry["name"]
        where = entry["pinned"] or f"loaded as id {entry['id']}, not pinned: unloaded again as pybpf exits"
        print(f"{name}: {where}")
        link = entry.get("link")
        if link:
            hook = " ".join(filter(None, (link["kind"], link["target"])))
            print(f"{name}: attached ({hook}), link id {link['id']}: {link['pinned']}")
        if name in logs:
            print(logs[name].rstrip())
    for m in report["maps"]:
        print(f"map {m['name']}: {m['pinned']}")
    if any(e.get("link") for e in report["programs"]):
        print("pybpf: remove the pins to detach and unload (rm -r DIR)", file=sys.stderr)
