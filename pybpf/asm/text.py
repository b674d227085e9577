"""The text assembler: llvm-mc / llvm-objdump syntax, plus what bpftool and the verifier log print.

Statements (one per line, several after a label on one line is fine):

* everything :func:`pybpf.asm.disassemble` prints, e.g. ``r0 = 0x1``, ``w1 += w2``, ``if r1 s> 5 goto +3``,
  ``r1 = 0x1234 ll``, ``lock *(u64 *)(r1 + 0) += r2``, ``r0 = be16 r0``, ``r1 = (s8)r2``, ``gotol +5``;
* labels ``name:`` and symbolic targets ``goto name``, ``call name`` (a label: bpf-to-bpf call; a helper name such
  as ``bpf_map_lookup_elem``: helper call; anything else: a call of an external function);
* calls: ``call 1``, ``call bpf_map_lookup_elem``, ``call bpf_map_lookup_elem#1`` (bpftool), ``call pc+3``
  (bpf-to-bpf by offset), ``call kfunc(name)`` / ``call kfunc(0x1234)`` / ``call kfunc(0x1234, 2)`` (kfunc by
  name or BTF id and fd index), ``call name#1234`` (verifier log: a kfunc with its BTF id);
* symbolic ``ld_imm64``: ``r1 = map[name] ll`` (map fd), ``r1 = map_value[name + 16] ll`` (map value at an
  offset), ``r1 = func[name] ll`` (function address), ``r1 = name ll`` (a label's address, else a map fd), and
  llvm's numeric ``ld_pseudo r1, SRC, IMM`` with an optional fourth operand, the second slot's ``imm``;
* comments ``#``, ``//``, ``;``; pasted prefixes ``12: (b7)`` (verifier log, bpftool; an ``(18)`` prefix makes
  ``r1 = 0x5`` a 64-bit load), llvm-objdump's addresses, raw bytes, ``<sym+0x8>`` annotations and headers;
  ``goto pc+3``; ``(r1 +8)``; kernel atomics ``atomic64_fetch_add``, ``atomic64_xchg``, ``atomic64_cmpxchg``;
* the ordered accesses of cpu v4 (llvm 20+, Linux 6.15+): ``w0 = load_acquire((u8 *)(r1 + 0))`` and
  ``store_release((u64 *)(r1 + 8), r2)``, in all four widths.

Directives: ``.text``, ``.section NAME[, flags...]``, ``.globl NAME`` (``.global``), ``.license "GPL"`` and
``.map NAME, type=hash, key_size=4, value_size=8, max_entries=1024[, flags=0]`` (a legacy ``struct
bpf_map_def``); llvm's ``.p2align``, ``.align``, ``.type``, ``.size``, ``.file``, ``.ident``, ``.addrsig`` are
accepted and ignored.  Every error names the line, column and offending token.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ..errors import AsmError
from ..sys.abi import (
    BPF_ABS, BPF_ALU, BPF_ALU64, BPF_ATOMIC, BPF_CMPXCHG, BPF_END, BPF_IND, BPF_JMP, BPF_JMP32, BPF_K,
    BPF_LD, BPF_LDX, BPF_LOAD_ACQ, BPF_MEM, BPF_MEMSX, BPF_MOV, BPF_NEG, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC,
    BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_ST, BPF_STORE_REL, BPF_STX,
    BPF_TO_BE, BPF_TO_LE, BPF_X,
    BPF_XCHG,
)
from .instruction import Instruction, Instructions
from .opcodes import (
    ALU_OPS, ATOMIC_FETCH_OPS, ATOMIC_OPS, BITS_SIZE, CALL, CALLX, EXIT, GOTOL, JA, JMP_OPS, LD_IMM64, MAY_GOTO,
    MOVSX_BITS, SIGNED_ALU_OPS, SWAP_BITS, helper_ids,
)

_TOKENS = re.compile(r'0[xX][0-9a-fA-F]+|\d+|[A-Za-z_.$][\w.$]*|"(?:[^"\\]|\\.)*"|<<=|>>=|[-+*/%|&^=!<>]=|\S')
_COMMENT = re.compile(r"//|;|(?<!\w)#|#(?!\d)")
_PREFIX = re.compile(r"\s*\d+:(?:\s+\(([0-9a-f]{2})\))?(?:\s+(?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?!\S))?")
_ANNOTATION = re.compile(r"\s+<[^\s<>]+>\s*$")
_OBJDUMP_SECTION = re.compile(r"Disassembly of section (.+):\s*$")
_OBJDUMP_SYMBOL = re.compile(r"[0-9a-f]{8,16} <(.+)>:\s*$")
_DIRECTIVE = re.compile(r"\s*(\.[A-Za-z_]\w*)(?![\w.$]*\s*:)\s*(.*)$")
_VERIFIER_NOISE = re.compile(r"\s*(?:from \d+ to \d+:|func#\d+|processed \d+ insns|verification time |stack depth "
                             r"|last_idx |regs=|mark_precise|Validating |Func#|Global function )")
_SWAP = re.compile(r"(be|le|bswap)(16|32|64)$")
_IGNORED_DIRECTIVES = frozenset({".p2align", ".align", ".type", ".size", ".file", ".ident", ".addrsig",
                                 ".addrsig_sym"})

_REGS = {f"{p}{i}": (i, p == "r") for i in range(11) for p in "rw"}
_ALU_TEXT = {text: (op, 0) for op, text in ALU_OPS.items()} | {t: (op, 1) for op, t in SIGNED_ALU_OPS.items()}
_JMP_TEXT = {text: op for op, text in JMP_OPS.items()}
_ATOMIC_TEXT = {text: op for op, text in ATOMIC_OPS.items()}
_FETCH_TEXT = {name: op for op, name in ATOMIC_FETCH_OPS.items()}
_TYPES = {f"{s}{bits}": (s == "s", bits) for bits in (8, 16, 32, 64) for s in "us"}
_MAP_TYPE_PREFIX = "BPF_MAP_TYPE_"

_S32, _S64 = 1 << 31, 1 << 63
_IMM32 = (-_S32, (1 << 32) - 1)
_IMM64 = (-_S64, (1 << 64) - 1)
_OFF16 = (-0x8000, 0x7FFF)


class MapDef:
    """A map declared with ``.map``: the five fields of a legacy ``struct bpf_map_def``."""

    __slots__ = ("name", "type", "key_size", "value_size", "max_entries", "flags")

    def __init__(self, name: str, type: int, key_size: int = 0, value_size: int = 0,  # noqa: A002
                 max_entries: int = 0, flags: int = 0) -> None:
        self.name, self.type, self.key_size, self.value_size = name, type, key_size, value_size
        self.max_entries, self.flags = max_entries, flags

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MapDef) and all(getattr(self, n) == getattr(other, n) for n in MapDef.__slots__)

    def __repr__(self) -> str:
        return "MapDef(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in MapDef.__slots__) + ")"


class Assembly:
    """Everything one text file defines: instructions per section (in order), maps, license, global symbols."""

    __slots__ = ("sections", "maps", "license", "globals")

    def __init__(self) -> None:
        self.sections: dict[str, Instructions] = {}
        self.maps: dict[str, MapDef] = {}
        self.license: str | None = None
        self.globals: list[str] = []


class _Line:
    """A cursor over one statement's tokens that raises :class:`AsmError` pointing at the token it stands on."""

    __slots__ = ("toks", "count", "i", "lineno", "text", "start")

    def __init__(self, toks: list[str], lineno: int, text: str, start: int) -> None:
        self.count = len(toks)
        self.toks = toks + ["", ""]  # peek() looks at most one token ahead past the end
        self.i, self.lineno, self.text, self.start = 0, lineno, text, start

    def error(self, message: str, index: int | None = None) -> AsmError:
        index = self.i if index is None else index
        matches = list(_TOKENS.finditer(self.text, self.start))
        if index < len(matches):
            return AsmError(message, line=self.lineno, column=matches[index].start() + 1, token=matches[index][0])
        return AsmError(message + " (unexpected end of line)", line=self.lineno, column=len(self.text.rstrip()) + 1)

    def peek(self, ahead: int = 0) -> str:
        return self.toks[self.i + ahead]

    def next(self) -> str:
        tok = self.toks[self.i]
        if not tok:
            raise self.error("incomplete statement")
        self.i += 1
        return tok

    def expect(self, *texts: str) -> str:
        if self.toks[self.i] not in texts:
            raise self.error("expected " + " or ".join(repr(t) for t in texts))
        self.i += 1
        return texts[0] if len(texts) == 1 else self.toks[self.i - 1]

    def accept(self, text: str) -> bool:
        if self.toks[self.i] == text:
            self.i += 1
            return True
        return False

    def end(self) -> None:
        if self.i < self.count:
            raise self.error("unexpected token")

    def reg(self, wide: bool | None = None) -> tuple[int, bool]:
        """A register; ``wide`` True demands ``rN``, False ``wN``."""
        reg = _REGS.get(self.toks[self.i])
        if reg is None:
            raise self.error("expected a register r0-r10" + ("" if wide else " or w0-w10"))
        if wide is not None and reg[1] != wide:
            raise self.error(f"expected a {'64-bit rN' if wide else '32-bit wN'} register")
        self.i += 1
        return reg

    def is_number(self) -> bool:
        tok = self.toks[self.i]
        return tok[:1].isdigit() or (tok in ("-", "+") and self.toks[self.i + 1][:1].isdigit())

    def number(self, bounds: tuple[int, int], what: str = "immediate") -> int:
        """A signed or unsigned integer within ``bounds`` (inclusive); hex, decimal or C octal."""
        at = self.i
        sign = -1 if self.accept("-") else 1
        if sign == 1:
            self.accept("+")
        tok = self.peek()
        try:
            if tok[:2] in ("0x", "0X"):
                value = int(tok, 16)
            elif len(tok) > 1 and tok[0] == "0":
                value = int(tok, 8)
            else:
                value = int(tok, 10)
        except ValueError:
            raise self.error(f"expected a number ({what})") from None
        value *= sign
        if not bounds[0] <= value <= bounds[1]:
            raise self.error(f"{what} {value} is out of range [{bounds[0]}, {bounds[1]}]", at)
        self.i += 1
        return value

    def name(self, what: str) -> str:
        tok = self.peek()
        if not tok or not (tok[0].isalpha() or tok[0] in "_.$") or tok in _REGS:
            raise self.error(f"expected {what}")
        self.i += 1
        return tok

    def op(self) -> str:
        """An operator, folding the ``s`` of signed operators (``s>>=``, ``s<``) into it."""
        tok = self.next()
        if tok == "s" and self.peek()[:1] in ("<", ">", "/", "%"):
            return tok + self.next()
        return tok

    def target(self) -> tuple[int, str | None]:
        """A jump or call target: ``+3``/``-3``/``3``, ``pc+3`` (verifier log) or a label."""
        if self.peek() == "pc" and self.peek(1) in ("+", "-"):
            self.i += 1
        if self.is_number():
            return self.number((-_S32, _S32 - 1), "jump offset"), None
        return 0, self.name("a jump target (offset or label)")

    def mem(self) -> tuple[int, int]:
        """``rN + off`` / ``rN - off`` / ``rN`` (the inside of a memory operand)."""
        base, _ = self.reg(wide=True)
        if self.peek() in ("+", "-"):
            return base, self.number(_OFF16, "offset")
        return base, 0

    def typ(self) -> tuple[bool, int]:
        """``(u32 *)``: returns (signed, bits)."""
        self.expect("(")
        t = _TYPES.get(self.peek())
        if t is None:
            raise self.error("expected a type u8, u16, u32, u64, s8, s16 or s32")
        self.i += 1
        self.expect("*")
        self.expect(")")
        return t


def _s32(value: int) -> int:
    return (value & 0xFFFFFFFF) - ((value & _S32) << 1)


def _s64(value: int) -> int:
    return (value & 0xFFFFFFFFFFFFFFFF) - ((value & _S64) << 1)


class _Parser:
    """Parses a whole text into an :class:`Assembly`."""

    def __init__(self) -> None:
        self.result = Assembly()
        self.section: Instructions | None = None
        self.section_name = ".text"
        self.labels: dict[str, tuple[Instructions, int]] = {}
        self.pending: list[tuple[str, int]] = []
        self.aliases: dict[str, str] = {}
        self.deferred: list[Instruction] = []

    # --- lines --------------------------------------------------------------------------------------------

    def parse(self, text: str) -> Assembly:
        for lineno, line in enumerate(text.splitlines(), 1):
            self.line(line, lineno)
        self.flush_labels()
        self.resolve()
        return self.result

    def line(self, line: str, lineno: int) -> None:
        # (each cheap test before a regular expression only skips it where it cannot match: most lines are
        # plain instructions, and this is the assembler's hot loop)
        header = _OBJDUMP_SECTION.match(line) if line.startswith("Disassembly") else None
        if header:  # before comments are cut: a section name may hold '//' (uprobe//bin/bash:readline)
            self.switch(header[1])
            return
        comment = _COMMENT.search(line) if "/" in line or ";" in line or "#" in line else None
        body = line[:comment.start()] if comment else line
        stripped = body.lstrip()
        if not stripped:
            return
        if not body[0].isspace() and self.objdump_header(body):
            return
        hint = None
        start = 0
        prefix = _PREFIX.match(body) if stripped[0].isdigit() else None
        if prefix:
            start = prefix.end()
            rest = body[start:].lstrip()
            if not rest or (prefix[1] is None and rest[0] == "R" and rest[1:2].isdigit()):
                return  # objdump's second ld_imm64 slot, or a verifier state line "5: R0=..."
            hint = int(prefix[1], 16) if prefix[1] else None
        elif _VERIFIER_NOISE.match(body) or body.rstrip().endswith("):"):
            return  # verifier state and summary lines; bpftool's "int prog(struct xdp_md * ctx):"
        annotation = _ANNOTATION.search(body, start) if ">" in body else None
        if annotation:
            body = body[:annotation.start()]
        directive = _DIRECTIVE.match(body, start) if "." in body else None
        if directive:
            self.directive(directive[1], directive[2].strip(), lineno, body, directive.start(2))
            return
        cur = _Line(_TOKENS.findall(body, start), lineno, body, start)
        while cur.peek(1) == ":" and cur.peek() not in _REGS:
            name = cur.name("a label")
            cur.i += 1
            self.label(name, lineno, cur)
        if cur.i < cur.count:
            ins = self.statement(cur, hint)
            cur.end()
            self.emit(ins)

    def objdump_header(self, body: str) -> bool:
        """llvm-objdump's ``file format``, ``Disassembly of section`` and ``<symbol>:`` lines."""
        if "file format" in body:
            return True
        m = _OBJDUMP_SECTION.match(body) if body.startswith("Disassembly") else None
        if m:
            self.switch(m[1])
            return True
        m = _OBJDUMP_SYMBOL.match(body) if body[0] in "0123456789abcdef" else None
        if m:
            self.label(m[1], 0)
            return True
        return False

    # --- sections, labels, directives ---------------------------------------------------------------------

    def switch(self, name: str) -> None:
        self.flush_labels()
        self.section_name = name
        self.section = self.result.sections.get(name)

    def current(self) -> Instructions:
        if self.section is None:
            self.section = self.result.sections.setdefault(self.section_name, Instructions())
        return self.section

    def label(self, name: str, lineno: int, cur: _Line | None = None) -> None:
        """Define ``name`` at the next instruction (``cur`` locates an error)."""
        if name in self.labels or name in self.aliases or any(name == p for p, _ in self.pending):
            if cur is not None:
                raise cur.error(f"label {name!r} is defined twice", cur.i - 2)
            raise AsmError(f"label {name!r} is defined twice", line=lineno, token=name)
        self.pending.append((name, lineno))

    def flush_labels(self) -> None:
        if self.pending:
            name, lineno = self.pending[0]
            raise AsmError(f"label {name!r} is not followed by an instruction in its section", line=lineno or None,
                           token=name)

    def emit(self, ins: Instruction) -> None:
        section = self.current()
        if self.pending:
            first = self.pending[0][0]
            ins.symbol = first
            self.labels[first] = (section, len(section))
            for alias, _ in self.pending[1:]:
                self.aliases[alias] = first
            self.pending.clear()
        section.append(ins)

    def directive(self, name: str, args: str, lineno: int, body: str, column: int) -> None:
        def fail(message: str) -> AsmError:
            return AsmError(message, line=lineno, column=column + 1, token=args or name)

        if name == ".text":
            self.switch(".text")
        elif name == ".section":
            section = args.split(",")[0].strip().strip('"')
            if not section:
                raise fail(".section needs a name")
            self.switch(section)
        elif name in (".globl", ".global"):
            self.result.globals.extend(n.strip() for n in args.split(",") if n.strip())
        elif name == ".license":
            if not (len(args) >= 2 and args[0] == args[-1] == '"'):
                raise fail('.license needs a quoted string: .license "GPL"')
            self.result.license = args[1:-1]
        elif name == ".map":
            self.map_directive(args, fail)
        elif name not in _IGNORED_DIRECTIVES:
            raise AsmError(f"unknown directive {name}", line=lineno, column=body.index(name) + 1, token=name)

    def map_directive(self, args: str, fail: Callable[[str], AsmError]) -> None:
        from ..sys import abi

        parts = [p.strip() for p in args.split(",")]
        name = parts[0]
        if not re.fullmatch(r"[A-Za-z_.$][\w.$]*", name):
            raise fail(".map needs a name: .map NAME, type=hash, key_size=4, value_size=8, max_entries=1")
        values: dict[str, int] = {}
        for part in parts[1:]:
            key, eq, value = (s.strip() for s in part.partition("="))
            if not eq or key not in ("type", "key_size", "value_size", "max_entries", "flags"):
                raise fail(f".map field {part!r} is not type=, key_size=, value_size=, max_entries= or flags=")
            if key == "type" and not value[:1].isdigit():
                full = value if value.startswith(_MAP_TYPE_PREFIX) else _MAP_TYPE_PREFIX + value.upper()
                if full not in abi._ENUMS["bpf_map_type"]:
                    raise fail(f"unknown map type {value!r}")
                values[key] = getattr(abi, full)
                continue
            try:
                values[key] = int(value, 0)
            except ValueError:
                raise fail(f".map field {key} needs a number, not {value!r}") from None
            if not 0 <= values[key] <= 0xFFFFFFFF:
                raise fail(f".map field {key}={values[key]} does not fit 32 bits")
        if "type" not in values:
            raise fail(".map needs type=")
        if name in self.result.maps:
            raise fail(f"map {name!r} is declared twice")
        self.result.maps[name] = MapDef(name, **values)

    # --- references ---------------------------------------------------------------------------------------

    def resolve(self) -> None:
        """Bind names used before their definition: calls (label, helper, kfunc or external function) and
        ``r1 = name ll`` (a label's address or a map); then rename label aliases to the label they alias."""
        helpers = helper_ids()
        for ins in self.deferred:
            name = ins.reference or ""
            name = self.aliases.get(name, name)
            local = name in self.labels
            if ins.code == CALL:
                if not local and name in helpers:  # bpftool's "name#N" has a rewritten N: the name decides
                    ins.src, ins.imm, ins.reference = 0, helpers[name], None
                elif local:
                    ins.src, ins.imm, ins.off = BPF_PSEUDO_CALL, -1, 0
            elif local:
                ins.src = BPF_PSEUDO_FUNC
        if self.aliases:
            for section in self.result.sections.values():
                for ins in section:
                    if ins.reference in self.aliases:
                        ins.reference = self.aliases[ins.reference]

    # --- statements ---------------------------------------------------------------------------------------

    def statement(self, cur: _Line, hint: int | None) -> Instruction:
        tok = cur.peek()
        if tok in _REGS:
            return self.assignment(cur, hint)
        handler = _KEYWORDS.get(tok)
        if handler is None:
            raise cur.error("unknown instruction")
        cur.i += 1
        return handler(self, cur)

    def exit_(self, cur: _Line) -> Instruction:
        return Instruction(EXIT)

    def goto(self, cur: _Line) -> Instruction:
        off, ref = cur.target()
        if not ref and not _OFF16[0] <= off <= _OFF16[1]:
            raise cur.error(f"jump offset {off} does not fit 16 bits; use gotol", cur.i - 1)
        return Instruction(JA, off=off, reference=ref)

    def gotol(self, cur: _Line) -> Instruction:
        imm, ref = cur.target()
        return Instruction(GOTOL, imm=imm, reference=ref)

    def may_goto(self, cur: _Line) -> Instruction:
        ins = self.goto(cur)
        ins.code = MAY_GOTO
        return ins

    def cond(self, cur: _Line) -> Instruction:
        dst, wide = cur.reg()
        at = cur.i
        op = _JMP_TEXT.get(cur.op())
        if op is None:
            raise cur.error("expected a comparison (==, !=, >, >=, <, <=, s>, s>=, s<, s<=, &)", at)
        cls = BPF_JMP if wide else BPF_JMP32
        if cur.peek() in _REGS:
            src, _ = cur.reg(wide)
            ins = Instruction(cls | op | BPF_X, dst, src)
        else:
            ins = Instruction(cls | op | BPF_K, dst, imm=_s32(cur.number(_IMM32)))
        cur.expect("goto")
        off, ins.reference = cur.target()
        if not ins.reference and not _OFF16[0] <= off <= _OFF16[1]:
            raise cur.error(f"jump offset {off} does not fit 16 bits", cur.i - 1)
        ins.off = off
        return ins

    def call(self, cur: _Line) -> Instruction:
        if cur.peek() == "kfunc" and cur.peek(1) == "(":
            cur.i += 2
            if cur.is_number():
                ins = Instruction(CALL, src=BPF_PSEUDO_KFUNC_CALL, imm=_s32(cur.number(_IMM32, "BTF id")))
            else:
                ins = Instruction(CALL, src=BPF_PSEUDO_KFUNC_CALL, reference=cur.name("a kfunc name or BTF id"))
            if cur.accept(","):
                ins.off = cur.number(_OFF16, "BTF fd index")
            cur.expect(")")
            return ins
        if cur.peek() == "pc" and cur.peek(1) in ("+", "-"):
            cur.i += 1
            return Instruction(CALL, src=BPF_PSEUDO_CALL, imm=_s32(cur.number(_IMM32, "call offset")))
        if cur.is_number():
            return Instruction(CALL, imm=_s32(cur.number(_IMM32, "helper id")))
        ins = Instruction(CALL, src=BPF_PSEUDO_CALL, imm=-1, reference=cur.name("a helper, function or label"))
        if cur.accept("#"):  # bpftool/verifier "name#id": a helper by name, or a kfunc with its BTF id
            ins.src, ins.imm = BPF_PSEUDO_KFUNC_CALL, _s32(cur.number(_IMM32, "id"))
        self.deferred.append(ins)
        return ins

    def callx(self, cur: _Line) -> Instruction:
        dst, _ = cur.reg(wide=True)
        return Instruction(CALLX, dst)

    def lock(self, cur: _Line) -> Instruction:
        cur.expect("*")
        _, bits = self.atomic_type(cur)
        cur.expect("(")
        dst, off = cur.mem()
        cur.expect(")")
        at = cur.i
        op = _ATOMIC_TEXT.get(cur.op())
        if op is None:
            raise cur.error("expected an atomic operator +=, |=, &= or ^=", at)
        src, _ = cur.reg(bits == 64)
        return Instruction(BPF_STX | BPF_ATOMIC | BITS_SIZE[bits], dst, src, off, op)

    def atomic_type(self, cur: _Line) -> tuple[bool, int]:
        at = cur.i
        signed, bits = cur.typ()
        if signed or bits not in (32, 64):
            raise cur.error("atomic operations are 32 or 64 bits wide: use u32 or u64", at + 1)
        return signed, bits

    def ordered_type(self, cur: _Line) -> int:
        """``(u16 *)`` of load_acquire/store_release: the size field (any width, unsigned)."""
        at = cur.i
        signed, bits = cur.typ()
        if signed:
            raise cur.error("load_acquire and store_release take an unsigned type", at + 1)
        return BITS_SIZE[bits]

    def load_acquire(self, cur: _Line, dst: int, wide: bool) -> Instruction:
        """``w0 = load_acquire((u8 *)(r1 + 0))``; a 64-bit one needs an rN destination."""
        size = self.ordered_type(cur)
        if size == BITS_SIZE[64] and not wide:
            raise cur.error("a 64-bit load_acquire needs an rN destination", 0)
        cur.expect("(")
        base, off = cur.mem()
        cur.expect(")")
        cur.expect(")")
        return Instruction(BPF_STX | BPF_ATOMIC | size, dst, base, off, BPF_LOAD_ACQ)

    def store_release(self, cur: _Line) -> Instruction:
        """``store_release((u64 *)(r1 + 0), r2)``; a 64-bit one needs an rN source."""
        cur.expect("(")
        size = self.ordered_type(cur)
        cur.expect("(")
        base, off = cur.mem()
        cur.expect(")")
        cur.expect(",")
        src, _ = cur.reg(True if size == BITS_SIZE[64] else None)
        cur.expect(")")
        return Instruction(BPF_STX | BPF_ATOMIC | size, base, src, off, BPF_STORE_REL)

    def store(self, cur: _Line) -> Instruction:
        at = cur.i
        signed, bits = cur.typ()
        if signed:
            raise cur.error("stores take an unsigned type", at + 1)
        cur.expect("(")
        dst, off = cur.mem()
        cur.expect(")")
        cur.expect("=")
        size = BITS_SIZE[bits]
        if cur.peek() in _REGS:
            src, _ = cur.reg(True if bits == 64 else None)
            return Instruction(BPF_STX | BPF_MEM | size, dst, src, off)
        return Instruction(BPF_ST | BPF_MEM | size, dst, off=off, imm=_s32(cur.number(_IMM32)))

    def ld_pseudo(self, cur: _Line) -> Instruction:
        dst, _ = cur.reg(wide=True)
        cur.expect(",")
        src = cur.number((0, 15), "pseudo source")
        cur.expect(",")
        ref = None
        if cur.is_number():
            low = cur.number(_IMM32) & 0xFFFFFFFF
        else:
            low, ref = 0, cur.name("an immediate or a symbol")
        high = cur.number(_IMM32) & 0xFFFFFFFF if cur.accept(",") else 0
        return Instruction(LD_IMM64, dst, src, imm=_s64(high << 32 | low), reference=ref)

    def assignment(self, cur: _Line, hint: int | None) -> Instruction:
        dst, wide = cur.reg()
        at = cur.i
        op = cur.op()
        if op == "=":
            return self.rhs(cur, dst, wide, hint)
        alu = _ALU_TEXT.get(op)
        if alu is None:
            raise cur.error("expected '=' or an ALU operator (+=, -=, *=, /=, s/=, %=, s%=, |=, &=, ^=, <<=, >>=, "
                            "s>>=)", at)
        code, off = alu
        cls = BPF_ALU64 if wide else BPF_ALU
        if cur.peek() in _REGS:
            src, _ = cur.reg(wide)
            return Instruction(cls | code | BPF_X, dst, src, off)
        return Instruction(cls | code | BPF_K, dst, off=off, imm=_s32(cur.number(_IMM32)))

    def rhs(self, cur: _Line, dst: int, wide: bool, hint: int | None) -> Instruction:
        tok = cur.peek()
        cls = BPF_ALU64 if wide else BPF_ALU
        if tok == "*":
            cur.i += 1
            return self.load(cur, dst, wide)
        if tok in _REGS:
            src, _ = cur.reg(wide)
            return Instruction(cls | BPF_MOV | BPF_X, dst, src)
        if tok == "-" and cur.peek(1) in _REGS:
            cur.i += 1
            src, _ = cur.reg(wide)
            if src != dst:
                raise cur.error("negation works in place: write rN = -rN", cur.i - 1)
            return Instruction(cls | BPF_NEG | BPF_K, dst)
        if tok == "(":
            return self.movsx(cur, dst, wide)
        if cur.is_number():
            value = cur.number(_IMM64)
            if cur.accept("ll") or hint == LD_IMM64:
                if not wide:
                    raise cur.error("a 64-bit load needs an rN destination", 0)
                return Instruction(LD_IMM64, dst, imm=_s64(value))
            if value > _IMM32[1] or value < _IMM32[0]:
                raise cur.error(f"immediate {value} does not fit 32 bits (add 'll' for a 64-bit load)", cur.i - 1)
            return Instruction(cls | BPF_MOV | BPF_K, dst, imm=_s32(value))
        swap = _SWAP.match(tok)
        if swap:
            return self.swap(cur, dst, wide, swap[1], int(swap[2]))
        method = _FUNCTIONS.get(tok)
        if method is not None and cur.peek(1) == "(":
            cur.i += 2
            return method(self, cur, dst, wide)
        if tok in ("map", "map_value", "func") and cur.peek(1) == "[":
            return self.symbolic_load(cur, dst, wide)
        name = cur.name("an operand")
        if not wide:
            raise cur.error("a 64-bit load needs an rN destination", 0)
        cur.expect("ll")
        ins = Instruction(LD_IMM64, dst, BPF_PSEUDO_MAP_FD, reference=name)
        self.deferred.append(ins)
        return ins

    def load(self, cur: _Line, dst: int, wide: bool) -> Instruction:
        at = cur.i
        signed, bits = cur.typ()
        size = BITS_SIZE[bits]
        if cur.accept("skb"):
            if signed or bits == 64 or dst != 0 or not wide:
                raise cur.error("packet loads are r0 = *(u8|u16|u32 *)skb[...]", 0 if dst or not wide else at + 1)
            cur.expect("[")
            if cur.peek() in _REGS:
                src, _ = cur.reg(wide=True)
                imm = _s32(cur.number(_IMM32, "offset")) if cur.peek() in ("+", "-") else 0
                ins = Instruction(BPF_LD | BPF_IND | size, src=src, imm=imm)
            else:
                ins = Instruction(BPF_LD | BPF_ABS | size, imm=_s32(cur.number(_IMM32, "offset")))
            cur.expect("]")
            return ins
        cur.expect("(")
        src, off = cur.mem()
        cur.expect(")")
        if signed:
            if bits == 64 or not wide:
                raise cur.error("sign-extending loads are rN = *(s8|s16|s32 *)(...)", at + 1 if bits == 64 else 0)
            return Instruction(BPF_LDX | BPF_MEMSX | size, dst, src, off)
        if bits == 64 and not wide:
            raise cur.error("a 64-bit load needs an rN destination", 0)
        return Instruction(BPF_LDX | BPF_MEM | size, dst, src, off)

    def movsx(self, cur: _Line, dst: int, wide: bool) -> Instruction:
        cur.i += 1
        at = cur.i
        t = _TYPES.get(cur.next())
        cls = BPF_ALU64 if wide else BPF_ALU
        if t is None or not t[0] or t[1] not in MOVSX_BITS[cls]:
            raise cur.error("expected (s8), (s16)" + (" or (s32)" if wide else ""), at)
        cur.expect(")")
        src, _ = cur.reg(wide)
        return Instruction(cls | BPF_MOV | BPF_X, dst, src, t[1])

    def swap(self, cur: _Line, dst: int, wide: bool, kind: str, bits: int) -> Instruction:
        if not wide:
            raise cur.error("byte swaps are written rN = be16 rN", 0)
        cur.i += 1
        src, _ = cur.reg(wide=True)
        if src != dst or bits not in SWAP_BITS:
            raise cur.error("byte swaps work in place: rN = be16 rN", cur.i - 1)
        if kind == "bswap":
            return Instruction(BPF_ALU64 | BPF_END | BPF_TO_LE, dst, imm=bits)
        return Instruction(BPF_ALU | BPF_END | (BPF_TO_BE if kind == "be" else BPF_TO_LE), dst, imm=bits)

    def symbolic_load(self, cur: _Line, dst: int, wide: bool) -> Instruction:
        kind = cur.next()
        if not wide:
            raise cur.error("a 64-bit load needs an rN destination", 0)
        cur.expect("[")
        if cur.peek(1) == ":":
            raise cur.error("map ids printed by bpftool cannot be assembled: name the map, map[NAME]")
        name = cur.name("a map or function name")
        high = 0
        if kind == "map_value" and cur.peek() in ("+", "-"):
            high = cur.number(_IMM32, "value offset") & 0xFFFFFFFF
        cur.expect("]")
        cur.accept("ll")
        src = {"map": BPF_PSEUDO_MAP_FD, "map_value": BPF_PSEUDO_MAP_VALUE, "func": BPF_PSEUDO_FUNC}[kind]
        return Instruction(LD_IMM64, dst, src, imm=_s64(high << 32), reference=name)

    def fetch(self, cur: _Line, dst: int, wide: bool, op: int) -> Instruction:
        """``atomic_fetch_add((u64 *)(r1 + 0), r2)`` and the kernel's ``atomic64_xchg``/``atomic64_cmpxchg``."""
        _, bits = self.atomic_type(cur)
        if (bits == 64) != wide:
            raise cur.error(f"a {bits}-bit atomic needs {'rN' if bits == 64 else 'wN'} registers", 0)
        cur.expect("(")
        base, off = cur.mem()
        cur.expect(")")
        return self.atomic_tail(cur, dst, wide, op, base, off, bits)

    def atomic_tail(self, cur: _Line, dst: int, wide: bool, op: int, base: int, off: int, bits: int) -> Instruction:
        cur.expect(",")
        if op == BPF_CMPXCHG:
            at = cur.i
            old, _ = cur.reg(wide)
            if old != 0 or dst != 0:
                raise cur.error("cmpxchg compares with and returns r0: r0 = cmpxchg_64(rN + off, r0, rM)", at)
            cur.expect(",")
        src, _ = cur.reg(wide)
        if op != BPF_CMPXCHG and src != dst:
            raise cur.error("the fetched value goes back to the source register", cur.i - 1)
        cur.expect(")")
        return Instruction(BPF_STX | BPF_ATOMIC | BITS_SIZE[bits], base, src, off, op)

    def llvm_xchg(self, cur: _Line, dst: int, wide: bool, op: int, bits: int) -> Instruction:
        """llvm's ``xchg_64(r1 + 0, r2)`` and ``cmpxchg32_32(r1 + 0, w0, w2)``."""
        if (bits == 64) != wide:
            raise cur.error(f"{'xchg_64/cmpxchg_64 need rN' if wide else 'xchg32_32/cmpxchg32_32 need wN'} "
                            "registers", 0)
        base, off = cur.mem()
        return self.atomic_tail(cur, dst, wide, op, base, off, bits)

    def addr_space_cast(self, cur: _Line, dst: int, wide: bool) -> Instruction:
        if not wide:
            raise cur.error("addr_space_cast needs rN registers", 0)
        src, _ = cur.reg(wide=True)
        cur.expect(",")
        dst_as = cur.number((0, 0xFFFF), "address space")
        cur.expect(",")
        src_as = cur.number((0, 0xFFFF), "address space")
        cur.expect(")")
        return Instruction(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 1, _s32(dst_as << 16 | src_as))


_Method = Callable[[_Parser, _Line, int, bool], Instruction]


def _fetch_method(op: int, kernel64: bool | None = None) -> _Method:
    def method(self: _Parser, cur: _Line, dst: int, wide: bool) -> Instruction:
        if kernel64 is not None and kernel64 != wide:
            raise cur.error("atomic64_* take rN registers, atomic_* wN registers", cur.i - 2)
        return self.fetch(cur, dst, wide, op)
    return method


def _xchg_method(op: int, bits: int) -> _Method:
    def method(self: _Parser, cur: _Line, dst: int, wide: bool) -> Instruction:
        return self.llvm_xchg(cur, dst, wide, op, bits)
    return method


_KEYWORDS = {
    "exit": _Parser.exit_, "goto": _Parser.goto, "gotol": _Parser.gotol, "may_goto": _Parser.may_goto,
    "if": _Parser.cond, "call": _Parser.call, "callx": _Parser.callx, "lock": _Parser.lock, "*": _Parser.store,
    "ld_pseudo": _Parser.ld_pseudo, "store_release": _Parser.store_release,
}
_FUNCTIONS = {
    **{f"atomic_fetch_{name}": _fetch_method(op) for name, op in _FETCH_TEXT.items()},
    **{f"atomic64_fetch_{name}": _fetch_method(op, True) for name, op in _FETCH_TEXT.items()},
    "atomic_xchg": _fetch_method(BPF_XCHG, False), "atomic64_xchg": _fetch_method(BPF_XCHG, True),
    "atomic_cmpxchg": _fetch_method(BPF_CMPXCHG, False), "atomic64_cmpxchg": _fetch_method(BPF_CMPXCHG, True),
    "xchg_64": _xchg_method(BPF_XCHG, 64), "xchg32_32": _xchg_method(BPF_XCHG, 32),
    "cmpxchg_64": _xchg_method(BPF_CMPXCHG, 64), "cmpxchg32_32": _xchg_method(BPF_CMPXCHG, 32),
    "addr_space_cast": _Parser.addr_space_cast, "load_acquire": _Parser.load_acquire,
}


def parse_assembly(text: str) -> Assembly:
    """Parse a whole assembly file: instructions per section (symbols kept), ``.map`` declarations, the
    ``.license`` and ``.globl`` names.  Raises :class:`AsmError` with line, column and token."""
    return _Parser().parse(text)


def parse(text: str) -> Instructions:
    """Parse assembly text into :class:`Instructions` with labels and references kept symbolic.

    The text must put its instructions in one section (use :func:`parse_assembly` for several)."""
    sections = [s for s in parse_assembly(text).sections.values() if s]
    if len(sections) > 1:
        raise AsmError("the text has instructions in several sections: use parse_assembly()")
    return sections[0] if sections else Instructions()


def assemble(text: str, maps: Mapping[str, int] | None = None) -> bytes:
    """Assemble text into raw little-endian instructions; ``maps`` gives the fd of each referenced map."""
    return parse(text).encode(maps)
