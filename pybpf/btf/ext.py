"""``.BTF.ext``: per-section func_info, line_info and CO-RE relocation records.

Offsets in the records are *byte* offsets of instructions inside their ELF section (as the compiler writes
them); the loader turns them into instruction indexes.  Strings (section names, file names, source lines,
access strings) live in the object's ``.BTF`` string section, so parsing and writing need that :class:`BTF`.
"""
from __future__ import annotations

import struct
from typing import Callable, TypeVar

from ..errors import BTFError
from ..sys import abi
from .btf import BTF

__all__ = ["BTFExt", "FuncInfo", "LineInfo", "CoreRelo"]

_MIN_HDR = 24  # up to line_info_len; core_relo_off/len make it 32


class FuncInfo:
    """A function starts at byte ``insn_off`` of its section; ``type_id`` is its BTF FUNC."""

    __slots__ = ("insn_off", "type_id", "extra")
    _min = 8

    def __init__(self, insn_off: int, type_id: int, extra: bytes = b""):
        self.insn_off, self.type_id, self.extra = insn_off, type_id, extra

    def _words(self, add: Callable[[str, int], int]) -> tuple[int, ...]:
        return self.insn_off, self.type_id

    @classmethod
    def _from(cls, words: tuple[int, ...], get: Callable[[int], str], extra: bytes) -> FuncInfo:
        return cls(words[0], words[1], extra)

    def __repr__(self) -> str:
        return f"FuncInfo(insn_off={self.insn_off}, type_id={self.type_id})"


class LineInfo:
    """Source position of the instruction at byte ``insn_off``: ``file``, ``line`` (source text), ``line_num``,
    ``col``."""

    __slots__ = ("insn_off", "file", "line", "line_num", "col", "file_off", "line_off", "extra")
    _min = 16

    def __init__(self, insn_off: int, file: str, line: str, line_num: int, col: int, extra: bytes = b""):
        self.insn_off, self.file, self.line, self.line_num, self.col = insn_off, file, line, line_num, col
        self.file_off = self.line_off = -1
        self.extra = extra

    def _words(self, add: Callable[[str, int], int]) -> tuple[int, ...]:
        if not (0 <= self.line_num < 1 << 22 and 0 <= self.col < 1 << 10):
            raise BTFError(f"line_info at insn byte {self.insn_off}: line {self.line_num} col {self.col} too big")
        return (self.insn_off, add(self.file, self.file_off), add(self.line, self.line_off),
                (self.line_num << 10) | self.col)

    @classmethod
    def _from(cls, words: tuple[int, ...], get: Callable[[int], str], extra: bytes) -> LineInfo:
        li = cls(words[0], get(words[1]), get(words[2]), words[3] >> 10, words[3] & 0x3FF, extra)
        li.file_off, li.line_off = words[1], words[2]
        return li

    def __repr__(self) -> str:
        return f"LineInfo(insn_off={self.insn_off}, {self.file}:{self.line_num}:{self.col})"


class CoreRelo:
    """One CO-RE relocation (``struct bpf_core_relo``): the instruction at byte ``insn_off`` of its section,
    the local root ``type_id``, the ``access`` string (``"0:1:2"``) and the ``kind`` (``BPF_CORE_*``)."""

    __slots__ = ("insn_off", "type_id", "access", "kind", "access_off", "extra")
    _min = 16

    def __init__(self, insn_off: int, type_id: int, access: str, kind: int, extra: bytes = b""):
        self.insn_off, self.type_id, self.access, self.kind = insn_off, type_id, access, kind
        self.access_off = -1
        self.extra = extra

    @property
    def insn_idx(self) -> int:
        """Index of the relocated instruction in its section (``insn_off // 8``)."""
        return self.insn_off // 8

    def _words(self, add: Callable[[str, int], int]) -> tuple[int, ...]:
        return self.insn_off, self.type_id, add(self.access, self.access_off), self.kind

    @classmethod
    def _from(cls, words: tuple[int, ...], get: Callable[[int], str], extra: bytes) -> CoreRelo:
        r = cls(words[0], words[1], get(words[2]), words[3], extra)
        r.access_off = words[2]
        return r

    def __repr__(self) -> str:
        try:
            kind: object = abi.bpf_core_relo_kind(self.kind).name
        except ValueError:
            kind = self.kind
        return f"CoreRelo(insn_off={self.insn_off}, type_id={self.type_id}, access={self.access!r}, kind={kind})"


R = TypeVar("R", FuncInfo, LineInfo, CoreRelo)


class BTFExt:
    """Parsed ``.BTF.ext``: ``func_info``, ``line_info`` and ``core_relos``, each a dict from ELF section name
    to its records in file order."""

    def __init__(self) -> None:
        """An empty BTF.ext (version 1, 32-byte header)."""
        self.func_info: dict[str, list[FuncInfo]] = {}
        self.line_info: dict[str, list[LineInfo]] = {}
        self.core_relos: dict[str, list[CoreRelo]] = {}
        self.flags = 0
        self.hdr_len = 32
        self.rec_sizes = {"func": 8, "line": 16, "core": 16}
        self._sec_offs: dict[str, int] = {}  # section name -> string offset it was read from

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, btf: BTF) -> BTFExt:
        """Parse ``.BTF.ext`` bytes; names are looked up in the object's ``btf``."""
        data = bytes(data)
        if len(data) < 8:
            raise BTFError(f".BTF.ext is {len(data)} bytes: too short for a header")
        if data[:2] == b"\x9f\xeb":
            fmt = "<"
        elif data[:2] == b"\xeb\x9f":
            fmt = ">"
        else:
            raise BTFError(f".BTF.ext: bad magic {data[:2].hex()}")
        version, flags, hdr_len = struct.unpack_from(fmt + "BBI", data, 2)
        if version != abi.BTF_VERSION:
            raise BTFError(f".BTF.ext: unsupported version {version}")
        if hdr_len < _MIN_HDR or hdr_len > len(data):
            raise BTFError(f".BTF.ext: header length {hdr_len} invalid for {len(data)} bytes")
        self = cls()
        self.flags, self.hdr_len = flags, hdr_len
        fi_off, fi_len, li_off, li_len = struct.unpack_from(fmt + "4I", data, 8)
        cr_off, cr_len = struct.unpack_from(fmt + "2I", data, 24) if hdr_len >= 32 else (0, 0)
        body = memoryview(data)[hdr_len:]
        get = btf.strings.get
        if fi_len:
            self.rec_sizes["func"] = self._parse_sub(body, fmt, "func", fi_off, fi_len, FuncInfo, get, self.func_info)
        if li_len:
            self.rec_sizes["line"] = self._parse_sub(body, fmt, "line", li_off, li_len, LineInfo, get, self.line_info)
        if cr_len:
            self.rec_sizes["core"] = self._parse_sub(body, fmt, "core", cr_off, cr_len, CoreRelo, get,
                                                     self.core_relos)
        return self

    def _parse_sub(self, body: memoryview, fmt: str, key: str, off: int, ln: int, rec: type[R],
                   get: Callable[[int], str], out: dict[str, list[R]]) -> int:
        where = f".BTF.ext {key}_info"
        if off + ln > len(body):
            raise BTFError(f"{where} (offset {off}, length {ln}) runs past the end of the section")
        if ln < 4:
            raise BTFError(f"{where}: {ln} bytes is too short for a record size")
        sub = body[off:off + ln]
        (rec_size,) = struct.unpack_from(fmt + "I", sub, 0)
        if rec_size < rec._min or rec_size % 4:
            raise BTFError(f"{where}: record size {rec_size} is invalid (minimum {rec._min}, multiple of 4)")
        words_fmt = struct.Struct(fmt + "%dI" % (rec._min // 4))
        pos = 4
        while pos < ln:
            if pos + 8 > ln:
                raise BTFError(f"{where}: truncated section header at byte {pos}")
            name_off, num = struct.unpack_from(fmt + "2I", sub, pos)
            pos += 8
            try:
                name = get(name_off)
            except BTFError as e:
                raise BTFError(f"{where}: section name at byte {pos - 8}: {e}") from None
            if num == 0:
                raise BTFError(f"{where}: section {name!r} has no records")
            if pos + num * rec_size > ln:
                raise BTFError(f"{where}: section {name!r} claims {num} records of {rec_size} bytes, past the end")
            recs = out.setdefault(name, [])
            self._sec_offs.setdefault(name, name_off)
            for j in range(num):
                at = pos + j * rec_size
                try:
                    recs.append(rec._from(words_fmt.unpack_from(sub, at), get,
                                          bytes(sub[at + rec._min: at + rec_size])))
                except BTFError as e:
                    raise BTFError(f"{where}: section {name!r} record {j}: {e}") from None
            pos += num * rec_size
        return rec_size

    def to_bytes(self, btf: BTF, byteorder: str = "little") -> bytes:
        """Encode; new strings are added to ``btf`` (so write ``btf`` after this)."""
        fmt = "<" if byteorder == "little" else ">"
        add = btf.strings.add
        subs = []
        for key, recs_by_sec, rec in (("func", self.func_info, FuncInfo), ("line", self.line_info, LineInfo),
                                      ("core", self.core_relos, CoreRelo)):
            if not any(recs_by_sec.values()):
                subs.append(b"")
                continue
            size = self.rec_sizes[key]
            if size < rec._min or size % 4:
                raise BTFError(f".BTF.ext {key}_info: record size {size} is invalid")
            words_fmt = struct.Struct(fmt + "%dI" % (rec._min // 4))
            parts = [struct.pack(fmt + "I", size)]
            for name, recs in recs_by_sec.items():
                if not recs:
                    continue
                parts.append(struct.pack(fmt + "2I", add(name, self._sec_offs.get(name, -1)), len(recs)))
                for r in recs:
                    parts.append(words_fmt.pack(*r._words(add)) + r.extra.ljust(size - rec._min, b"\0"))
            subs.append(b"".join(parts))
        fi, li, cr = subs
        hdr = struct.pack(fmt + "HBBI4I", abi.BTF_MAGIC, abi.BTF_VERSION, self.flags, self.hdr_len,
                          0, len(fi), len(fi), len(li))
        if self.hdr_len >= 32:
            hdr += struct.pack(fmt + "2I", len(fi) + len(li), len(cr))
        elif cr:
            raise BTFError(".BTF.ext: a 24-byte header cannot describe CO-RE relocations")
        return hdr.ljust(self.hdr_len, b"\0") + fi + li + cr

    def __repr__(self) -> str:
        n = [sum(map(len, d.values())) for d in (self.func_info, self.line_info, self.core_relos)]
        return f"<BTFExt func_info={n[0]} line_info={n[1]} core_relos={n[2]}>"
