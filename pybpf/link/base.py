"""Link: one attachment of a program to a hook, whatever the kernel mechanism behind it.

A ``bpf_link`` attachment owns the link fd; a legacy one owns what it needs to undo itself (a perf event fd
and the tracefs probe event it created, the netlink socket and the filter it added, the cgroup fd it
attached to...).  Either way the attachment ends on :meth:`Link.close`, at the end of a ``with`` block or
when the Link is garbage-collected -- unless it was pinned in bpffs, which keeps a bpf_link alive.
"""
from __future__ import annotations

import errno as _errno
import os
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import BPFError, KernelError, NotFound, NotSupported, kernel_error
from ..sys import abi, syscall
from ..sys.fd import FD

if TYPE_CHECKING:
    from ..program import Program
    from .info import LinkInfo

BPF_LINK = "bpf_link"
PROG_ATTACH = "prog_attach"
Updater = Callable[["Program", "Program | None"], None]

# errnos meaning "this link type has no BPF_LINK_DETACH": then closing the last reference detaches it
_NO_LINK_DETACH = (_errno.EOPNOTSUPP, _errno.EINVAL, 524)


def _release(fd: FD | None, cleanup: Callable[[], None] | None) -> None:
    if fd is not None:
        fd.close()
    if cleanup is not None:
        cleanup()


class Link:
    """A program attached to a hook.

    ``kind`` says what was attached (``tracepoint``, ``xdp``, ``uprobe``...), ``mechanism`` how
    (``bpf_link``, ``perf_event`` ioctl, ``netlink``, ``prog_attach``, ``sockopt``), ``target`` where
    (``syscalls/sys_enter_execve``, ``eth0``...).  Use :meth:`close` (or ``with``) to end the attachment."""

    def __init__(self, fd: FD | int | None, kind: str, *, mechanism: str = BPF_LINK, target: str = "",
                 prog_id: int = 0, details: dict[str, Any] | None = None, cleanup: Callable[[], None] | None = None,
                 updater: Updater | None = None, pinned_path: str | None = None):
        self._fd = FD(fd) if isinstance(fd, int) else fd
        self.kind = kind
        self.mechanism = mechanism
        self.target = target
        self.pinned_path = pinned_path
        self._prog_id = prog_id
        self._details = dict(details or {})
        self._updater = updater
        self._finalizer = weakref.finalize(self, _release, self._fd, cleanup)

    # --- opening existing links --------------------------------------------------------------------------------

    @classmethod
    def from_fd(cls, fd: FD | int, pinned_path: str | None = None) -> Link:
        """Wrap an existing bpf_link fd (taking ownership of it)."""
        from .info import link_info

        owned = FD(fd) if isinstance(fd, int) else fd
        try:
            info = link_info(owned.fd)
        except BaseException:
            owned.close()
            raise
        return cls(owned, info.type_name, target=_describe(info), pinned_path=pinned_path)

    @classmethod
    def from_pin(cls, path: str) -> Link:
        """Open a link pinned in bpffs (it stays attached after close; :meth:`detach` ends it)."""
        return cls.from_fd(syscall.obj_get(path), pinned_path=path)

    @classmethod
    def from_id(cls, link_id: int) -> Link:
        """Open a link by its kernel id."""
        return cls.from_fd(syscall.fd_by_id("link", link_id))

    # --- the fd ------------------------------------------------------------------------------------------------

    @property
    def fd(self) -> int:
        """The link's fd (a bpf_link, or the perf event of a legacy perf attachment)."""
        if self._fd is None:
            raise BPFError(f"this {self.kind} attachment ({self.mechanism}) has no file descriptor")
        return self._fd.fd

    def fileno(self) -> int:
        """Same as :attr:`fd`."""
        return self.fd

    @property
    def closed(self) -> bool:
        """True once the link was closed or detached."""
        return not self._finalizer.alive

    # --- ending it ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release this attachment: a bpf_link ends unless pinned (or held elsewhere); a legacy attachment
        is undone (perf event closed and its probe event removed, netlink filter deleted...)."""
        self._finalizer()

    def detach(self) -> None:
        """End the attachment now, even if pinned: BPF_LINK_DETACH where the link type has it, remove our
        pin, then :meth:`close`."""
        if self.closed:
            return
        if self.mechanism == BPF_LINK:
            try:
                syscall.link_detach(self.fd)
            except KernelError as e:
                if e.errno not in _NO_LINK_DETACH:
                    raise
        if self.pinned_path:
            self.unpin()
        self.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pinning -----------------------------------------------------------------------------------------------

    def _require_bpf_link(self, what: str) -> None:
        if self.mechanism != BPF_LINK:
            raise NotSupported(what, _errno.EOPNOTSUPP, f"{self.kind} attached through {self.mechanism}",
                               hint="only bpf_link attachments support this; the kernel (or the mechanism "
                                    "asked for) attached this one the legacy way")

    def pin(self, path: str) -> None:
        """Pin the link in bpffs at ``path``: it then outlives this process until unpinned or detached."""
        self._require_bpf_link("BPF_OBJ_PIN")
        syscall.obj_pin(self.fd, path)
        self.pinned_path = path

    def unpin(self) -> None:
        """Remove the link's pin (the attachment then lives as long as open fds to it)."""
        if not self.pinned_path:
            return
        try:
            os.unlink(self.pinned_path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise kernel_error("unlink pin", e.errno or _errno.EIO, self.pinned_path) from None
        self.pinned_path = None

    # --- changing and inspecting -------------------------------------------------------------------------------

    def update(self, prog: Program, old: Program | None = None) -> None:
        """Run ``prog`` on the hook instead (BPF_LINK_UPDATE, or the legacy mechanism's replace); with
        ``old`` only if that program is the one attached."""
        if self.mechanism == BPF_LINK:
            syscall.link_update(self.fd, prog.fd, old.fd if old is not None else 0,
                                abi.BPF_F_REPLACE if old is not None else 0)
        elif self._updater is not None:
            self._updater(prog, old)
            self._prog_id = prog.info().id
        else:
            raise NotSupported("update link", _errno.EOPNOTSUPP, f"{self.kind} attached through {self.mechanism}",
                               hint="this attachment cannot swap its program: close it and attach again")

    def info(self) -> LinkInfo:
        """The kernel's description of the link, completed with what pybpf knows of it (older kernels
        describe less); legacy attachments: what pybpf knows, with ``id`` 0."""
        from dataclasses import replace

        from .info import LinkInfo, link_info  # here: attaching needs neither (nor dataclasses)

        if self.mechanism == BPF_LINK:
            info = link_info(self.fd)  # what the kernel says wins; what pybpf knows fills the gaps
            return replace(info, details={**self._details, **info.details})
        if self.closed:
            raise BPFError(f"{self.kind} link is closed")
        return LinkInfo(0, 0, self.kind, self._prog_id, {"mechanism": self.mechanism, **self._details})

    def __repr__(self) -> str:
        state = "closed" if self.closed else (f"fd={self._fd.fd}" if self._fd is not None else "open")
        pin = f" pinned at {self.pinned_path}" if self.pinned_path else ""
        return f"<Link {self.kind} {self.target!r} via {self.mechanism} {state}{pin}>"


_has_link: dict[str, bool] = {}  # attach kind -> does this kernel have a bpf_link for it (learnt by trying)


def try_link(kind: str, mechanism: str | None, legacy: str, create: Callable[[], int]) -> FD | None:
    """Create the bpf_link for ``kind`` with ``create()`` unless ``mechanism`` asks for the ``legacy`` one
    or this kernel was found to lack the link; return None when the caller should use the legacy mechanism
    (the kernel answered EINVAL: no such link type).  Other failures raise."""
    if mechanism not in (None, BPF_LINK, legacy):
        raise ValueError(f"mechanism must be {BPF_LINK!r} or {legacy!r}, not {mechanism!r}")
    if mechanism == legacy or (mechanism is None and _has_link.get(kind) is False):
        return None
    try:
        fd = FD(create())
    except KernelError as e:
        if e.errno != _errno.EINVAL or _has_link.get(kind):
            raise
        if mechanism == BPF_LINK:
            raise NotSupported("BPF_LINK_CREATE", e.errno, f"{kind} link",
                               hint=f"this kernel refused a {kind} bpf_link (kernels without one answer EINVAL); "
                                    f"mechanism={legacy!r} attaches the older way") from None
        return None
    _has_link[kind] = True
    return fd


def legacy_worked(kind: str, mechanism: str | None) -> None:
    """Record that the legacy mechanism worked for ``kind`` where the link did not (after try_link gave None)."""
    if mechanism is None and kind not in _has_link:
        _has_link[kind] = False


def resolve_attach_type(prog: Program, attach_type: int | str | None, examples: str) -> tuple[int, str]:
    """(attach type, its name): the one given (number or name) or else the program's expected one."""
    from ..program import attach_type_of
    from .info import attach_type_name

    atype = attach_type_of(attach_type) if attach_type is not None else prog.expected_attach_type
    if not atype:
        raise ValueError(f"program {prog.name!r} was loaded without an expected attach type: give attach_type "
                         f"({examples})")
    return atype, attach_type_name(atype)


def open_path(path: str, what: str) -> FD:
    """Open a file or directory naming an attach target (a cgroup, a network namespace) read-only."""
    try:
        return FD(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as e:
        raise kernel_error(f"open {what}", e.errno or _errno.ENOENT, path) from None


def _describe(info: LinkInfo) -> str:
    d = info.details
    for key in ("tp_name", "func_name", "file_name", "path", "target_name"):
        if d.get(key):
            return str(d[key])
    if "ifindex" in d:
        return f"ifindex {d['ifindex']}"
    return ""


class LinkGroup(Link):
    """Several links made by one attach call (a perf event on every CPU, a probe at every match): closed,
    detached and inspected together; ``cleanup`` runs once the members are closed."""

    def __init__(self, links: Iterable[Link], kind: str, target: str = "",
                 cleanup: Callable[[], None] | None = None):
        self.links = list(links)
        mechanisms = {lk.mechanism for lk in self.links}
        super().__init__(None, kind, mechanism=mechanisms.pop() if len(mechanisms) == 1 else "mixed",
                         target=target, cleanup=_close_all(self.links, cleanup))

    def detach(self) -> None:
        """Detach every link of the group."""
        for lk in self.links:
            lk.detach()
        self.close()

    def pin(self, path: str) -> None:
        """Groups cannot be pinned as one object; pin the members (``group.links``) one by one."""
        raise NotSupported("BPF_OBJ_PIN", _errno.EOPNOTSUPP, f"{self.kind} group of {len(self.links)} links",
                           hint="pin each member of .links at its own path")

    def update(self, prog: Program, old: Program | None = None) -> None:
        """Update every link of the group."""
        for lk in self.links:
            lk.update(prog, old)

    def info(self) -> LinkInfo:
        """A summary whose ``details["links"]`` holds each member's info."""
        from .info import LinkInfo

        return LinkInfo(0, 0, self.kind, 0, {"mechanism": self.mechanism, "links": [lk.info() for lk in self.links]})


def _close_all(links: list[Link], then: Callable[[], None] | None) -> Callable[[], None]:
    def close() -> None:
        for lk in links:
            lk.close()
        if then is not None:
            then()
    return close


def _in_netns(netns: FD | None, action: Callable[[], None]) -> None:
    if netns is None:
        action()
        return
    from ..sys.netns import entered

    with entered(f"/proc/self/fd/{netns.fd}"):
        action()


def attach_fd(prog: Program, target_fd: FD, attach_type: int, kind: str, target: str, details: dict[str, Any], *,
              mechanism: str | None, flags: int = 0, netns: FD | None = None) -> Link:
    """Attach ``prog`` to an fd target (cgroup, sockmap, network namespace): a bpf_link where the kernel has
    one, else BPF_PROG_ATTACH with ``flags`` -- run inside network namespace ``netns`` for the per-netns
    hooks, which act on the caller's namespace and take no target fd.  Takes ownership of ``target_fd`` and
    ``netns``."""
    def close_targets() -> None:
        target_fd.close()
        if netns is not None:
            netns.close()

    legacy_target = 0 if netns is not None else target_fd.fd
    try:
        lfd = try_link(kind, mechanism, PROG_ATTACH, lambda: syscall.link_create(prog.fd, target_fd.fd, attach_type))
        if lfd is None:
            _in_netns(netns, lambda: syscall.prog_attach(prog.fd, legacy_target, attach_type, flags))
            legacy_worked(kind, mechanism)
    except BaseException:
        close_targets()
        raise
    if lfd is not None:
        close_targets()
        return Link(lfd, kind, target=target, details=details)
    state = {"prog_id": prog.info().id}

    def remove() -> None:
        try:
            with FD(syscall.fd_by_id("prog", state["prog_id"])) as mine:
                _in_netns(netns, lambda: syscall.prog_detach(legacy_target, attach_type, mine.fd))
        except NotFound:
            pass  # already detached (and freed), or the target is gone
        finally:
            close_targets()

    def update(new: Program, old: Program | None) -> None:
        if flags & abi.BPF_F_ALLOW_MULTI:
            with FD(syscall.fd_by_id("prog", state["prog_id"])) as mine:
                replaced = old.fd if old is not None else mine.fd
                _in_netns(netns, lambda: syscall.prog_attach(new.fd, legacy_target, attach_type,
                                                             flags | abi.BPF_F_REPLACE, replace_fd=replaced))
        else:
            _in_netns(netns, lambda: syscall.prog_attach(new.fd, legacy_target, attach_type, flags))
        state["prog_id"] = new.info().id

    return Link(None, kind, mechanism=PROG_ATTACH, target=target, prog_id=state["prog_id"],
                details={**details, "flags": flags}, cleanup=remove, updater=update)
