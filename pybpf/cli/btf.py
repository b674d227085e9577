"""``pybpf btf dump``: print the types of a BTF blob, an object's .BTF, the kernel's or a module's BTF."""
from __future__ import annotations

import argparse
import os
import sys

from ._common import add_json, print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pybpf btf ...``."""
    p = sub.add_parser("btf", help="inspect BTF type information",
                       description="SOURCE := vmlinux | MODULE (a name under /sys/kernel/btf) | FILE "
                                   "(raw BTF, or an ELF object's .BTF)")
    ps = p.add_subparsers(dest="btf_cmd", metavar="{dump}")
    q = ps.add_parser("dump", help="print every type (raw, like bpftool) or a C header (like vmlinux.h)")
    q.add_argument("source", help="vmlinux, a module name, or a file")
    q.add_argument("--format", choices=("raw", "c"), default="raw", help="raw listing (default) or C")
    q.add_argument("--base", metavar="FILE", help="base BTF of split BTF (default: vmlinux for kernel modules)")
    add_json(q)
    q.set_defaults(func=cmd_dump)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def load_source(source: str, base_path: str | None = None):  # -> BTF (imported lazily)
    """The BTF named by ``source``: ``vmlinux``, a module under /sys/kernel/btf, a raw BTF file or an ELF
    object (its .BTF section)."""
    from ..btf import BTF, kernel
    from ..errors import BTFError

    base = BTF.load(base_path) if base_path else None
    if source == "vmlinux" and base is None:
        return kernel.vmlinux()
    path = source
    if not os.path.exists(path) and "/" not in source and source in kernel.module_names():
        return kernel.module(source)
    if base is None and os.path.dirname(os.path.abspath(path)) == kernel.SYSFS_BTF and \
            os.path.basename(path) != "vmlinux":
        base = kernel.vmlinux()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BTFError(f"{path}: {e.strerror}") from None
    if data[:4] == b"\x7fELF":
        data = _elf_btf(path)
    try:
        return BTF.parse(data, base)
    except BTFError as e:
        raise BTFError(f"{path}: {e}") from None


def _elf_btf(path: str) -> bytes:
    from elftools.common.exceptions import ELFError as _PyELFError
    from elftools.elf.elffile import ELFFile

    from ..errors import BTFError

    try:
        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".BTF")
            if sec is None:
                raise BTFError(f"{path}: the ELF file has no .BTF section")
            return sec.data()
    except _PyELFError as e:
        raise BTFError(f"{path}: not a readable ELF file: {e}") from None


def cmd_dump(args: argparse.Namespace) -> int:
    """Print the types (``--format raw|c``, ``--json``)."""
    btf = load_source(args.source, args.base)
    out = sys.stdout
    if args.json:
        from ..btf.dump import to_dict

        print_json([to_dict(t) for t in btf])
    elif args.format == "c":
        from ..btf.cdump import format_c

        out.write(format_c(btf))
    else:
        from ..btf.dump import format_raw

        batch: list[str] = []
        for line in format_raw(btf):
            batch.append(line)
            if len(batch) >= 4096:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            out.write("\n".join(batch) + "\n")
    return 0
