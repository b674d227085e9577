"""``pybpf asm`` (text -> ELF object or raw instructions) and ``pybpf disasm`` (ELF object or raw bytes -> text)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import SourceLines

if TYPE_CHECKING:
    from ..loader.spec import Line


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``asm`` and ``disasm`` sub-commands."""
    p = subparsers.add_parser("asm", help="assemble eBPF text into an ELF object (or raw instructions)",
                              description="Assemble llvm-mc syntax (see pybpf.asm.text) into an ELF object that "
                              "libbpf loads, or into bare little-endian instructions with --raw.")
    p.add_argument("source", help="assembly file ('-' for standard input)")
    p.add_argument("-o", "--output", help="output file (default: SOURCE with .o, or .bin with --raw)")
    p.add_argument("--raw", action="store_true", help="write bare instructions instead of an ELF object")
    p.add_argument("--legacy-maps", action="store_true",
                   help="write maps as a legacy 'maps' section of struct bpf_map_def (libbpf < 1.0) instead of "
                   "BTF-defined .maps")
    p.set_defaults(func=assemble_command)
    d = subparsers.add_parser("disasm", help="disassemble an ELF object or raw instructions",
                              description="Print the instructions of each program section of an ELF object (or "
                              "of a raw instruction file) in llvm-objdump's syntax.  When the object has BTF "
                              "line info (.BTF.ext), each source line is printed as a '; <source text>' comment "
                              "above the first instruction compiled from it, as llvm-objdump -S does; lines from "
                              "another file than the section's first (headers) also show [file:line:col].  The "
                              "listing stays assembly text that 'pybpf asm' reads back.")
    d.add_argument("file", help="ELF object or raw instruction file")
    d.add_argument("--section", "-s", action="append", help="only this section (repeatable)")
    d.add_argument("--helpers", action="store_true", help="print helper calls by name")
    d.add_argument("--no-source", action="store_true", help="leave out the source line annotations")
    d.add_argument("--linum", action="store_true", help="show [file:line:col] on every source line annotation")
    d.set_defaults(func=disassemble_command)


def assemble_command(args: argparse.Namespace) -> int:
    """Handler of ``pybpf asm``."""
    from ..asm import parse, parse_assembly, write_object

    text = sys.stdin.read() if args.source == "-" else Path(args.source).read_text()
    if args.raw:
        data = parse(text).encode()
    else:
        data = write_object(parse_assembly(text), legacy_maps=args.legacy_maps)
    output = args.output or (str(Path(args.source).with_suffix(".bin" if args.raw else ".o"))
                             if args.source != "-" else None)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        Path(output).write_bytes(data)
    return 0


def disassemble_command(args: argparse.Namespace) -> int:
    """Handler of ``pybpf disasm``."""
    data = Path(args.file).read_bytes()
    if data[:4] == b"\x7fELF":
        lines = _disassemble_elf(args.file, args.section, args.helpers, not args.no_source, args.linum)
    else:
        lines = _listing(data, {}, {}, args.helpers)
    print("\n".join(lines))
    return 0


def _listing(code: bytes, symbols: dict[int, list[str]], relocations: dict[int, str], helpers: bool,
             source: SourceLines | None = None) -> list[str]:
    """``slot: text`` lines with ``name:`` labels at symbol offsets, relocations as trailing comments and, given
    ``source``, source line comments above the instructions line info points at."""
    from ..asm import Instructions, format_instruction

    instructions = Instructions.decode(code)
    out: list[str] = []
    for slot, ins in zip(instructions.offsets(), instructions):
        names = symbols.get(slot * 8, ())
        out.extend(f"{name}:" for name in names)
        if source is not None and names:
            source.reset()
        note = source.before(slot) if source is not None else None
        if note is not None:
            out.append(note)
        relo = relocations.get(slot * 8)
        out.append(f"{slot:8}:\t{format_instruction(ins, helpers)}" + (f"\t# {relo}" if relo else ""))
    return out


def _line_info(elf: Any, path: str) -> dict[str, dict[int, Line]]:
    """Section name -> {instruction slot in the section: source line} from the object's .BTF.ext line info
    ({} without BTF; a note on stderr when the BTF cannot be read, and the listing goes on without it)."""
    from ..btf import BTF, BTFExt
    from ..errors import BTFError
    from ..loader.spec import Line

    btf_section, ext_section = elf.get_section_by_name(".BTF"), elf.get_section_by_name(".BTF.ext")
    if btf_section is None or ext_section is None:
        return {}
    try:
        ext = BTFExt.parse(ext_section.data(), BTF.parse(btf_section.data()))
    except BTFError as e:
        print(f"pybpf: {path}: no source lines: {e}", file=sys.stderr)
        return {}
    return {name: {li.insn_off // 8: Line(li.file, li.line, li.line_num, li.col) for li in records}
            for name, records in ext.line_info.items()}


def _disassemble_elf(path: str, only: list[str] | None, helpers: bool, source: bool = True,
                     linum: bool = False) -> list[str]:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection

    from ..asm.elf import R_BPF_64_32, R_BPF_64_64, SHF_EXECINSTR
    from ..errors import ELFError

    kinds = {R_BPF_64_64: "R_BPF_64_64", R_BPF_64_32: "R_BPF_64_32"}
    out: list[str] = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if elf["e_machine"] != "EM_BPF":
            raise ELFError(f"{path}: not a BPF object (machine {elf['e_machine']})")
        symtab = elf.get_section_by_name(".symtab")
        lines = _line_info(elf, path) if source else {}
        for index, section in enumerate(elf.iter_sections()):
            if not section["sh_flags"] & SHF_EXECINSTR or (only and section.name not in only):
                continue
            symbols: dict[int, list[str]] = {}
            if isinstance(symtab, SymbolTableSection):
                for sym in symtab.iter_symbols():
                    if sym["st_shndx"] == index and sym["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE") \
                            and sym.name:
                        symbols.setdefault(sym["st_value"], []).append(sym.name)
            relocations = {}
            for rel_section in elf.iter_sections():
                if isinstance(rel_section, RelocationSection) and rel_section["sh_info"] == index:
                    table = elf.get_section(rel_section["sh_link"])
                    if not isinstance(table, SymbolTableSection):
                        continue  # malformed: the listing goes on without these relocations
                    for rel in rel_section.iter_relocations():
                        sym = table.get_symbol(rel["r_info_sym"])
                        name = sym.name or elf.get_section(sym["st_shndx"]).name
                        kind = kinds.get(rel["r_info_type"], rel["r_info_type"])
                        relocations[rel["r_offset"]] = f"{kind} {name}"
            out.append(f"Disassembly of section {section.name}:")
            notes = SourceLines(lines[section.name], linum) if section.name in lines else None
            out.extend(_listing(section.data(), symbols, relocations, helpers, notes))
            out.append("")
    return out
