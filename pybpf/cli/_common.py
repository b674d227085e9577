"""Shared pieces of the ``pybpf`` command: object selectors in bpftool's grammar, byte arguments, output."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable

from ..errors import BPFError


def add_json(p: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine-readable output) to a sub-command."""
    p.add_argument("--json", "-j", action="store_true", help="print JSON instead of text")


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON (bytes as hex strings, named tuples as objects)."""
    import json  # here: a command imports it only when asked for --json

    json.dump(_jsonable(obj), sys.stdout, indent=2)
    sys.stdout.write("\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if hasattr(obj, "_asdict"):
        return {k: _jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def parse_selector(words: list[str], kind: str) -> tuple[str, str]:
    """bpftool's ``id N | pinned FILE | name NAME | tag TAG`` (``tag`` for programs only) -> (how, what)."""
    allowed = ("id", "pinned", "name", "tag") if kind == "prog" else ("id", "pinned", "name")
    if len(words) < 2 or words[0] not in allowed:
        raise BPFError(f"expected {kind.upper()} as {' | '.join(a + ' ...' for a in allowed)}, got {' '.join(words)!r}")
    return words[0], words[1]


def parse_bytes(words: Iterable[str]) -> bytes:
    """bpftool's DATA: ``[hex] BYTES`` -- bytes as ``0x1f``/decimal tokens, or after ``hex`` as hex pairs."""
    words = list(words)
    if words and words[0] == "hex":
        try:
            return bytes.fromhex("".join(words[1:]))
        except ValueError as e:
            raise BPFError(f"bad hex bytes {' '.join(words[1:])!r}: {e}") from None
    out = bytearray()
    for w in words:
        try:
            v = int(w, 0)
        except ValueError:
            raise BPFError(f"bad byte {w!r}: give 0x.. or decimal bytes, or 'hex' then hex digits") from None
        if not 0 <= v <= 255:
            raise BPFError(f"byte {w!r} out of range 0..255")
        out.append(v)
    return bytes(out)


def hexbytes(b: bytes) -> str:
    """Bytes as bpftool prints them: ``01 00 00 00``."""
    return " ".join(f"{x:02x}" for x in b)


class SourceLines:
    """Source annotations of one instruction listing, from line info (``slot -> Line``, see
    :class:`pybpf.loader.Line`): :meth:`before` gives the comment to print above an instruction, as
    ``llvm-objdump -S`` and ``bpftool prog dump xlated`` do -- ``; <source text>`` (leading blanks dropped), with
    `` [file:line:col]`` added for lines from another file than the listing's first one (a header's inline
    function).  A record repeating the line just shown (another column of it) is not shown again, unless
    ``linum``, which shows every record with its ``[file:line:col]``."""

    def __init__(self, lines: dict[int, Any], linum: bool = False):
        self.lines = lines
        self.linum = linum
        self.home = lines[min(lines)].file if lines else None
        self._last: tuple[str, int] | None = None

    def reset(self) -> None:
        """Forget the line shown last (at a function's start, so that its first line is shown)."""
        self._last = None

    def before(self, slot: int) -> str | None:
        """The annotation for the instruction at ``slot``, or None (no line info record points at it, or it
        repeats the line shown last)."""
        ln = self.lines.get(slot)
        if ln is None or (not self.linum and (ln.file, ln.line) == self._last):
            return None
        self._last = (ln.file, ln.line)
        where = f"{ln.file}:{ln.line}:{ln.col}"
        text = ln.text.strip()
        if not text:
            return f"; {where}"
        return f"; {text} [{where}]" if self.linum or ln.file != self.home else f"; {text}"
