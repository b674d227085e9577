"""The libbpf oracle: one prebuilt object loaded by pybpf and by ``bpftool prog loadall`` (libbpf) must give the
same programs (kernel-translated instructions, type, name, func/line info and the BTF blob loaded for them) and
the same maps (type, sizes, flags, name, BTF key/value type ids, initial contents of global data).

Where pybpf cannot load an object, bpftool must fail too; objects marked ``pybpf-check: skip`` in their source
(cannot load on the project's host) must then fail with an error naming the feature (fentry, lsm, ksym...),
any other object is skipped with the reason (a failure on the host under PYBPF_REQUIRE_KERNEL=1).  Objects a
kernel loads (the skip ones too, in the VMs) are compared.  ``variant FLAGS`` objects (legacy SEC("maps"),
which bpftool's libbpf 1.x refuses) are compared with bpftool loading the variant, built by the same compiler
with the same flags; ``type T`` is passed to bpftool.

Used by tests/kernel/test_oracle_load.py (the committed corpus, or ``PYBPF_ORACLE_OBJDIR``) and
tests/kernel/test_oracle_compilers.py (the corpus rebuilt by other clangs and flags).
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from typing import Any

import pybpf.prebuilt
import pytest
from conftest import kernel_skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "prebuilt", "src")
BUILD_OBJS = os.path.join(ROOT, "tools", "build_objs.sh")
_SLOT = struct.Struct("<BBhi")
#: words each skip reason must lead pybpf's error to mention (the section prefix naming the feature)
_FEATURE_WORDS = ("fentry", "fexit", "lsm", "ksym")


@dataclass(frozen=True)
class Build:
    """A build of the corpus: tools/build_objs.sh's CLANG, OPT and EXTRA_CFLAGS, and where its objects are
    (``objdir`` None: the committed prebuilt/ objects, which are clang-19 -O2)."""

    clang: str = "clang-19"
    opt: str = "-O2"
    extra_cflags: str = ""
    objdir: str | None = None

    @classmethod
    def from_env(cls) -> Build:
        """``PYBPF_ORACLE_OBJDIR=DIR`` (with the CLANG/OPT/EXTRA_CFLAGS it was built with), else prebuilt/."""
        objdir = os.environ.get("PYBPF_ORACLE_OBJDIR")
        if not objdir:
            return cls()
        return cls(os.environ.get("CLANG") or "clang-19", os.environ.get("OPT") or "-O2",
                   os.environ.get("EXTRA_CFLAGS", ""), objdir)

    @property
    def id(self) -> str:
        """e.g. ``clang-19-O2`` or ``clang-19-O2-mcpu=v3`` (test ids)."""
        return "".join([self.clang, self.opt, *self.extra_cflags.split()])

    def __str__(self) -> str:
        return " ".join(filter(None, [self.clang, self.opt, self.extra_cflags]))

    def object(self, obj: str) -> str:
        return os.path.join(self.objdir, obj) if self.objdir else pybpf.prebuilt.path(obj)

    def run(self, outdir: str, *names: str, extra_cflags: str = "") -> subprocess.CompletedProcess[str]:
        """tools/build_objs.sh OUTDIR NAMES... with this build's compiler and flags (plus ``extra_cflags``);
        parallel (JOBS=nproc), never raising: the caller reads returncode/stderr and which objects exist."""
        env = dict(os.environ, CLANG=self.clang, OPT=self.opt,
                   EXTRA_CFLAGS=f"{self.extra_cflags} {extra_cflags}".strip())
        return subprocess.run([BUILD_OBJS, outdir, *names], env=env, capture_output=True, text=True, check=False)


def directives(obj: str) -> dict[str, str]:
    """The ``pybpf-check:`` directives of a prebuilt object's source (kind -> rest of the line)."""
    src = os.path.join(SRC, obj.replace(".bpf.o", ".bpf.c"))
    out: dict[str, str] = {}
    if os.path.exists(src):
        with open(src) as f:
            for line in f:
                if "pybpf-check:" in line:
                    kind, _, rest = line.split("pybpf-check:", 1)[1].strip().partition(" ")
                    out[kind] = rest.strip()
    return out


def normalise(xlated: bytes, map_name: Any) -> list[tuple[Any, ...]]:
    """Instructions as tuples, with map ids in ld_imm64 replaced by the map's name (ids differ per load)."""
    out: list[tuple[Any, ...]] = []
    i = 0
    while i < len(xlated):
        code, regs, off, imm = _SLOT.unpack_from(xlated, i)
        if code == 0x18 and i + 16 <= len(xlated):
            hi = _SLOT.unpack_from(xlated, i + 8)[3]
            src = regs >> 4
            if src in (1, 2, 5, 6):  # BPF_PSEUDO_MAP_FD/VALUE/IDX/IDX_VALUE: imm is the map id in a dump
                out.append((code, regs, off, "map", map_name(imm), hi))
            else:
                out.append((code, regs, off, imm, hi))
            i += 16
            continue
        out.append((code, regs, off, imm))
        i += 8
    return out


def _map_info(fd: int) -> tuple[str, tuple[int, ...]]:
    """(name, (type, key_size, value_size, max_entries, flags, BTF key and value type ids)) of a map fd."""
    from pybpf.sys import syscall
    from pybpf.sys._cffi_abi import ffi

    i = syscall.obj_info(fd, "map")
    return ffi.string(i.name).decode(), (i.type, i.key_size, i.value_size, i.max_entries, i.map_flags,
                                         i.btf_key_type_id, i.btf_value_type_id)


def _prog_btf(prog: Any) -> tuple[Any, ...]:
    """(func_info records and record size, line_info records and record size, has BTF, the BTF blob) of a
    program, as the kernel reports them."""
    from pybpf.sys import syscall
    from pybpf.sys._cffi_abi import ffi

    i = syscall.obj_info(prog.fd, "prog")
    recs = []
    for kind, n, size in (("func", i.nr_func_info, i.func_info_rec_size), ("line", i.nr_line_info,
                                                                         i.line_info_rec_size)):
        buf = ffi.new("char[]", max(n * size, 1))
        info = ffi.new("struct bpf_prog_info *")
        setattr(info, f"nr_{kind}_info", n)
        setattr(info, f"{kind}_info_rec_size", size)
        setattr(info, f"{kind}_info", syscall.address(buf))
        syscall.obj_info(prog.fd, "prog", info)
        recs.append(ffi.buffer(buf, n * size)[:])
    blob = b""
    if i.btf_id:
        fd = syscall.fd_by_id("btf", i.btf_id)
        try:
            size = syscall.obj_info(fd, "btf").btf_size
            buf = ffi.new("char[]", size)
            info = ffi.new("struct bpf_btf_info *")
            info.btf, info.btf_size = syscall.address(buf), size
            syscall.obj_info(fd, "btf", info)
            blob = ffi.buffer(buf, size)[:]
        finally:
            os.close(fd)
    return recs[0], i.func_info_rec_size, recs[1], i.line_info_rec_size, bool(i.btf_id), blob


def _map_name_by_id(map_id: int) -> str:
    from pybpf.sys import syscall

    fd = syscall.fd_by_id("map", map_id)
    try:
        return _map_info(fd)[0]
    finally:
        os.close(fd)


def _programs_of(pins: str) -> dict[str, Any]:
    from pybpf.program import Program

    out = {}
    for name in sorted(os.listdir(pins)):
        prog = Program.from_pin(os.path.join(pins, name))
        out[name] = prog
    return out


def _pinned_maps(directory: str) -> dict[str, tuple[int, ...]]:
    from pybpf.sys import syscall

    out = {}
    for n in sorted(os.listdir(directory)):
        fd = syscall.obj_get(os.path.join(directory, n))
        try:
            name, shape = _map_info(fd)
        finally:
            os.close(fd)
        out[name] = shape
    return out


def _used_maps(progs: Any) -> dict[str, tuple[int, ...]]:
    from pybpf.sys import syscall

    out = {}
    for p in progs:
        for map_id in p.info().map_ids:
            fd = syscall.fd_by_id("map", map_id)
            try:
                name, shape = _map_info(fd)
            finally:
                os.close(fd)
            out[name] = shape
    return out


def _contents(fd: int) -> bytes:
    """Value 0 of an array map, raw."""
    from pybpf.sys import syscall
    from pybpf.sys._cffi_abi import ffi

    size = syscall.obj_info(fd, "map").value_size
    key, value = ffi.new("__u32 *"), ffi.new("char[]", size)
    a = syscall.new_attr()
    a.map_fd, a.key, a.value = fd, syscall.address(key), syscall.address(value)
    syscall.bpf(syscall.abi.BPF_MAP_LOOKUP_ELEM, a)
    return ffi.buffer(value, size)[:]


def _contents_of_pin(path: str) -> bytes:
    from pybpf.sys import syscall

    fd = syscall.obj_get(path)
    try:
        return _contents(fd)
    finally:
        os.close(fd)


def _has_globals(spec: Any, m: Any) -> bool:
    """Whether an internal map holds a variable user space can see (libbpf's map_is_mmapable)."""
    return any(v.map == m.name and v.linkage != 0 and v.name not in spec.hidden_symbols
               for v in spec.variables.values())


def _bpftool_object(obj: str, build: Build, tmp: str, variant: str) -> str:
    """The file bpftool loads: the object itself, or its variant built by the same compiler and flags."""
    if not variant:
        return build.object(obj)
    if not shutil.which(build.clang):
        pytest.skip(f"{build.clang} is needed to build the variant bpftool can load")
    res = build.run(tmp, obj[:-len(".bpf.o")], extra_cflags=variant)
    assert res.returncode == 0, f"{obj}: its variant ({variant}) does not build with {build}:\n{res.stderr[-3000:]}"
    return os.path.join(tmp, obj)


def compare_with_libbpf(obj: str, build: Build, tmp: str, uniq: str) -> None:
    """Load ``obj`` of ``build`` with pybpf and with bpftool and compare what the kernel reports (module doc).
    ``tmp``: a scratch directory; ``uniq``: a name unique to the test (bpffs pin directories)."""
    import pybpf.loader as L
    from pybpf.errors import BPFError
    from pybpf.sys.fs import ensure_bpffs

    where = obj if build == Build() else f"{obj} ({build})"
    d = directives(obj)
    if not shutil.which("bpftool"):
        kernel_skip("bpftool is not installed (apt install bpftool)")
    bpffs = ensure_bpffs()
    pins, mpins = os.path.join(bpffs, f"{uniq}_p"), os.path.join(bpffs, f"{uniq}_m")
    try:  # objects marked skip cannot load on the project's host; other kernels (the VMs) may load them
        loaded = L.load(build.object(obj))
    except BPFError as err:
        res = subprocess.run(["bpftool", "prog", "loadall", _bpftool_object(obj, build, tmp, d.get("variant", "")),
                              pins] + (["type", d["type"]] if d.get("type") else []),
                             capture_output=True, text=True, check=False)
        shutil.rmtree(pins, ignore_errors=True)
        assert res.returncode != 0, f"libbpf loads {where} here but pybpf does not: {err}"
        if "skip" not in d:
            kernel_skip(f"neither pybpf nor libbpf loads {where} on this kernel: {err}")
        words = [w for w in _FEATURE_WORDS if w in d["skip"].lower()]
        assert any(w in str(err).lower() for w in words), (d["skip"], str(err))
        return
    unpin = d.get("unpin", "").split()
    pre_existing = [p for p in unpin if os.path.exists(os.path.join(bpffs, p))]
    theirs: dict[str, Any] = {}
    try:
        with loaded as ours:
            target = _bpftool_object(obj, build, tmp, d.get("variant", ""))
            # maps pinned by name cannot be pinned again by pinmaps: then compare the maps programs use
            cmd = ["bpftool", "prog", "loadall", target, pins] + ([] if unpin else ["pinmaps", mpins])
            if d.get("type"):
                cmd += ["type", d["type"]]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            assert res.returncode == 0, f"pybpf loads {where} but libbpf does not:\n{res.stderr[-3000:]}"
            theirs = _programs_of(pins)
            assert sorted(ours.programs) == sorted(theirs), where
            for name, prog in ours.programs.items():
                mine, lib = prog.info(), theirs[name].info()
                assert (mine.type, mine.name) == (lib.type, lib.name), f"{where}: program {name}"
                assert normalise(prog.xlated(), _map_name_by_id) == normalise(theirs[name].xlated(), _map_name_by_id), \
                    f"{where}: program {name}: translated instructions differ"
                if not d.get("variant"):  # a variant is another build: its BTF differs
                    assert _prog_btf(prog) == _prog_btf(theirs[name]), f"{where}: program {name}: BTF or func/line " \
                        "info differ"
            if unpin:
                mine = _used_maps(ours.programs.values())
                lib = _used_maps(theirs.values())
            else:
                mine = dict(_map_info(m.fd) for m in ours.maps.values())
                lib = _pinned_maps(mpins)
            for m in ours.spec.maps.values():
                if m.internal and m.name in lib and not _has_globals(ours.spec, m):
                    # libbpf >= 1.1 (commit "only add BPF_F_MMAPABLE flag for data maps with global vars", which
                    # pybpf follows) vs the older libbpf bundled in Debian's bpftool 7.1: string-only maps
                    t, k, v, n, f, *ids = lib[m.name]
                    lib[m.name] = (t, k, v, n, f & ~0x400, *ids)
            if d.get("variant"):  # another build: its BTF, so the maps' BTF type ids, differ; and struct_ops
                # variables of ".struct_ops.link" (BPF_F_LINK) sit in ".struct_ops" for the older libbpf
                mine, lib = ({n: (*t[:4], t[4] & ~0x2000) for n, t in maps.items()} for maps in (mine, lib))
            assert mine == lib, f"{where}: maps differ"
            if not unpin:  # global data and .kconfig: the same initial contents
                for m in ours.spec.maps.values():
                    if m.internal:
                        pinned = os.path.join(mpins, m.name.replace(".", "_"))  # bpftool's pin names
                        assert _contents(ours.maps[m.name].fd) == _contents_of_pin(pinned), \
                            f"{where}: map {m.name} contents differ"
    finally:
        for p in theirs.values():
            p.close()
        for path in (pins, mpins):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
        for p in unpin:
            if p not in pre_existing and os.path.exists(os.path.join(bpffs, p)):
                os.unlink(os.path.join(bpffs, p))
