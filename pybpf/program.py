"""Program: a BPF program loaded into the kernel (a live object owning its fd)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

from .sys import abi, syscall
from .sys.fd import FD, FDOwner
from .sys.names import enum_value

if TYPE_CHECKING:
    from .asm import Instruction, Instructions
    from .btf import BTF
    from .link import Link
    from .loader.spec import Line
    from .maps.map import Map


def prog_type_of(value: int | str) -> int:
    """A program type from an int or a name: ``"xdp"``, ``"socket_filter"`` or ``"BPF_PROG_TYPE_XDP"``."""
    return enum_value("bpf_prog_type", "BPF_PROG_TYPE_", value)


def attach_type_of(value: int | str) -> int:
    """An attach type from an int or a name: ``"cgroup_inet_ingress"`` or ``"BPF_CGROUP_INET_INGRESS"``."""
    return enum_value("bpf_attach_type", "BPF_", value)


class TestRunResult(NamedTuple):
    """What BPF_PROG_TEST_RUN reports: the program's return value, the packet and context after the run,
    and the average duration of one run in nanoseconds."""

    retval: int
    data: bytes
    ctx: bytes
    duration_ns: int


class ProgramInfo(NamedTuple):
    """The kernel's view of a loaded program (subset of ``struct bpf_prog_info``)."""

    id: int
    type: int
    name: str
    tag: str
    xlated_len: int
    jited_len: int
    map_ids: tuple[int, ...]
    btf_id: int
    load_time_ns: int
    run_time_ns: int
    run_cnt: int
    verified_insns: int
    attach_btf_obj_id: int = 0  # the kernel BTF object (vmlinux or a module's) of the attach target (5.16+)
    attach_btf_id: int = 0  # the attach target's type id in it (fentry/fexit/tp_btf/lsm/iter)

    @property
    def type_name(self) -> str:
        """``xdp``, ``tracepoint``... (the kernel name without ``BPF_PROG_TYPE_``)."""
        try:
            return abi.bpf_prog_type(self.type).name[len("BPF_PROG_TYPE_"):].lower()
        except ValueError:
            return str(self.type)


class Program(FDOwner):
    """A loaded BPF program.  Owns its fd: close it with :meth:`close` or a ``with`` block (or let the garbage
    collector do it).  Create one with :meth:`load`, :meth:`from_pin`, :meth:`from_id` or ``pybpf.load()``."""

    def __init__(self, fd: FD | int, name: str = "", prog_type: int = 0, *, section: str = "",
                 expected_attach_type: int = 0, attach_to: str = "", verifier_log: str = ""):
        self._fd = fd if isinstance(fd, FD) else FD(fd)
        self.name = name
        self.type = prog_type
        self.section = section
        self.expected_attach_type = expected_attach_type
        self.attach_to = attach_to
        self.verifier_log = verifier_log
        self.object_maps: Mapping[str, Map] = {}  # the maps of the object it was loaded from (by pybpf.load)

    @classmethod
    def load(
        cls,
        insns: bytes | Instructions | Sequence[Instruction] | str,
        prog_type: int | str,
        *,
        license: str = "GPL",
        name: str = "",
        expected_attach_type: int | str = 0,
        maps: dict[str, Any] | None = None,
        log_level: int = 0,
        **load_attrs: Any,
    ) -> Program:
        """Load instructions (raw bytes, an :class:`~pybpf.asm.Instructions` list, or assembler text as a
        ``str``) as a program of ``prog_type``.

        ``maps`` gives the maps (:class:`~pybpf.Map` or fd) that symbolic map references in the instructions
        name.  Other keywords are BPF_PROG_LOAD fields (``prog_flags``, ``kern_version``, ``attach_btf_id``,
        ``attach_prog_fd``, ``prog_btf_fd``, ``func_info``...).  A rejected program raises
        :class:`~pybpf.errors.VerifierError` carrying the verifier's whole log.
        """
        code = _encode(insns, maps)
        ptype = prog_type_of(prog_type)
        eat = attach_type_of(expected_attach_type)
        fd, log = syscall.prog_load(ptype, code, license, name, expected_attach_type=eat, log_level=log_level,
                                    **load_attrs)
        return cls(fd, name, ptype, expected_attach_type=eat, verifier_log=log)

    @classmethod
    def from_pin(cls, path: str) -> Program:
        """Open a program pinned in bpffs."""
        prog = cls(syscall.obj_get(path))
        prog._fill_from_info()
        return prog

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        """Open a loaded program by its kernel id."""
        prog = cls(syscall.fd_by_id("prog", prog_id))
        prog._fill_from_info()
        return prog

    def _fill_from_info(self) -> None:
        info = self.info()
        self.name, self.type = info.name, info.type

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd.fd}"
        return f"<Program {self.name!r} type={self.type} {state}>"

    def attach(self, target: Any = None, **options: Any) -> Link:
        """Attach the program as its SEC() name says (libbpf's auto-attach), or to ``target`` (an interface,
        cgroup, socket... or a tracepoint/function overriding the section's); see :func:`pybpf.link.attach`."""
        from .link.auto import attach

        return attach(self, target, **options)

    def pin(self, path: str) -> None:
        """Pin the program at ``path`` in bpffs."""
        syscall.obj_pin(self.fd, path)

    def test_run(self, data: bytes = b"", ctx: bytes | None = None, repeat: int = 0, *, flags: int = 0,
                 cpu: int = 0, data_size_out: int | None = None, ctx_size_out: int | None = None) -> TestRunResult:
        """Run the program once (or ``repeat`` times) on ``data``/``ctx`` in the kernel (BPF_PROG_TEST_RUN)."""
        retval, out, cout, duration = syscall.prog_test_run(
            self.fd, data, ctx, repeat, flags, cpu, data_size_out=data_size_out, ctx_size_out=ctx_size_out)
        return TestRunResult(retval, out, cout, duration)

    def info(self) -> ProgramInfo:
        """The kernel's information about this program (BPF_OBJ_GET_INFO_BY_FD)."""
        from .sys._cffi_abi import ffi

        info = syscall.obj_info(self.fd, "prog")
        n = info.nr_map_ids
        map_ids: tuple[int, ...] = ()
        if n:
            ids = ffi.new("__u32[]", n)
            info2 = ffi.new("struct bpf_prog_info *")
            info2.nr_map_ids, info2.map_ids = n, syscall.address(ids)
            syscall.obj_info(self.fd, "prog", info2)
            map_ids = tuple(ids[0:min(n, info2.nr_map_ids)])
        return ProgramInfo(
            id=info.id, type=info.type, name=ffi.string(info.name).decode(errors="replace"),
            tag=bytes(ffi.buffer(info.tag)).hex(), xlated_len=info.xlated_prog_len, jited_len=info.jited_prog_len,
            map_ids=map_ids, btf_id=info.btf_id, load_time_ns=info.load_time, run_time_ns=info.run_time_ns,
            run_cnt=info.run_cnt, verified_insns=info.verified_insns, attach_btf_obj_id=info.attach_btf_obj_id,
            attach_btf_id=info.attach_btf_id)

    def xlated(self) -> bytes:
        """The instructions as the kernel holds them after verification (``bpftool prog dump xlated``)."""
        return self._dump("xlated")

    def jited(self) -> bytes:
        """The JIT-compiled machine code (empty when the JIT is off or the image is hidden)."""
        return self._dump("jited")

    def btf(self) -> BTF | None:
        """The program's BTF as the kernel holds it (fetched by the program's ``btf_id``), or None for a
        program loaded without BTF."""
        btf_id = syscall.obj_info(self.fd, "prog").btf_id
        if not btf_id:
            return None
        from .btf import BTF

        return BTF.parse(syscall.btf_data(btf_id))

    def line_info(self) -> dict[int, Line]:
        """The kernel's line info for :meth:`xlated` (``bpftool prog dump xlated`` annotations): instruction
        slot -> :class:`~pybpf.loader.Line` (file, source text, line, column from the program's BTF).  Empty
        when the program was loaded without line info or the kernel does not show it to us."""
        from .errors import BTFError
        from .loader.spec import Line
        from .sys._cffi_abi import ffi

        info = syscall.obj_info(self.fd, "prog")
        n, rec_size = info.nr_line_info, info.line_info_rec_size
        if not n or not info.btf_id or rec_size < ffi.sizeof("struct bpf_line_info"):
            return {}
        buf = ffi.new("char[]", n * rec_size)
        info2 = ffi.new("struct bpf_prog_info *")
        info2.nr_line_info, info2.line_info_rec_size, info2.line_info = n, rec_size, syscall.address(buf)
        syscall.obj_info(self.fd, "prog", info2)
        if not info2.line_info:  # the kernel hides raw dumps from us (bpf_dump_raw_ok)
            return {}
        n = min(n, info2.nr_line_info)
        btf = self.btf()
        assert btf is not None
        out = {}
        for i in range(n):
            rec = ffi.cast("struct bpf_line_info *", ffi.addressof(buf, i * rec_size))
            try:
                file, text = btf.strings.get(rec.file_name_off), btf.strings.get(rec.line_off)
            except BTFError as e:
                raise BTFError(f"program {self.name or info.id}: line info #{i}: {e}") from None
            out[rec.insn_off] = Line(file, text, rec.line_col >> 10, rec.line_col & 0x3FF, rec.file_name_off,
                                     rec.line_off)
        return out

    def _dump(self, which: str) -> bytes:
        from .sys._cffi_abi import ffi

        info = syscall.obj_info(self.fd, "prog")
        size = getattr(info, f"{which}_prog_len")
        if not size:
            return b""
        buf = ffi.new("char[]", size)
        info2 = ffi.new("struct bpf_prog_info *")
        setattr(info2, f"{which}_prog_len", size)
        setattr(info2, f"{which}_prog_insns", syscall.address(buf))
        syscall.obj_info(self.fd, "prog", info2)
        return ffi.buffer(buf, size)[:]


def _encode(insns: bytes | Instructions | Sequence[Instruction] | str, maps: dict[str, Any] | None) -> bytes:
    """Instruction bytes from raw bytes, assembler text or Instructions, with map references set to fds."""
    if isinstance(insns, (bytes, bytearray, memoryview)):
        return bytes(insns)
    from .asm import Instructions, parse

    if isinstance(insns, str):
        insns = parse(insns)
    elif not isinstance(insns, Instructions):
        insns = Instructions(insns)
    fds = {name: (m if isinstance(m, int) else m.fd) for name, m in (maps or {}).items()}
    return insns.encode(maps=fds)
