"""Where to put a uprobe: find the binary (PATH, ld.so directories, a process's mappings) and turn a
function name into the file offset the kernel wants (symbol value - section address + section offset).
``usdt.py`` reads USDT notes through :func:`open_elf` too.

Pure file reading; pyelftools is imported on first use.
"""
from __future__ import annotations

import errno as _errno
import fnmatch
import glob
import os
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import ELFError, NotFound

_FUNC_TYPES = ("STT_FUNC", "STT_GNU_IFUNC")
_ARCH_LIB = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "s390x": "s390x-linux-gnu",
             "riscv64": "riscv64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu"}


def _is_library(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def library_dirs() -> list[str]:
    """Directories the dynamic linker searches: LD_LIBRARY_PATH, /etc/ld.so.conf (with includes), defaults."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs += _ld_so_conf("/etc/ld.so.conf", set())
    arch = _ARCH_LIB.get(os.uname().machine)
    if arch:
        dirs += [f"/lib/{arch}", f"/usr/lib/{arch}"]
    dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    return list(dict.fromkeys(dirs))


def _ld_so_conf(path: str, seen: set[str]) -> list[str]:
    if path in seen:
        return []
    seen.add(path)
    try:
        with open(path) as f:
            lines = [ln.split("#", 1)[0].strip() for ln in f]
    except OSError:
        return []
    out: list[str] = []
    for line in lines:
        if line.startswith("include "):
            for inc in sorted(glob.glob(os.path.join(os.path.dirname(path), line.split(None, 1)[1]))):
                out += _ld_so_conf(inc, seen)
        elif line:
            out.append(line)
    return out


def _mapped_files(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return [parts[5] for parts in (ln.rstrip("\n").split(None, 5) for ln in f) if len(parts) == 6
                    and parts[5].startswith("/")]
    except OSError:
        return []


def resolve_binary(name: str, pid: int | None = None) -> str:
    """The path of binary or library ``name`` as the kernel should see it.

    A name with a ``/`` is taken as is.  Otherwise, with ``pid``, a file mapped by that process whose base
    name is ``name`` (or ``name`` plus a version: ``libc.so`` -> ``libc.so.6``) wins, reached through
    ``/proc/PID/root`` so containers work; then libraries are looked up like ld.so does and programs in
    PATH."""
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.exists(path):
            raise NotFound("resolve uprobe target", _errno.ENOENT, f"{path} does not exist")
        return path
    if pid is not None and pid > 0:
        for mapped in dict.fromkeys(_mapped_files(pid)):
            base = os.path.basename(mapped.removesuffix(" (deleted)"))
            if base == name or base.startswith(name + "."):
                rooted = f"/proc/{pid}/root{mapped}"
                return rooted if os.path.exists(rooted) else mapped
    if _is_library(name):
        dirs, mode = library_dirs(), os.R_OK
    else:
        dirs, mode = [d for d in os.environ.get("PATH", "").split(":") if d] + ["/usr/bin", "/usr/sbin"], os.X_OK
    for d in dirs:
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, mode):
            return cand
    where = f"process {pid}'s mappings, " if pid else ""
    raise NotFound("resolve uprobe target", _errno.ENOENT,
                   f"{name!r} not found in {where}" + ("ld.so library directories" if _is_library(name) else "PATH"))


@dataclass(frozen=True)
class FuncSymbol:
    """A function symbol of an ELF file and where its code lies in the file."""

    name: str
    offset: int  # file offset (what uprobes take)
    size: int
    weak: bool


def open_elf(path: str) -> tuple[Any, Any]:
    """(open file, pyelftools ELFFile) of ``path``; the caller closes the file.  Errors are pybpf errors."""
    from elftools.common.exceptions import ELFError as PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        f = open(path, "rb")
    except OSError as e:
        raise NotFound("open ELF", e.errno or _errno.ENOENT, path) from None
    try:
        return f, ELFFile(f)
    except (PyELFError, ValueError, OSError) as e:
        f.close()
        raise ELFError(f"{path}: not a readable ELF file ({e})") from None


def _versions(elf: Any) -> tuple[Any, dict[int, str]]:
    """The .gnu.version section and {version index: name} from .gnu.version_d (defined versions)."""
    versym = elf.get_section_by_name(".gnu.version")
    names: dict[int, str] = {}
    verdef = elf.get_section_by_name(".gnu.version_d")
    if verdef is not None:
        for version, auxiter in verdef.iter_versions():
            aux = next(iter(auxiter), None)
            if aux is not None:
                names[version["vd_ndx"]] = aux.name
    return versym, names


def iter_functions(path: str) -> Iterator[tuple[str, str | None, FuncSymbol]]:
    """Every defined function symbol of ``path``: (table, version, symbol) with table ``.dynsym`` first."""
    f, elf = open_elf(path)
    try:
        try:
            for table in (".dynsym", ".symtab"):
                sec = elf.get_section_by_name(table)
                if sec is None:
                    continue
                versym, vnames = _versions(elf) if table == ".dynsym" else (None, {})
                for i, sym in enumerate(sec.iter_symbols()):
                    info = sym["st_info"]
                    shndx = sym["st_shndx"]
                    if info["type"] not in _FUNC_TYPES or not isinstance(shndx, int) or not sym["st_value"]:
                        continue
                    code = elf.get_section(shndx)
                    offset = sym["st_value"] - code["sh_addr"] + code["sh_offset"]
                    name, _, ver = sym.name.partition("@")
                    version = ver.lstrip("@") or None
                    if versym is not None and version is None:
                        ndx = versym.get_symbol(i)["ndx"]
                        version = vnames.get(ndx & 0x7FFF) if isinstance(ndx, int) else None
                    yield table, version, FuncSymbol(name, offset, sym["st_size"], info["bind"] == "STB_WEAK")
        except (KeyError, ValueError, AttributeError) as e:
            raise ELFError(f"{path}: malformed symbol table ({e})") from None
    finally:
        f.close()


def func_offset(path: str, name: str) -> int:
    """The file offset of function ``name`` (``name@VERSION``/``name@@VERSION`` picks a version) in ``path``.

    .dynsym is searched first, then .symtab (as libbpf does); several strong definitions at different
    offsets are an error, a weak one yields to a strong one."""
    want, _, want_ver = name.partition("@")
    want_ver = want_ver.lstrip("@")
    found: dict[str, FuncSymbol] = {}
    for table, version, sym in iter_functions(path):
        if table == ".symtab" and ".dynsym" in found:
            break
        if sym.name != want or (want_ver and version != want_ver):
            continue
        if table in found and found[table].offset != sym.offset:
            if not found[table].weak and not sym.weak:
                raise ELFError(f"{path}: {name!r} is ambiguous: defined at file offsets "
                               f"{found[table].offset:#x} and {sym.offset:#x}; give NAME@VERSION or an offset")
            if sym.weak:
                continue
        found[table] = sym
    for table in (".dynsym", ".symtab"):
        if table in found:
            return found[table].offset
    raise NotFound("resolve uprobe target", _errno.ENOENT,
                   f"function {name!r} not in {path} (.dynsym, .symtab)",
                   hint="the binary may be stripped: give a file offset, or a library that defines the function")


def match_offsets(path: str, pattern: str) -> list[tuple[str, int]]:
    """(name, file offset) of every function of ``path`` whose name matches glob ``pattern``, one per offset."""
    seen: dict[int, str] = {}
    for _, _, sym in iter_functions(path):
        if fnmatch.fnmatchcase(sym.name, pattern):
            seen.setdefault(sym.offset, sym.name)
    return sorted(((n, off) for off, n in seen.items()), key=lambda x: x[1])
