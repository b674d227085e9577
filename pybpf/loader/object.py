"""ObjectSpec -> :class:`Object`: the object's BTF loaded into the kernel, maps created (or reused from pins) and
filled, every program linked, CO-RE-relocated and loaded -- in libbpf's order and with libbpf's attributes.

A failure at any step closes everything already created, so nothing leaks.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import (
    BPFError, BTFError, KernelError, LinkError, NotSupported, SectionError, VerifierError, kernel_error,
)
from ..sys import abi
from .spec import MAP_IN_MAP_TYPES, NO_BTF_MAP_TYPES, PIN_BY_NAME, MapSpec, ObjectSpec, ProgramSpec

if TYPE_CHECKING:
    from ..btf import BTF
    from ..link import Link
    from ..maps.map import Map
    from ..program import Program
    from ..sys.fd import FD

DEFAULT_PIN_ROOT = "/sys/fs/bpf"
_FUNC_INFO = struct.Struct("<II")
_LINE_INFO = struct.Struct("<IIII")


class Object:
    """A loaded object: ``programs`` (name -> :class:`~pybpf.Program`) and ``maps`` (name -> :class:`~pybpf.Map`;
    global-data maps under their kernel name, e.g. ``hello.rodata``, also found by section with :meth:`map`).

    Owns every fd: :meth:`close` (or a ``with`` block) releases them all."""

    def __init__(self, spec: ObjectSpec, programs: dict[str, Program], maps: dict[str, Map],
                 btf_fd: FD | None = None, btf_error: str = "", struct_ops: dict[str, bytes] | None = None):
        self.spec = spec
        self._struct_ops = struct_ops or {}  # struct_ops map name -> the value that registers it
        self.name = spec.name
        self.programs = programs
        self.maps = maps
        self.btf_fd = btf_fd
        self.btf_error = btf_error  # why the object's BTF could not be loaded ("" if it was, or had none)
        for prog in programs.values():
            prog.object_maps = maps  # what attach_usdt looks its maps up in

    def map(self, name: str) -> Map:
        """The map called ``name``, or the global-data map of section ``name`` (``".rodata"``)."""
        if name in self.maps:
            return self.maps[name]
        for m in self.spec.maps.values():
            if m.section == name and m.internal and m.name in self.maps:
                return self.maps[m.name]
        raise KeyError(f"{self.name}: no map {name!r} (maps: {', '.join(self.maps) or 'none'})")

    @property
    def struct_ops_maps(self) -> list[str]:
        """The struct_ops maps (``SEC(".struct_ops")`` variables), registered by :meth:`attach_struct_ops`."""
        return list(self._struct_ops)

    def attach_struct_ops(self, name: str) -> Link:
        """Register struct_ops map ``name`` (a ``SEC(".struct_ops")``/``".struct_ops.link"`` variable, e.g. a
        ``tcp_congestion_ops``) with the kernel; closing the link unregisters it (libbpf's
        ``bpf_map__attach_struct_ops``)."""
        from ..link.struct_ops import attach_struct_ops

        if name not in self._struct_ops:
            known = ", ".join(self._struct_ops) or "none"
            raise KeyError(f"{self.name}: no struct_ops map {name!r} (struct_ops maps: {known})")
        return attach_struct_ops(self.maps[name], self._struct_ops[name])

    def pin_programs(self, directory: str) -> dict[str, str]:
        """Pin every program as ``directory/<name>`` (``bpftool prog loadall`` layout); return name -> path."""
        os.makedirs(directory, exist_ok=True)
        out = {}
        for name, prog in self.programs.items():
            path = os.path.join(directory, name)
            prog.pin(path)
            out[name] = path
        return out

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return all(p.closed for p in self.programs.values()) and all(m.closed for m in self.maps.values())

    def close(self) -> None:
        """Close every program, map and the BTF object."""
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()
        if self.btf_fd is not None:
            self.btf_fd.close()

    def __enter__(self) -> Object:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Object {self.name!r} programs={list(self.programs)} maps={list(self.maps)}>"


def load(source: str | os.PathLike[str] | bytes | ObjectSpec, *,
         globals: Mapping[str, Any] | None = None,
         programs: Iterable[str] | None = None,
         max_entries: Mapping[str, int] | None = None,
         pin_root: str = DEFAULT_PIN_ROOT,
         kernel_btf: str | BTF | None = None,
         log_level: int = 0,
         name: str | None = None,
         attach_targets: Mapping[str, Program | tuple[Program, str]] | None = None) -> Object:
    """Load an eBPF object (a path, its bytes or an :class:`ObjectSpec`) into the kernel, as libbpf would.

    ``globals`` sets ``const volatile`` (``.rodata``) and ``.data``/``.bss`` variables by name before load;
    ``programs`` names the programs to load (default: every program whose section has no ``?``);
    ``max_entries`` overrides map sizes by map name; maps with ``pinning = LIBBPF_PIN_BY_NAME`` are pinned
    under (or reused from) ``pin_root``; ``kernel_btf`` is the BTF CO-RE relocates against (default: the running
    kernel's); ``log_level`` > 0 keeps the verifier log in each ``Program.verifier_log``.  ``attach_targets``
    gives, by program name, the loaded BPF program an ``freplace`` (or ``fentry``/``fexit``) program attaches to,
    with the function in it (default: the section's, ``SEC("freplace/handler")``), as libbpf's
    ``bpf_program__set_attach_target``.  A spec passed in is not modified."""
    from .reader import ObjectFile

    spec = source.copy() if isinstance(source, ObjectSpec) else ObjectFile(source, name)
    for var, value in (globals or {}).items():
        spec.set_global(var, value)
    for map_name, n in (max_entries or {}).items():
        if map_name not in spec.maps:
            raise LinkError(f"{spec.name}: max_entries given for unknown map {map_name!r}")
        spec.maps[map_name].max_entries = n
    if programs is not None:
        wanted = set(programs)
        unknown = wanted - set(spec.programs)
        if unknown:
            raise LinkError(f"{spec.name}: no program(s) {', '.join(sorted(unknown))} "
                            f"(programs: {', '.join(spec.programs)})")
        for p in spec.programs.values():
            p.autoload = p.name in wanted
    targets = {}
    for prog_name, target in (attach_targets or {}).items():
        if prog_name not in spec.programs:
            raise LinkError(f"{spec.name}: attach target given for unknown program {prog_name!r}")
        targets[prog_name] = target if isinstance(target, tuple) else (target, spec.programs[prog_name].attach_to)
    return _Loader(spec, pin_root, kernel_btf, log_level, targets).run()


def _feature(name: str) -> bool:
    from ..sys import probes

    if probes.feature(name):
        return True
    probes.require_bpf()  # a probe fails too when bpf() is refused outright: say that, not "unsupported"
    return False


def write_slot(mp: Map, index: int, value: bytes) -> None:
    """Store raw ``value`` bytes at index ``index`` of the array-like ``mp``, whatever codecs it uses."""
    from ..sys import syscall

    syscall.map_update_elem(mp.fd, struct.pack("<I", index), value, detail=f"map {mp.name!r}, slot {index}")


def _btf_features() -> Any:
    """The BTF kinds this kernel accepts, as :class:`pybpf.btf.sanitize.Feature` flags (probed once)."""
    from ..btf.sanitize import Feature

    out = Feature.NONE
    for flag, probe in ((Feature.FUNC, "btf_func"), (Feature.GLOBAL_FUNC, "btf_func_global"),
                        (Feature.DATASEC, "btf_datasec"), (Feature.QMARK_DATASEC, "btf_qmark_datasec"),
                        (Feature.FLOAT, "btf_float"), (Feature.DECL_TAG, "btf_decl_tag"),
                        (Feature.TYPE_TAG, "btf_type_tag"), (Feature.ENUM64, "btf_enum64")):
        if _feature(probe):
            out |= flag
    return out


class _Loader:
    """One load: the resources created so far (closed if anything fails) and the steps in libbpf's order."""

    def __init__(self, spec: ObjectSpec, pin_root: str, kernel_btf: str | BTF | None, log_level: int,
                 attach_targets: dict[str, tuple[Program, str]]):
        self.spec = spec
        self.attach_targets = attach_targets
        self.pin_root = pin_root
        self.kernel_btf_arg = kernel_btf
        self.log_level = log_level
        self.maps: dict[str, Map] = {}
        self.programs: dict[str, Program] = {}
        self.btf_fd: FD | None = None
        self.btf_error = ""
        self.btf: BTF | None = None  # the BTF loaded into the kernel (finalised copy of the object's)
        self._core_cache: dict[int, Any] = {}
        self._resolver: Any = None
        self._module_fds: dict[str, FD] = {}  # kernel BTF objects of modules, needed only while loading
        self._struct_ops: dict[str, _StructOps] = {}  # struct_ops map name -> its kernel types

    def run(self) -> Object:
        """Every step in libbpf's order; on any failure close what was created and re-raise."""
        try:
            self._check_programs()
            self._load_btf()
            self._create_maps()
            targets = self._struct_ops_targets()
            for prog in self.spec.programs.values():
                # as libbpf: a struct_ops program no struct_ops variable uses is not loaded
                if prog.autoload and (prog.type != abi.BPF_PROG_TYPE_STRUCT_OPS or prog.name in targets):
                    self.programs[prog.name] = self._load_program(prog, targets.get(prog.name))
            self._init_prog_arrays()
            values = {name: self._struct_ops_value(name) for name in self._struct_ops}
            return Object(self.spec, self.programs, self.maps, self.btf_fd, self.btf_error, values)
        except BaseException:
            for p in self.programs.values():
                p.close()
            for m in self.maps.values():
                m.close()
            if self.btf_fd is not None:
                self.btf_fd.close()
            raise
        finally:  # loaded programs hold their own references to the module BTFs they use
            for fd in self._module_fds.values():
                fd.close()

    # ---- checks -------------------------------------------------------------------------------------------

    def _check_programs(self) -> None:
        for prog in self.spec.programs.values():
            if prog.autoload and not prog.type:
                raise SectionError(f"{self.spec.name}: program {prog.name!r}: section {prog.section!r} is not a "
                                   "program section pybpf (or libbpf) knows, so its program type is unknown; set "
                                   "ProgramSpec.type, or skip it with programs=[...]")
        if any(m.internal for m in self.spec.maps.values()) and not _feature("global_data"):
            raise NotSupported("BPF_MAP_CREATE", 22, f"{self.spec.name}: global data (.data/.rodata/.bss)",
                               hint="this kernel does not support global variables in BPF programs (Linux 5.2+); "
                                    "build the object with BPF_NO_GLOBAL_DATA")

    # ---- BTF ----------------------------------------------------------------------------------------------

    def _load_btf(self) -> None:
        """Load the object's BTF (datasecs finalised as libbpf does) so maps and programs can refer to it."""
        from ..sys import syscall
        from ..sys.fd import FD

        if self.spec.btf is None or not _feature("btf"):
            return
        from ..btf.sanitize import Feature, fixup_datasecs, sanitize

        from .externs import prepare_btf

        btf = self.spec.btf.copy()
        prepare_btf(btf, self.spec.kconfig)
        try:
            fixup_datasecs(btf, self.spec.section_sizes, self.spec.symbol_offsets, self.spec.hidden_symbols)
        except BTFError as e:
            raise BTFError(f"{self.spec.name}: {e}") from None
        for name in self.spec.functions:  # as libbpf: a hidden global subprogram is verified like a static one
            if name in self.spec.hidden_symbols:
                for t in btf.find(name, abi.BTF_KIND_FUNC):
                    if t.linkage == abi.BTF_FUNC_GLOBAL:
                        t.linkage = abi.BTF_FUNC_STATIC
                        btf.replace(t.id, t)
                        break
        features = _btf_features()
        if features != Feature.ALL:  # a kernel with every BTF feature takes the object's BTF as it is
            btf = sanitize(btf, features)
        try:
            self.btf_fd = FD(syscall.btf_load(btf.to_bytes()))
            self.btf = btf
        except KernelError as e:  # as libbpf: BTF is optional for loading, maps and programs go without it
            self.btf_error = str(e)

    # ---- maps ---------------------------------------------------------------------------------------------

    def _create_maps(self) -> None:
        for m in self.spec.maps.values():
            pinned = self._pinned(m)
            if pinned is not None:
                self.maps[m.name] = pinned
                continue
            mp = self._create_map(m)
            self.maps[m.name] = mp
            if m.internal:
                data = m.data
                if m.section == ".kconfig":
                    from .externs import kconfig_data

                    assert self.spec.btf is not None
                    data = kconfig_data(self.spec.btf, self.spec.kconfig, m.value_size)
                write_slot(mp, 0, data if data is not None else bytes(m.value_size))
                if m.flags & abi.BPF_F_RDONLY_PROG:
                    mp.freeze()
            if m.type in MAP_IN_MAP_TYPES:
                for slot, target in sorted(m.values.items()):
                    write_slot(mp, slot, struct.pack("<I", self.maps[target].fd))
            if m.pinning == PIN_BY_NAME:
                mp.pin(self._pin_path(m))

    def _pin_path(self, m: MapSpec) -> str:
        return os.path.join(self.pin_root, m.name)

    def _pinned(self, m: MapSpec) -> Map | None:
        """The already-pinned map to reuse for ``m`` (libbpf's pinning semantics), or None to create one."""
        from ..errors import NotFound
        from ..maps.map import Map
        from ..sys import syscall
        from ..sys.fd import FD
        from ..sys.fs import ensure_bpffs

        if m.pinning != PIN_BY_NAME:
            return None
        if os.path.abspath(self.pin_root) == DEFAULT_PIN_ROOT:
            ensure_bpffs(DEFAULT_PIN_ROOT)
        path = self._pin_path(m)
        if os.path.isdir(path):
            raise LinkError(f"{self.spec.name}: map {m.name!r}: {path} is a directory, not a pinned map; remove it "
                            "or choose another pin_root")
        try:
            fd = FD(syscall.obj_get(path))
        except NotFound:
            return None
        try:
            try:
                what = os.readlink(f"/proc/self/fd/{fd.fd}")  # anon_inode:bpf-map, bpf-prog, bpf_link...
            except OSError:
                what = "anon_inode:bpf-map"  # no /proc: the kernel's answers below decide
            if what != "anon_inode:bpf-map":
                raise LinkError(f"{self.spec.name}: map {m.name!r}: the object pinned at {path} is not a map "
                                f"({what.partition(':')[2] or what}); remove the pin or choose another pin_root")
            i = syscall.obj_info(fd.fd, "map")
        except BaseException:
            fd.close()
            raise
        want = self._shape(m)
        have = (i.type, i.key_size, i.value_size, i.max_entries, i.map_flags, i.map_extra)
        if have != want:
            fd.close()
            fields = ("type", "key_size", "value_size", "max_entries", "map_flags", "map_extra")
            diff = ", ".join(f"{f} {h} (object wants {w})" for f, h, w in zip(fields, have, want) if h != w)
            raise LinkError(f"{self.spec.name}: map {m.name!r}: the map pinned at {path} cannot be reused: {diff}; "
                            "remove the pin or change the definition")
        typed = self.btf is not None and m.type not in NO_BTF_MAP_TYPES and (m.key_type or m.value_type)
        return Map(fd, *want[:5], m.name, map_extra=want[5], btf=self.btf if typed else None,
                   btf_key_type_id=m.key_type if typed else 0, btf_value_type_id=m.value_type if typed else 0)

    def _shape(self, m: MapSpec) -> tuple[int, int, int, int, int, int]:
        entries = m.max_entries
        if m.type == abi.BPF_MAP_TYPE_PERF_EVENT_ARRAY and not entries:
            from ..maps.map import possible_cpus

            entries = possible_cpus()
        flags = m.flags
        if m.internal and flags & abi.BPF_F_MMAPABLE and not _feature("array_mmap"):
            flags &= ~abi.BPF_F_MMAPABLE
        return m.type, m.key_size, m.value_size, entries, flags, m.map_extra

    def _create_map(self, m: MapSpec, inner: bool = False) -> Map:
        from ..maps.map import Map
        from ..sys import syscall

        mtype, ksize, vsize, entries, flags, extra = self._shape(m)
        name = m.name if _feature("prog_name") else ""
        attrs: dict[str, int] = {"numa_node": m.numa_node, "map_extra": extra}
        if mtype == abi.BPF_MAP_TYPE_STRUCT_OPS:
            kern = self._struct_ops[m.name] = self._struct_ops_kernel(m)
            if self.btf_fd is None:  # the kernel wants the object's BTF too, though the value is a kernel type
                raise LinkError(f"{self.spec.name}: struct_ops map {m.name!r} needs the object's BTF loaded into "
                                f"the kernel, which failed: {self.btf_error}")
            vsize, attrs["btf_vmlinux_value_type_id"] = kern.value.size, kern.value.id
            attrs["btf_fd"] = self.btf_fd.fd
        if self.btf_fd is not None and (m.key_type or m.value_type) and mtype not in NO_BTF_MAP_TYPES:
            attrs.update(btf_fd=self.btf_fd.fd, btf_key_type_id=m.key_type, btf_value_type_id=m.value_type)
        template = None
        try:
            if mtype in MAP_IN_MAP_TYPES:
                if m.inner is None:
                    raise LinkError(f"{self.spec.name}: map {m.name!r} ({m.type_name}) has no inner map definition "
                                    "(declare __array(values, struct {...}))")
                template = self._create_map(m.inner, inner=True)
                attrs["inner_map_fd"] = template.fd
            try:
                try:
                    fd = syscall.map_create(mtype, ksize, vsize, entries, flags, name, **attrs)
                except KernelError:
                    if "btf_fd" not in attrs:
                        raise
                    for k in ("btf_fd", "btf_key_type_id", "btf_value_type_id"):  # as libbpf: retry without BTF
                        attrs.pop(k)
                    fd = syscall.map_create(mtype, ksize, vsize, entries, flags, name, **attrs)
            except KernelError as e:
                from ..sys import probes

                if probes.map_type(mtype):
                    raise
                raise NotSupported("BPF_MAP_CREATE", e.errno or 0, f"{self.spec.name}: map {m.name!r}",
                                   hint=f"this kernel has no {m.type_name} maps") from None
        finally:
            if template is not None:
                template.close()
        # keys and values are decoded with the map's BTF types (as loaded: the ids are the same)
        return Map(fd, mtype, ksize, vsize, entries, flags, m.name, btf=self.btf if "btf_fd" in attrs else None,
                   btf_key_type_id=attrs.get("btf_key_type_id", 0), btf_value_type_id=attrs.get("btf_value_type_id", 0),
                   map_extra=extra)

    def _init_prog_arrays(self) -> None:
        for m in self.spec.maps.values():
            if m.type != abi.BPF_MAP_TYPE_PROG_ARRAY or not m.values:
                continue
            mp = self.maps[m.name]
            for slot, target in sorted(m.values.items()):
                prog = self.programs.get(target)
                if prog is None:
                    raise LinkError(f"{self.spec.name}: prog array {m.name!r} slot {slot} holds program {target!r}, "
                                    "which was not loaded")
                write_slot(mp, slot, struct.pack("<I", prog.fd))

    # ---- programs -----------------------------------------------------------------------------------------

    def _load_program(self, prog: ProgramSpec, struct_ops: tuple[int, int] | None = None) -> Program:
        """Relocate, link and load ``prog``; ``struct_ops`` is (kernel struct id, member index) for a struct_ops
        program."""
        from ..program import Program
        from ..sys import syscall
        from .linker import link_program
        from .sections import SecFlag

        linked = link_program(self.spec, prog.name)
        insns = self._relocate_core(linked.instructions, prog.name)
        insns, fd_array = self._resolve_externs(insns, prog.name)
        fds = {name: mp.fd for name, mp in self.maps.items()}
        code = insns.encode(maps=fds)
        attrs: dict[str, Any] = {"fd_array": fd_array} if fd_array else {}
        if self.btf_fd is not None and self.btf is not None and _feature("btf_func"):
            finfo = linked.func_info()
            if finfo:
                attrs.update(prog_btf_fd=self.btf_fd.fd, func_info_rec_size=_FUNC_INFO.size,
                             func_info=b"".join(_FUNC_INFO.pack(s, t) for s, t in finfo))
            linfo = linked.line_info()
            if linfo:
                add = self.btf.strings.add
                attrs.update(prog_btf_fd=self.btf_fd.fd, line_info_rec_size=_LINE_INFO.size,
                             line_info=b"".join(_LINE_INFO.pack(s, add(ln.file, ln.file_off), add(ln.text, ln.text_off),
                                                                   ln.line << 10 | ln.col)
                                                for s, ln in linfo))
        eat = prog.expected_attach_type
        if eat and prog.info is not None and prog.info.flags & SecFlag.EXP_ATTACH_OPT and \
                not _feature("exp_attach_type"):
            eat = 0
        if struct_ops is not None:  # the kernel checks it against the struct member it will be called as
            attrs["attach_btf_id"], eat = struct_ops
        if prog.name in self.attach_targets:
            target, func = self.attach_targets[prog.name]
            attrs["attach_prog_fd"], attrs["attach_btf_id"] = target.fd, self._prog_func_id(prog, target, func)
        elif prog.info is not None and prog.info.flags & SecFlag.ATTACH_BTF:
            attrs["attach_btf_id"], attrs["attach_btf_obj_fd"] = self._attach_btf_id(prog)
        kern_version = self.spec.kern_version
        if kern_version is None:
            from ..sys import probes

            kern_version = probes.kernel_version_code()
        name = prog.name if _feature("prog_name") else ""
        try:
            fd, log = syscall.prog_load(prog.type, code, prog.license or self.spec.license, name,
                                        expected_attach_type=eat, prog_flags=prog.flags, kern_version=kern_version,
                                        log_level=self.log_level, **attrs)
        except KernelError as e:
            if isinstance(e, VerifierError):
                self._explain_core_failure(prog.name, linked.instructions, e)
            missing = _missing_support(prog.type, linked.instructions)
            if missing:
                raise NotSupported("BPF_PROG_LOAD", e.errno or 0, f"{self.spec.name}: program {prog.name!r}, "
                                   f"section {prog.section!r}", hint=f"this kernel {missing}") from e
            if not isinstance(e, VerifierError):  # not the verifier: say which program, section and type failed
                raise kernel_error("BPF_PROG_LOAD", e.errno or 0, f"program {prog.name!r}, section "
                                   f"{prog.section!r}, type {prog.type_name}", e.hint) from None
            if "GPL" in e.log and "license" not in self.spec.license.lower() and "gpl" not in \
                    self.spec.license.lower():
                raise LinkError(f"{self.spec.name}: program {prog.name!r} calls a GPL-only helper, but the object's "
                                f"license is {self.spec.license!r}: declare a GPL-compatible license "
                                f"(char LICENSE[] SEC(\"license\") = \"GPL\")\n{e}") from None
            raise
        program = Program(fd, prog.name, prog.type, section=prog.section, expected_attach_type=eat,
                          attach_to=prog.attach_to, verifier_log=log)
        if _feature("prog_bind_map"):
            for m in self.spec.maps.values():
                if m.section.startswith(".rodata") and m.name in self.maps:
                    try:
                        syscall.prog_bind_map(fd, self.maps[m.name].fd)
                    except KernelError:
                        pass  # as libbpf: not binding .rodata is not fatal
        return program

    def _explain_core_failure(self, prog_name: str, insns: Any, err: VerifierError) -> None:
        """Raise a LinkError naming the CO-RE relocations that could not be applied when the verifier tripped on
        one of their poisoned instructions (libbpf rewrites its log the same way)."""
        from ..btf.core import POISON_IMM, describe

        if f"unknown#{POISON_IMM}" not in err.log and f"{POISON_IMM:#x}" not in err.log:
            return
        failed = []
        for ins in insns:
            result = self._core_cache.get(id(ins.core)) if ins.core is not None else None
            if result is not None and (result.poison or result.fail_memsz_adjust):
                assert self.spec.btf is not None
                failed.append(describe(self.spec.btf, ins.core, result)["text"])
        if failed:
            raise LinkError(f"{self.spec.name}: program {prog_name!r} uses CO-RE relocations this kernel cannot "
                            "satisfy (the verifier reached an instruction poisoned for it):\n  " + "\n  ".join(failed)
                            + f"\n{err}") from None

    def _targets(self) -> Any:
        """What CO-RE relocates against: the running kernel (vmlinux, then modules) or ``kernel_btf``."""
        from ..btf import BTF, kernel

        arg = self.kernel_btf_arg
        if isinstance(arg, BTF):
            return [arg]
        return kernel.targets(arg)

    def _relocate_core(self, insns: Any, prog_name: str) -> Any:
        """Apply every CO-RE relocation of the linked program (each computed once per object)."""
        from ..asm import Instructions

        if not any(ins.core is not None for ins in insns):
            return insns
        from ..btf.core import Resolver, patch

        if self.spec.btf is None:
            raise LinkError(f"{self.spec.name}: program {prog_name!r} has CO-RE relocations but the object has no BTF")
        if self._resolver is None:
            try:
                self._resolver = Resolver(self.spec.btf, self._targets())
            except (OSError, BPFError) as e:
                raise LinkError(f"{self.spec.name}: CO-RE needs the kernel's BTF (/sys/kernel/btf/vmlinux, "
                                f"CONFIG_DEBUG_INFO_BTF) or kernel_btf=...: {e}") from None
        out = Instructions()
        for ins in insns:
            relo = ins.core
            if relo is None:
                out.append(ins)
                continue
            result = self._core_cache.get(id(relo))
            if result is None:
                try:
                    result = self._resolver.resolve(relo)
                except LinkError as e:
                    raise LinkError(f"{self.spec.name}: program {prog_name!r}: {e}") from None
                self._core_cache[id(relo)] = result
            out.extend(patch(ins, result))
        return out

    def _resolve_externs(self, insns: Any, prog_name: str) -> tuple[Any, list[int]]:
        """``__ksym`` references: kfunc calls get the function's kernel BTF id, typed kernel variables their
        BTF id (BPF_PSEUDO_BTF_ID), typeless ones their kallsyms address; unresolved weak ones stay 0.  A kfunc
        or variable of a module also names the module's BTF object: kfunc calls by their index (``off``) in the
        returned ``fd_array`` (index 0 unused, as libbpf), variables by its fd in the second half of ld_imm64."""
        from ..asm import Instructions
        from ..btf import Func, Var
        from .externs import kallsyms

        spec = self.spec
        untyped = {i.reference for i in insns if i.is_ld_imm64 and i.reference in spec.externs
                   and i.reference not in spec.maps and not self._typed_ksym(i.reference)}
        addresses = kallsyms(untyped)
        fd_array: list[int] = []
        out = Instructions()
        for ins in insns:
            name = ins.reference
            if name is None or name not in spec.externs or name in spec.maps:
                out.append(ins)
                continue
            weak = name in spec.weak_externs
            where = f"{spec.name}: program {prog_name!r}: __ksym extern {name!r}"
            if ins.is_call or name not in untyped:
                kind = abi.BTF_KIND_FUNC if ins.is_call else abi.BTF_KIND_VAR
                try:
                    found, module = self._kernel_type(name, kind)
                    module_fd = self._module_btf_fd(module) if found is not None else 0
                except (OSError, BPFError) as e:
                    raise LinkError(f"{where}: needs the kernel's BTF: {e}") from None
                if not isinstance(found, (Func, Var)):
                    if not weak:
                        raise LinkError(f"{where}: the kernel's BTF (vmlinux and modules) has no "
                                        f"{'kfunc' if ins.is_call else 'variable'} of that name")
                    found = None
                type_id = found.id if found is not None else 0
                if ins.is_call:
                    index = 0
                    if module_fd:
                        fd_array = fd_array or [0]
                        if module_fd not in fd_array:
                            fd_array.append(module_fd)
                        index = fd_array.index(module_fd)
                    out.append(ins.replace(src=abi.BPF_PSEUDO_KFUNC_CALL, imm=type_id, off=index, reference=None))
                elif found is not None:
                    out.append(ins.replace(src=abi.BPF_PSEUDO_BTF_ID, imm=type_id | module_fd << 32, reference=None))
                else:
                    out.append(ins.replace(imm=0, reference=None))
                continue
            addr = addresses[name]
            if not addr and not weak:
                raise LinkError(f"{where}: no such symbol in /proc/kallsyms")
            out.append(ins.replace(imm=addr - (1 << 64) if addr >> 63 else addr, reference=None))
        return out, fd_array

    def _typed_ksym(self, name: str) -> bool:
        """A ``__ksym`` variable with a BTF type (resolved by BTF id), not ``const void`` (by address)."""
        from ..btf import Var

        btf = self.spec.btf
        if btf is None:
            return False
        local = btf.find(name, abi.BTF_KIND_VAR)
        return bool(local) and isinstance(local[0], Var) and btf.resolve(local[0].type_id).kind != abi.BTF_KIND_UNKN

    def _kernel_type(self, name: str, kind: int, only: str | None = None) -> tuple[Any, str | None]:
        """The kernel's BTF type ``name`` of ``kind`` and the module whose BTF has it (None: vmlinux), looking in
        vmlinux first as libbpf does, or only in module ``only`` ("vmlinux": vmlinux); (None, None) if absent."""
        targets = self._targets()
        for i, btf in enumerate(targets):
            module = targets.module_names[i - 1] if i else None
            if only is not None and only != (module or "vmlinux"):
                continue
            found = btf.find(name, kind)
            if found:
                return found[0], module
        return None, None

    def _module_btf_fd(self, module: str | None) -> int:
        """The fd of ``module``'s kernel BTF object (opened once per load), or 0 for vmlinux."""
        if module is None:
            return 0
        if module not in self._module_fds:
            from ..btf.kernel import module_btf_fd

            self._module_fds[module] = module_btf_fd(module)
        return self._module_fds[module].fd

    def _attach_btf_id(self, prog: ProgramSpec) -> tuple[int, int]:
        """The kernel BTF id a fentry/fexit/tp_btf/lsm/iter program attaches to (libbpf's naming rules), and the
        fd of the module BTF object that holds it (0: vmlinux)."""
        target = prog.attach_to
        if not target:
            raise LinkError(f"{self.spec.name}: program {prog.name!r}: section {prog.section!r} names no attach "
                            "target (expected e.g. fentry/<function>)")
        if prog.type == abi.BPF_PROG_TYPE_EXT:
            raise LinkError(f"{self.spec.name}: program {prog.name!r}: an freplace program replaces a function of "
                            f"a loaded BPF program: pass load(..., attach_targets={{{prog.name!r}: program}})")
        eat = prog.expected_attach_type
        kind = abi.BTF_KIND_FUNC
        prefix, sep, target = target.rpartition(":")  # "module:function" looks in that module only (as libbpf)
        only = prefix if sep else None
        if eat == abi.BPF_TRACE_RAW_TP:
            name, kind = "btf_trace_" + target, abi.BTF_KIND_TYPEDEF
        elif eat in (abi.BPF_LSM_MAC, abi.BPF_LSM_CGROUP):
            name = "bpf_lsm_" + target
        elif eat == abi.BPF_TRACE_ITER:
            name = "bpf_iter_" + target
        else:
            name = target
        try:
            found, module = self._kernel_type(name, kind, only)
            module_fd = self._module_btf_fd(module)
        except (OSError, BPFError) as e:
            raise LinkError(f"{self.spec.name}: program {prog.name!r} needs the kernel's BTF to find {name!r}: {e}") \
                from None
        if found is None:
            scope = f"module {only!r}" if only else "vmlinux and modules"
            raise LinkError(f"{self.spec.name}: program {prog.name!r}: the kernel's BTF ({scope}) has no "
                            f"{'typedef' if kind == abi.BTF_KIND_TYPEDEF else 'function'} {name!r} to attach to")
        return found.id, module_fd

    # ---- struct_ops ---------------------------------------------------------------------------------------

    def _struct_ops_kernel(self, m: MapSpec) -> _StructOps:
        """The kernel's struct of struct_ops map ``m`` (``tcp_congestion_ops``), its value type
        (``bpf_struct_ops_tcp_congestion_ops``) and where the struct sits in that value (member ``data``)."""
        assert self.spec.btf is not None  # the reader made this map from BTF
        name = self.spec.btf[m.value_type].name
        what = f"{self.spec.name}: struct_ops map {m.name!r} (struct {name})"
        try:
            kstruct, module = self._kernel_type(name, abi.BTF_KIND_STRUCT)
            kvalue, vmodule = self._kernel_type("bpf_struct_ops_" + name, abi.BTF_KIND_STRUCT)
        except (OSError, BPFError) as e:
            raise LinkError(f"{what} needs the kernel's BTF: {e}") from None
        if kstruct is None or kvalue is None:
            raise NotSupported("BPF_MAP_CREATE", 95, what, hint=f"this kernel has no struct_ops type {name!r}")
        if module or vmodule:
            raise NotSupported("BPF_MAP_CREATE", 95, what, hint=f"struct {name} is in kernel module {module or vmodule}"
                               "'s BTF: pybpf creates struct_ops maps of vmlinux types only")
        if m.flags & abi.BPF_F_LINK and self._kernel_type("bpf_struct_ops_link", abi.BTF_KIND_STRUCT)[0] is None:
            raise NotSupported("BPF_MAP_CREATE", 95, what, hint="this kernel cannot register struct_ops through a "
                               "bpf_link (SEC(\".struct_ops.link\"), Linux 6.4+): use SEC(\".struct_ops\")")
        data = next((mb for mb in kvalue.members if mb.name == "data"), None)
        if data is None:
            raise LinkError(f"{what}: the kernel's bpf_struct_ops_{name} has no 'data' member")
        return _StructOps(kstruct, kvalue, data.byte_offset)

    def _struct_ops_targets(self) -> dict[str, tuple[int, int]]:
        """Each struct_ops program used by a struct_ops map -> (kernel struct id, index of the member it is
        assigned to): what BPF_PROG_LOAD checks it against.  One program serves one member of one struct type."""
        assert not self._struct_ops or self.spec.btf is not None
        out: dict[str, tuple[int, int]] = {}
        for name, kern in self._struct_ops.items():
            m = self.spec.maps[name]
            local = self.spec.btf[m.value_type]  # type: ignore[index]
            by_offset = {mb.byte_offset: mb.name for mb in local.members}
            index = {mb.name: i for i, mb in enumerate(kern.struct.members)}
            for off, prog in sorted(m.values.items()):
                member = by_offset.get(off)
                if member not in index:
                    raise LinkError(f"{self.spec.name}: struct_ops map {name!r}: program {prog!r} is assigned to "
                                    f"member {member or f'at offset {off}'!r}, which the kernel's struct "
                                    f"{kern.struct.name} does not have")
                target = (kern.struct.id, index[member])
                if out.setdefault(prog, target) != target:
                    raise LinkError(f"{self.spec.name}: struct_ops program {prog!r} is used for two different "
                                    "members: load one program per member")
        return out

    def _struct_ops_value(self, name: str) -> bytes:
        """The value that registers struct_ops map ``name``: the kernel's value struct with the object's
        variable copied member by member (by name) into its ``data`` and each function pointer set to its
        program's fd (as libbpf's bpf_map__init_kern_struct_ops)."""
        m, kern = self.spec.maps[name], self._struct_ops[name]
        btf = self.spec.btf
        assert btf is not None and m.data is not None
        out = bytearray(kern.value.size)
        kmembers = {mb.name: mb for mb in kern.struct.members}
        what = f"{self.spec.name}: struct_ops map {name!r}"
        for mb in btf[m.value_type].members:  # type: ignore[union-attr]
            off, size = mb.byte_offset, btf.size_of(mb.type_id)
            prog = m.values.get(off)
            kmb = kmembers.get(mb.name)
            if kmb is None:
                if prog is not None or any(m.data[off:off + size]):
                    raise LinkError(f"{what}: member {mb.name!r} is set, but the kernel's struct "
                                    f"{kern.struct.name} has no such member")
                continue
            at = kern.data_offset + kmb.byte_offset
            if prog is not None:
                if prog not in self.programs:
                    raise LinkError(f"{what}: member {mb.name!r} is program {prog!r}, which was not loaded: load it "
                                    f"too, or delete the map from the spec (del spec.maps[{name!r}])")
                out[at:at + 8] = self.programs[prog].fd.to_bytes(8, "little")
            elif any(m.data[off:off + size]):
                if mb.bitfield_size or kmb.bitfield_size or size != self._targets()[0].size_of(kmb.type_id):
                    raise LinkError(f"{what}: member {mb.name!r} has another size in the kernel's struct "
                                    f"{kern.struct.name}")
                out[at:at + size] = m.data[off:off + size]
        return bytes(out)

    def _prog_func_id(self, prog: ProgramSpec, target: Program, func: str) -> int:
        """The BTF id of function ``func`` in the loaded program ``target``'s BTF (an freplace or fentry/fexit
        target inside a BPF program)."""
        what = f"{self.spec.name}: program {prog.name!r}"
        if not func:
            raise LinkError(f"{what}: no function named to attach to in {target.name or 'the target'!r}: give "
                            "attach_targets={name: (program, function)} or a section like freplace/<function>")
        btf = target.btf()
        if btf is None:
            raise LinkError(f"{what}: the target program {target.name!r} was loaded without BTF, so it has no "
                            f"function {func!r} to attach to")
        found = btf.find(func, abi.BTF_KIND_FUNC)
        if not found:
            funcs = ", ".join(sorted(t.name for t in btf.types(abi.BTF_KIND_FUNC)))
            raise LinkError(f"{what}: the target program {target.name!r} has no function {func!r} (its functions: "
                            f"{funcs})")
        return found[0].id


class _StructOps(NamedTuple):
    """A struct_ops map's kernel types: the struct (``tcp_congestion_ops``), the map value holding it
    (``bpf_struct_ops_tcp_congestion_ops``) and the byte offset of the struct in that value."""

    struct: Any
    value: Any
    data_offset: int


def _missing_support(prog_type: int, insns: Any) -> str:
    """Why a program that failed to load cannot load on this kernel at all -- its program type or a helper it
    calls is missing (probed) -- or "" when the kernel has everything it uses."""
    from ..sys import probes

    if not probes.prog_type(prog_type):
        return f"cannot load {abi.bpf_prog_type(prog_type).name} programs"
    known = {getattr(abi, n): n for n in abi._ENUMS["bpf_func_id"] if n.startswith("BPF_FUNC_")}
    missing = ["bpf_" + known[fid][len("BPF_FUNC_"):]  # ids pybpf does not know (CO-RE poison calls) are skipped
               for fid in sorted({ins.imm for ins in insns if ins.is_helper_call})
               if fid in known and not probes.helper(prog_type, fid)]
    if not missing:
        return ""
    kind = abi.bpf_prog_type(prog_type).name[len("BPF_PROG_TYPE_"):].lower()
    return f"does not offer {', '.join(missing)} to {kind} programs"
