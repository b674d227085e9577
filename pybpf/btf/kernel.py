"""The running kernel's BTF: vmlinux and module (split) BTF from ``/sys/kernel/btf``.

Parsed BTF is cached per process, keyed on the file's identity (device, inode, size, modification time), so a
module that is unloaded and loaded again, or a different file at the same path, is read afresh.  Parsing is
lazy (see :mod:`pybpf.btf.btf`): opening vmlinux costs one pass over its type section -- and not even that
when :mod:`pybpf._cache` holds the index of the same blob (keyed by its BLAKE2b digest and the parsing code).  The
answers to name lookups in it (CO-RE candidates, attach targets, ksyms) are kept there too: added to when the
process exits, read back when the same blob is opened again.
"""
from __future__ import annotations

import atexit
import errno
import mmap
import os
import weakref
from typing import TYPE_CHECKING, Iterator, Sequence, overload

from ..errors import BTFError, KernelError
from .btf import BTF

if TYPE_CHECKING:
    from ..sys.fd import FD

__all__ = ["SYSFS_BTF", "vmlinux", "module", "module_names", "module_btf_fd", "targets", "KernelTargets"]

SYSFS_BTF = "/sys/kernel/btf"
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # a new random id at every boot
_cache: dict[str, tuple[tuple[int, int, int, int], BTF]] = {}


def _load(path: str, base: BTF | None) -> BTF:
    try:
        st = os.stat(path)
    except OSError as e:
        raise BTFError(f"cannot read kernel BTF {path}: {e.strerror}") from None
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _cache.get(path)
    if hit is not None and hit[0] == key and (base is None or hit[1].base is base):
        return hit[1]
    btf = BTF.load(path, base) if base is not None else _load_indexed(path)
    _cache[path] = (key, btf)
    return btf


def _load_indexed(path: str) -> BTF:
    """Parse the base BTF at ``path`` with its record index from the on-disk cache, storing it there if absent."""
    from .. import _cache as disk
    from . import btf as btf_module
    from . import types

    try:
        data = _contents(path)
    except OSError as e:
        raise BTFError(f"cannot read kernel BTF {path}: {e.strerror}") from None
    key = _digest(path, data) + disk.code_key(btf_module.__file__, types.__file__)
    index = disk.load("btf-index", key)
    try:
        btf = BTF.parse(data, index=index)
    except BTFError as e:
        raise BTFError(f"{path}: {e}") from None
    if index is None or not btf.indexed_by(index):  # none stored, or one that did not fit
        disk.store("btf-index", key, btf.index(), keep=4)  # a megabyte each: this kernel and a few others
    known = disk.load("btf-lookups", key) or b""
    btf.add_lookups(known)
    atexit.register(_keep_lookups, weakref.ref(btf), key, known)
    return btf


def _digest(path: str, data: bytes | mmap.mmap) -> bytes:
    """The content hash of ``data``, the file at ``path``.  The kernel's own BTF in sysfs cannot change until the
    next boot, so its hash is kept per boot (keyed by :data:`BOOT_ID`) instead of computed by every
    process (5 MB: a few ms); any other file is hashed every time."""
    from .. import _cache as disk

    if not path.startswith(SYSFS_BTF + "/"):
        return disk.digest(data)
    try:
        with open(BOOT_ID, "rb") as f:
            boot = f.read().strip()
    except OSError:
        return disk.digest(data)
    key = b"\0".join((boot, path.encode(), str(len(data)).encode()))
    known = disk.load("btf-digest", key)
    if known is not None and len(known) == disk.DIGEST_SIZE:
        return known
    digest = disk.digest(data)
    disk.store("btf-digest", key, digest, keep=4)
    return digest


def _contents(path: str) -> bytes | mmap.mmap:
    """The file at ``path``: mapped read-only for the kernel's own BTF in sysfs (which cannot change while the
    kernel runs; Linux 6.16+ allows the mapping, saving a 5 MB copy), else read."""
    with open(path, "rb") as f:
        if path.startswith(SYSFS_BTF + "/"):
            try:
                return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
            except (OSError, ValueError):  # an older kernel: EACCES, or EINVAL
                pass
        return f.read()


def _keep_lookups(ref: weakref.ref[BTF], key: bytes, known: bytes) -> None:
    """At exit: store the name lookups of the BTF ``ref`` (if still alive) if there are new ones."""
    from .. import _cache as disk

    btf = ref()
    now = btf.lookups() if btf is not None else b""
    if now and now != known:
        disk.store("btf-lookups", key, now, keep=4)


def vmlinux(path: str | None = None) -> BTF:
    """The kernel's own BTF (``/sys/kernel/btf/vmlinux``), or a raw BTF file standing in for it."""
    return _load(path or os.path.join(SYSFS_BTF, "vmlinux"), None)


def module_names() -> list[str]:
    """Names of the loaded modules that have BTF, sorted."""
    try:
        return sorted(n for n in os.listdir(SYSFS_BTF) if n != "vmlinux")
    except OSError:
        return []


def module(name: str) -> BTF:
    """A module's BTF, split on top of :func:`vmlinux`."""
    if not name or "/" in name or name in (".", ".."):
        raise BTFError(f"invalid module name {name!r}")
    return _load(os.path.join(SYSFS_BTF, name), vmlinux())


def module_btf_fd(name: str) -> FD:
    """An fd of the kernel's BTF object for module ``name``: what BPF_PROG_LOAD takes as ``attach_btf_obj_fd``
    (fentry/fexit/tp_btf on a module's function) and in ``fd_array`` (module kfuncs), found among the loaded BTF
    objects (BPF_BTF_GET_NEXT_ID) by name, as libbpf's load_module_btfs does."""
    from ..sys import syscall
    from ..sys._cffi_abi import ffi
    from ..sys.fd import FD

    buf = ffi.new("char[]", 64)
    for btf_id in syscall.object_ids("btf"):
        try:
            fd = FD(syscall.fd_by_id("btf", btf_id))
        except KernelError as e:
            if e.errno == errno.ENOENT:  # unloaded since it was listed
                continue
            raise
        info = ffi.new("struct bpf_btf_info *")
        info.name, info.name_len = syscall.address(buf), len(buf)
        try:
            syscall.obj_info(fd.fd, "btf", info)
        except KernelError:
            fd.close()
            raise
        if info.kernel_btf and ffi.string(buf).decode(errors="replace") == name:
            return fd
        fd.close()
    raise BTFError(f"the kernel has no BTF object for module {name!r} (not loaded? kernels before 5.11 have no "
                   "module BTF)")


class KernelTargets(Sequence[BTF]):
    """CO-RE targets: vmlinux first, then module BTFs, each parsed only when first indexed (the CO-RE
    resolver looks at modules only for types vmlinux lacks)."""

    def __init__(self, main: BTF, modules: list[str]):
        self._main = main
        self.module_names = modules

    def __len__(self) -> int:
        return 1 + len(self.module_names)

    @overload
    def __getitem__(self, i: int) -> BTF: ...

    @overload
    def __getitem__(self, i: slice) -> list[BTF]: ...

    def __getitem__(self, i: int | slice) -> BTF | list[BTF]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if i == 0:
            return self._main
        if not 0 < i < len(self):
            raise IndexError(i)
        return module(self.module_names[i - 1])

    def __iter__(self) -> Iterator[BTF]:
        return (self[i] for i in range(len(self)))


def targets(path: str | None = None) -> KernelTargets:
    """What CO-RE relocates against: the running kernel (vmlinux then modules), or only the BTF file at
    ``path`` (like libbpf's ``btf_custom_path``: no modules then)."""
    if path is not None:
        return KernelTargets(vmlinux(path), [])
    return KernelTargets(vmlinux(), module_names())
