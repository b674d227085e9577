"""pybpf's exceptions: one hierarchy rooted at :class:`BPFError`.

Pure layers (ELF, BTF, assembler) raise :class:`ParseError` subclasses that say *where* the input is wrong;
the kernel door (:mod:`pybpf.sys`) raises :class:`KernelError` subclasses carrying the command, the errno name
and a hint telling the user what to do.  Nothing else should escape pybpf's public API.
"""
from __future__ import annotations

import errno as _errno
import os


class BPFError(Exception):
    """Root of every error pybpf raises on purpose."""


# --- pure layers -------------------------------------------------------------------------------------------


class ParseError(BPFError, ValueError):
    """Input bytes or text could not be understood; the message says where."""


class ELFError(ParseError):
    """A malformed or unsupported ELF object (truncated, wrong machine, bad section or symbol)."""


class BTFError(ParseError):
    """Malformed BTF or BTF.ext, or a type query that cannot be answered."""


class AsmError(ParseError):
    """Assembler input error; ``line``/``column``/``token`` locate it when it comes from text."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, token: str | None = None):
        self.line, self.column, self.token = line, column, token
        where = ""
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
        super().__init__(where + message + (f" (at {token!r})" if token else ""))


class CodecError(BPFError, ValueError):
    """A Python value cannot be converted to a map key, value or record of the expected type (or the bytes do
    not fit it); the message says which map, which side and why."""


class LinkError(BPFError):
    """An object cannot be assembled into loadable programs (unresolved symbol, bad relocation, CO-RE failure)."""


class SectionError(LinkError, ValueError):
    """A program section name pybpf (like libbpf) does not know how to load."""


# --- the kernel -------------------------------------------------------------------------------------------

_HINTS = {
    _errno.EACCES: "permission denied: the verifier or an LSM refused it (see the verifier log), or the file "
    "mode forbids it",
    _errno.E2BIG: "the kernel does not know a field pybpf set: it is too old for this feature",
    _errno.EINVAL: "the kernel rejected an argument: this kernel may not support this map/program/attach "
    "type or flag combination",
    _errno.ENOENT: "no such entry (key, object id, pinned path or kernel symbol)",
    _errno.EEXIST: "already exists",
    _errno.ENOSPC: "no space left: the map is full",
    _errno.ENOMEM: "out of memory: map or program too large for the memory cgroup / RLIMIT_MEMLOCK",
    _errno.EBADF: "bad file descriptor: the object was already closed",
    _errno.EOPNOTSUPP: "not supported by this kernel or this device",
    524: "not supported by this kernel",  # ENOTSUPP, kernel-internal but seen by user space
    _errno.EBUSY: "busy: something is already attached here (detach it or ask to replace it)",
    _errno.ENODEV: "no such device: the interface or PMU does not exist on this kernel",
    _errno.ESRCH: "no such process or kernel object (attach target not found)",
}
_ENOTSUPP = 524


_CAPS = {"CAP_BPF": 39, "CAP_PERFMON": 38, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21}


def _effective_caps() -> int | None:
    """This process's effective capability set (``CapEff`` of /proc/self/status), or None if unreadable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _default_hint(err: int) -> str:
    if err == _errno.EPERM:
        caps = _effective_caps()
        if caps is not None and not caps & (1 << _CAPS["CAP_BPF"] | 1 << _CAPS["CAP_SYS_ADMIN"]):
            missing = ", ".join(name for name, bit in _CAPS.items() if not caps >> bit & 1)
            return (f"operation not permitted: this process has neither CAP_BPF nor CAP_SYS_ADMIN (missing: "
                    f"{missing}{', although running as root' if os.geteuid() == 0 else ''}): grant CAP_BPF (plus "
                    "CAP_PERFMON for tracing, CAP_NET_ADMIN for networking; CAP_SYS_ADMIN on kernels before 5.8) or "
                    "run as root with its capabilities")
        if os.geteuid() == 0:
            return ("operation not permitted although running as root: the kernel itself refuses it (lockdown, "
                    "a blocked function tracer, an LSM, a missing capability in this container, or before "
                    "Linux 5.11 an exhausted RLIMIT_MEMLOCK: raise `ulimit -l`)")
        return ("operation not permitted: run as root or grant CAP_BPF (plus CAP_PERFMON for tracing, "
                "CAP_NET_ADMIN for networking, CAP_SYS_ADMIN on kernels before 5.8)")
    return _HINTS.get(err, os.strerror(err))


def errno_name(err: int) -> str:
    """The symbolic name of an errno value (``EPERM``), including the kernel's ENOTSUPP."""
    if err == _ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"errno {err}")


class KernelError(BPFError, OSError):
    """A syscall into the kernel failed.

    ``command`` names what was attempted (``BPF_MAP_CREATE``, ``perf_event_open``, ``netlink RTM_NEWLINK``...),
    ``errno`` is the raw errno and ``errno_name`` its symbol; ``hint`` says what a user can do about it.
    """

    errno: int  # always set, unlike OSError's

    def __init__(self, command: str, err: int, detail: str = "", hint: str | None = None):
        self.command = command
        self.errno_name = errno_name(err)
        self.detail = detail
        self.hint = hint if hint is not None else _default_hint(err)
        msg = f"{command} failed: {self.errno_name}"
        if detail:
            msg += f" ({detail})"
        if self.hint:
            msg += f": {self.hint}"
        OSError.__init__(self, err, msg)

    def __str__(self) -> str:
        return self.strerror or ""


class PermissionDenied(KernelError, PermissionError):
    """EPERM/EACCES from the kernel: a missing capability, lockdown, or an LSM."""


class NotSupported(KernelError):
    """The running kernel lacks the feature (EINVAL/E2BIG/EOPNOTSUPP/ENOTSUPP where pybpf knows it means so)."""


class NotFound(KernelError, KeyError):
    """ENOENT: a missing key, id, pinned path or symbol."""

    __str__ = KernelError.__str__


class VerifierError(KernelError):
    """BPF_PROG_LOAD failed; ``log`` holds the verifier's whole log and ``program`` the program's name."""

    def __init__(self, program: str, err: int, log: str, hint: str | None = None):
        self.program = program
        self.log = log
        last = next((ln for ln in reversed(log.splitlines())
                     if ln.strip() and not ln.startswith(("processed ", "verification time", "stack depth"))), "")
        super().__init__("BPF_PROG_LOAD", err, f"program {program!r}" + (f": {last}" if last else ""),
                         hint=hint or ("the verifier rejected the program; its log follows" if log else None))

    def __str__(self) -> str:
        text = super().__str__()
        if self.log:
            text += "\nverifier log:\n" + self.log.rstrip("\n")
        return text


def kernel_error(command: str, err: int, detail: str = "", hint: str | None = None) -> KernelError:
    """Build the most specific :class:`KernelError` subclass for ``err``."""
    if err in (_errno.EPERM, _errno.EACCES):
        cls: type[KernelError] = PermissionDenied
    elif err == _errno.ENOENT:
        cls = NotFound
    elif err in (_errno.EOPNOTSUPP, _ENOTSUPP, _errno.E2BIG):
        cls = NotSupported
    else:
        cls = KernelError
    return cls(command, err, detail, hint)
