"""Externs: ``__kconfig`` variables (laid out in the ``.kconfig`` map, values from the running kernel's config)
and ``__ksym`` symbols (kfuncs and kernel variables, resolved against the kernel's BTF or /proc/kallsyms),
following libbpf's ``bpf_object__collect_externs`` / ``bpf_object__resolve_externs``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import BTFError, LinkError
from ..sys import abi
from .spec import Record

if TYPE_CHECKING:
    from ..btf import BTF

KCONFIG, KSYMS = ".kconfig", ".ksyms"


class KconfigVar(Record):
    """One ``__kconfig`` extern: where it lives in the ``.kconfig`` map and how to encode it."""

    _compare = _shown = ("name", "offset", "size", "align", "type_id", "weak")

    def __init__(self, name: str, offset: int, size: int, align: int, type_id: int, weak: bool):
        self.name, self.offset, self.size, self.align = name, offset, size, align
        self.type_id, self.weak = type_id, weak


def kconfig_layout(btf: BTF, names: dict[str, bool]) -> list[KconfigVar]:
    """Offsets of the ``.kconfig`` externs ``names`` (name -> weak) in libbpf's order: by alignment
    (descending), size, then name."""
    out = []
    for name, weak in names.items():
        try:
            var = btf.find_one(name, abi.BTF_KIND_VAR)
            size, align = btf.size_of(var.type_id), btf.align_of(var.type_id)
        except BTFError as e:
            raise LinkError(f"kconfig extern {name!r}: {e}") from None
        out.append(KconfigVar(name, 0, size, align, var.type_id, weak))
    out.sort(key=lambda v: (-v.align, v.size, v.name))
    off = 0
    for v in out:
        v.offset = off = -(-off // v.align) * v.align
        off += v.size
    return out


def prepare_btf(btf: BTF, layout: list[KconfigVar]) -> None:
    """Make the extern DATASECs of ``btf`` (a copy about to be loaded) acceptable to the kernel, as libbpf's
    collect_externs does: ``.ksyms`` entries become 4-byte allocated ``int`` variables (a FUNC entry points to an
    added ``dummy_ksym`` VAR, its FUNC becomes global and unnamed parameters get a name), ``.kconfig`` variables
    become allocated at their offsets in the ``.kconfig`` map."""
    from ..btf import Datasec, Func, FuncProto, Var

    ksyms = btf.find(KSYMS, abi.BTF_KIND_DATASEC)
    if ksyms:
        sec = ksyms[0]
        assert isinstance(sec, Datasec)
        ints = [t for t in btf.types(abi.BTF_KIND_INT) if getattr(t, "bits", 0) == 32]
        int_id = ints[0].id if ints else 0
        dummy = 0
        if any(isinstance(btf[v.type_id], Func) for v in sec.vars):
            dummy = btf.add(Var("dummy_ksym", int_id, abi.BTF_VAR_GLOBAL_ALLOCATED))
        for i, v in enumerate(sec.vars):
            t = btf[v.type_id]
            if isinstance(t, Func):
                proto = btf[t.type_id]
                if isinstance(proto, FuncProto):
                    for p in proto.params:
                        if p.type_id and not p.name:
                            p.name = "dummy_ksym"
                    btf.replace(proto.id, proto)
                t.linkage = abi.BTF_FUNC_GLOBAL
                v.type_id = dummy
            elif isinstance(t, Var):
                t.linkage, t.type_id = abi.BTF_VAR_GLOBAL_ALLOCATED, int_id
            btf.replace(t.id, t)
            v.offset, v.size = i * 4, 4
        sec.size = len(sec.vars) * 4
        btf.replace(sec.id, sec)
    kconfig = btf.find(KCONFIG, abi.BTF_KIND_DATASEC)
    if kconfig and layout:
        sec = kconfig[0]
        assert isinstance(sec, Datasec)
        offsets = {v.name: v.offset for v in layout}
        sec.size = layout[-1].offset + layout[-1].size
        for v in sec.vars:
            t = btf[v.type_id]
            if isinstance(t, Var) and t.name in offsets:
                t.linkage = abi.BTF_VAR_GLOBAL_ALLOCATED
                v.offset = offsets[t.name]
                btf.replace(t.id, t)
        btf.replace(sec.id, sec)


def kernel_config_text() -> str | None:
    """The running kernel's config, from /boot/config-$(uname -r) or else /proc/config.gz (gzipped or not, as
    libbpf reads them); None when neither can be read."""
    import gzip  # here: only objects with __kconfig externs read the config
    import zlib

    for path in (f"/boot/config-{os.uname().release}", "/proc/config.gz"):
        try:
            with open(path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            return raw.decode("utf-8", "replace")
        except (OSError, EOFError, zlib.error):
            continue
    return None


def _kernel_config() -> dict[str, str] | None:
    """CONFIG_* name -> value of the running kernel, or None when its config cannot be read."""
    text = kernel_config_text()
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


def _special(name: str) -> Any:
    from ..sys import probes

    if name == "LINUX_KERNEL_VERSION":
        return probes.kernel_version_code()
    if name == "LINUX_HAS_BPF_COOKIE":
        return int(probes.feature("bpf_cookie"))
    if name == "LINUX_HAS_SYSCALL_WRAPPER":
        # libbpf: whether a kprobe on __<arch>_sys_bpf can be created (0 on kernels without kprobes)
        prefix = _SYSCALL_PREFIX.get(os.uname().machine)
        if not prefix or not (probes.feature("kprobe_pmu") or probes.feature("kprobe_events")):
            return 0
        name = f"__{prefix}_sys_bpf"
        return int(kallsyms({name})[name] != 0)
    return None


#: the syscall wrapper prefix of each architecture (libbpf's arch_specific_syscall_pfx)
_SYSCALL_PREFIX = {"x86_64": "x64", "i686": "ia32", "aarch64": "arm64", "s390x": "s390x", "armv7l": "arm",
                   "ppc64le": "powerpc", "ppc64": "powerpc", "riscv64": "riscv", "loongarch64": "loongarch"}


def kconfig_data(btf: BTF, layout: list[KconfigVar], size: int) -> bytes:
    """The ``.kconfig`` map value for this kernel; LinkError for a missing non-weak option or a bad value."""
    config = _kernel_config() if any(v.name.startswith("CONFIG_") for v in layout) else {}
    buf = bytearray(size)
    for v in layout:
        value: Any = _special(v.name)
        if value is None and config is None and not v.weak:
            raise LinkError(f"kconfig extern {v.name!r}: the kernel's config cannot be read (neither "
                            f"/boot/config-{os.uname().release} nor /proc/config.gz)")
        raw = (config or {}).get(v.name) if value is None else None
        if value is None and raw is None:
            if not v.weak:
                raise LinkError(f"kconfig extern {v.name!r}: not set in this kernel's config (declare it __weak "
                                "to default to 0)")
            continue
        t = btf.resolve(v.type_id)
        kind = t.kind_name
        if value is None:
            value = _parse(v.name, raw or "", kind, t)
        if isinstance(value, bytes):
            buf[v.offset:v.offset + v.size] = value[:v.size - 1].ljust(v.size, b"\0")
        else:
            signed = kind == "INT" and bool(getattr(t, "signed", False))
            try:
                buf[v.offset:v.offset + v.size] = int(value).to_bytes(v.size, "little", signed=signed and value < 0)
            except OverflowError:
                raise LinkError(f"kconfig extern {v.name!r}: value {value} does not fit {v.size} bytes") from None
    return bytes(buf)


def _parse(name: str, raw: str, kind: str, t: Any) -> Any:
    """A CONFIG_ value as libbpf reads it: y/m/n for bool and tristate, quoted strings, numbers."""
    if raw in ("y", "m", "n"):
        if kind == "ENUM":  # enum libbpf_tristate: no 0, yes 1, module 2
            return {"n": 0, "y": 1, "m": 2}[raw]
        if raw == "m" and kind == "INT" and t.size == 1 and not getattr(t, "signed", False) and t.name == "bool":
            raise LinkError(f"kconfig extern {name!r}: value 'm' does not fit a bool (use enum libbpf_tristate)")
        return 1 if raw != "n" else 0
    if raw.startswith('"'):
        if kind != "ARRAY":
            raise LinkError(f"kconfig extern {name!r}: string value {raw} needs a char array")
        return raw.strip('"').encode()
    try:
        return int(raw, 0)
    except ValueError:
        raise LinkError(f"kconfig extern {name!r}: cannot parse value {raw!r}") from None


def kallsyms(names: set[str]) -> dict[str, int]:
    """The addresses of kernel symbols ``names`` from /proc/kallsyms, read once (0 for absent or hidden ones)."""
    out = dict.fromkeys(names, 0)
    if not names:
        return out
    try:
        with open("/proc/kallsyms", "rb") as f:
            data = f.read()
    except OSError:
        return out
    for name in names:
        key = b" " + name.encode()
        pos = data.find(key)
        while pos >= 0:
            end = pos + len(key)
            # "<address> <type> <name>[\t[module]]\n": the name must be whole and follow the type letter
            if data[end:end + 1] in (b"\n", b"\t") and data[pos - 2:pos - 1] == b" ":
                start = data.rfind(b"\n", 0, pos) + 1
                out[name] = int(data[start:pos - 2], 16)
                break
            pos = data.find(key, pos + 1)
    return out
