"""The kernel's pseudo file systems pybpf relies on: bpffs (pins), tracefs (events, trace_pipe), debugfs.

Where a user would expect them mounted and they are not, pybpf mounts them itself (as bpftool does) and
says clearly when it cannot."""
from __future__ import annotations

import errno as _errno
import os
import re

from ..errors import KernelError, kernel_error

BPFFS = "/sys/fs/bpf"
SECURITYFS = "/sys/kernel/security"
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _unescape(field: str) -> str:
    """A mountinfo field with the kernel's octal escapes (``\\040`` space, ``\\011`` tab, ``\\012`` newline,
    ``\\134`` backslash) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount visible to this process, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            out.append((_unescape(left.split()[4]), right.split()[0]))
    return out


def fstype(path: str) -> str | None:
    """The type of the file system holding ``path`` (``bpf``, ``tracefs``...), or None if unknown."""
    real = os.path.realpath(path)
    best, kind = "", None
    for point, typ in mounts():
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, typ
    return kind


def is_bpffs(path: str) -> bool:
    """True if ``path`` lies inside a bpffs mount."""
    return fstype(path) == "bpf"


def check_pin_path(path: str, command: str = "BPF_OBJ_PIN") -> None:
    """Refuse a pin path whose directory is not inside a bpffs mount, before the kernel is asked.

    Raises :class:`~pybpf.errors.PermissionDenied` (EPERM, what the kernel itself answers) naming the path, the
    file system it is on and what to do.  When the mount table cannot be read, the kernel decides."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        kind = fstype(parent)
    except OSError:
        return
    if kind != "bpf":
        raise kernel_error(command, _errno.EPERM, f"{path} is not inside a bpffs mount: {parent} is on "
                           f"{kind or 'an unknown file system'}",
                           hint=f"pins must lie inside a mounted bpffs: pin under {BPFFS} (mount -t bpf bpf "
                                f"{BPFFS} if it is not mounted)")


def _mount(source: str, target: str, kind: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), kind.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise kernel_error(f"mount -t {kind} {target}", err,
                           hint=f"mount it yourself (mount -t {kind} {source} {target}) or run as root")


def ensure_bpffs(path: str = BPFFS) -> str:
    """Make sure a bpffs is mounted at ``path`` (mounting it if needed); return ``path``."""
    if not is_bpffs(path):
        os.makedirs(path, exist_ok=True)
        _mount("bpf", path, "bpf")
    return path


def tracefs() -> str:
    """The tracefs directory (``/sys/kernel/tracing`` or under debugfs), mounting tracefs if none is."""
    for cand in TRACEFS_CANDIDATES:
        if os.path.exists(os.path.join(cand, "events")):
            return cand
    errors = []
    for cand, kind in (("/sys/kernel/tracing", "tracefs"), ("/sys/kernel/debug", "debugfs")):
        try:
            if os.path.isdir(cand) and fstype(cand) != kind:
                _mount(kind, cand, kind)
        except KernelError as e:
            errors.append(str(e))
    for cand in TRACEFS_CANDIDATES:
        if os.path.exists(os.path.join(cand, "events")):
            return cand
    if not errors:
        try:
            with open("/proc/filesystems") as f:
                known = "tracefs" in f.read().split()
        except OSError:
            known = False
        errors.append("neither /sys/kernel/tracing nor /sys/kernel/debug exists to mount it on" if known
                      else "this kernel has no tracefs (CONFIG_TRACING off)")
    raise KernelError("mount tracefs", 2, "; ".join(errors),
                      hint="tracing needs tracefs: mount -t tracefs tracefs /sys/kernel/tracing")


def securityfs() -> str:
    """The securityfs directory (the active LSM list is its ``lsm`` file), mounting it if needed."""
    if os.path.isdir(SECURITYFS) and fstype(SECURITYFS) != "securityfs":
        _mount("securityfs", SECURITYFS, "securityfs")
    return SECURITYFS
