"""pybpf's on-disk cache of derived data: things computed from an input (the kernel's BTF, an object file)
that cost more to compute than to read back, kept under ``$XDG_CACHE_HOME/pybpf`` (default ``~/.cache/pybpf``).

Always correct, or not used:

* an entry is found by a digest of its *key*, which the caller makes from everything the data depends on: a
  content hash of the input and :func:`code_key` of the modules that computed it (so a new pybpf, or an edited
  source file, never reads an old entry);
* the file repeats the key's digest and carries a CRC-32 of its payload, so a truncated, corrupt or foreign
  file is ignored (and rewritten by the caller);
* the directory is used only if it is ours (owned by the effective user, writable by nobody else): a cache
  that others could write would let them choose what we load;
* failing to read or write the cache is silent: it can make pybpf faster, never make it fail.

``PYBPF_NO_CACHE=1`` in the environment turns the cache off (e.g. for a fuzzer feeding thousands of objects).

Payloads are bytes the caller parses without executing anything (``array``, ``marshal`` of plain values).
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

try:  # CPython's own BLAKE2: `hashlib` would first load OpenSSL's libcrypto, ~10 ms of a tool's start
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other Pythons
    from hashlib import blake2b

if TYPE_CHECKING:
    import mmap

_MAGIC = b"pybpf-cache 2\n"
DIGEST_SIZE = 32  # bytes of a digest (BLAKE2b-256)


def digest(data: bytes | mmap.mmap) -> bytes:
    """The content hash used in keys (BLAKE2b, 32 bytes)."""
    return blake2b(data, digest_size=DIGEST_SIZE).digest()


def _checksum(payload: bytes) -> bytes:
    """A payload's CRC-32: it catches truncated or damaged files (only we can write the directory) at a quarter
    of a cryptographic digest's cost, which matters for the megabyte of a vmlinux index."""
    from zlib import crc32

    return crc32(payload).to_bytes(4, "little")


def code_key(*modules: str) -> bytes:
    """A key part naming the code that computes a cached value: pybpf's version, the machine's byte order (payloads
    may hold native arrays) and the size and modification time of each module's source file (``__file__``)."""
    from . import __version__

    parts = [__version__, sys.byteorder]
    for path in modules:
        try:
            st = os.stat(path)
        except OSError:
            parts.append(f"{path}:?")
            continue
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts).encode()


def directory() -> str:
    """Where the cache lives: ``$XDG_CACHE_HOME/pybpf`` if that variable is an absolute path, else
    ``~/.cache/pybpf``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf")


def _usable(create: bool) -> str | None:
    """The cache directory if it exists (or, with ``create``, could be made) and is ours alone; else None."""
    if os.environ.get("PYBPF_NO_CACHE"):
        return None
    path = directory()
    try:
        if create:
            os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the variable
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    return path


def _file(directory: str, kind: str, key: bytes) -> str:
    return os.path.join(directory, f"{kind}-{digest(key).hex()[:40]}")


def load(kind: str, key: bytes) -> bytes | None:
    """The payload stored for (``kind``, ``key``), or None if there is none that can be trusted."""
    where = _usable(create=False)
    if where is None:
        return None
    path = _file(where, kind, key)
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.geteuid():
                return None
            blob = f.read()
    except (OSError, ValueError):
        return None
    head = len(_MAGIC) + DIGEST_SIZE + 4
    payload = blob[head:]
    if (blob[:len(_MAGIC)] != _MAGIC or blob[len(_MAGIC):len(_MAGIC) + DIGEST_SIZE] != digest(key)
            or blob[len(_MAGIC) + DIGEST_SIZE:head] != _checksum(payload)):
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return payload


def store(kind: str, key: bytes, payload: bytes, keep: int) -> None:
    """Keep ``payload`` for (``kind``, ``key``), replacing any older entry atomically; drop the least recently
    used entries of ``kind`` beyond the ``keep`` newest.  Does nothing if the directory cannot be used."""
    where = _usable(create=True)
    if where is None:
        return
    path = _file(where, kind, key)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + digest(key) + _checksum(payload) + payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        _prune(where, kind, keep)
    except OSError:
        pass


def _prune(where: str, kind: str, keep: int) -> None:
    entries = []
    with os.scandir(where) as it:
        for e in it:
            if e.name.startswith(f"{kind}-") and not e.name.endswith(".tmp"):
                try:
                    entries.append((e.stat().st_mtime_ns, e.path))
                except OSError:
                    pass
    entries.sort()
    for _, path in entries[:-keep]:
        try:
            os.unlink(path)
        except OSError:
            pass
