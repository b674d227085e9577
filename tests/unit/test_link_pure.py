"""The pure parts of attaching (no root): netlink message encoding, trace_pipe parsing, uprobe targets in ELF
files (offsets checked against the machine code a compiler put there), and auto-attach argument checks."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from types import SimpleNamespace

import pytest

from pybpf.errors import BPFError, NotFound
from pybpf.link import auto, elfsym
from pybpf.link.perf import event_name
from pybpf.sys import abi, netlink
from pybpf.trace_pipe import parse_line


# --- netlink -----------------------------------------------------------------------------------------------------


def test_netlink_attributes_roundtrip() -> None:
    msg = (netlink.attr_u32(abi.IFLA_XDP_FLAGS, 6) + netlink.attr_str(abi.TCA_KIND, "clsact")
           + netlink.nested(abi.IFLA_XDP, netlink.attr_s32(abi.IFLA_XDP_FD, -1)))
    assert len(msg) % 4 == 0
    attrs = netlink.parse_attrs(msg)
    assert attrs[abi.IFLA_XDP_FLAGS] == struct.pack("=I", 6)
    assert attrs[abi.TCA_KIND] == b"clsact\0"
    assert netlink.parse_attrs(attrs[abi.IFLA_XDP]) == {abi.IFLA_XDP_FD: struct.pack("=i", -1)}
    # a nested attribute carries NLA_F_NESTED in its type (stripped by parse_attrs)
    nested = netlink.nested(5)
    assert struct.unpack("=HH", nested) == (4, 5 | abi.NLA_F_NESTED)


def test_netlink_parse_ignores_a_truncated_tail() -> None:
    good = netlink.attr_u32(1, 7)
    assert netlink.parse_attrs(good + b"\x08\x00\x02\x00\x01") == {1: struct.pack("=I", 7)}
    assert netlink.parse_attrs(b"\x02\x00") == {}


# --- trace_pipe ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, task, pid, cpu, flags, msg", [
    ("          python3-10358   [000] ...21  1701.670793: bpf_trace_printk: hello: world",
     "python3", 10358, 0, "...21", "hello: world"),
    ("  kworker/u4:1-77      (     77) [001] d..1.   12.5: bpf_trace_printk: x", "kworker/u4:1", 77, 1, "d..1.", "x"),
    ("           <...>-5 [003]  99.000001: bpf_trace_printk: no flags column", "<...>", 5, 3, "", "no flags column"),
    ("   my-task-name-42    [002] ....  1.000000: bpf_trace_printk: ", "my-task-name", 42, 2, "....", ""),
])
def test_parse_trace_lines(raw: str, task: str, pid: int, cpu: int, flags: str, msg: str) -> None:
    line = parse_line(raw)
    assert line is not None
    assert (line.task, line.pid, line.cpu, line.flags, line.message, line.function) == \
        (task, pid, cpu, flags, msg, "bpf_trace_printk")


def test_parse_trace_rejects_headers() -> None:
    assert parse_line("# tracer: nop") is None
    assert parse_line("") is None


# --- uprobe targets ----------------------------------------------------------------------------------------------

C_SOURCE = """
__attribute__((noinline)) int pybpf_probe_me(int x) { return x * 0x5EEDC0DE + 0x1234567; }
__attribute__((noinline, weak)) int pybpf_weak(void) { return 0x0BADCAFE; }
int main(int argc, char **argv) { (void)argv; return pybpf_probe_me(argc) + pybpf_weak(); }
"""


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test program built non-PIE (file offsets differ from addresses) and PIE."""
    cc = next((c for c in ("clang-19", "clang", "cc") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler to build the ELF oracle (tools/install_test_deps.sh installs clang-19)")
    d = tmp_path_factory.mktemp("elf")
    src = d / "t.c"
    src.write_text(C_SOURCE)
    out = {}
    for kind, flags in (("nopie", ["-no-pie", "-fno-pie"]), ("pie", ["-pie", "-fpie"])):
        exe = d / kind
        subprocess.run([cc, "-O1", *flags, "-o", str(exe), str(src)], check=True, capture_output=True)
        out[kind] = str(exe)
    return out


@pytest.mark.parametrize("kind", ["nopie", "pie"])
def test_func_offset_points_at_the_functions_code(binaries: dict[str, str], kind: str) -> None:
    path = binaries[kind]
    data = open(path, "rb").read()
    off = elfsym.func_offset(path, "pybpf_probe_me")
    assert struct.pack("<I", 0x5EEDC0DE) in data[off:off + 32]  # the imul constant of its body
    weak = elfsym.func_offset(path, "pybpf_weak")
    assert struct.pack("<I", 0x0BADCAFE) in data[weak:weak + 16]
    if kind == "nopie":
        fs = {s.name: s for _, _, s in elfsym.iter_functions(path)}
        assert fs["pybpf_probe_me"].offset == off and fs["pybpf_weak"].weak


def test_match_offsets(binaries: dict[str, str]) -> None:
    got = dict(elfsym.match_offsets(binaries["nopie"], "pybpf_*"))
    assert set(got) == {"pybpf_probe_me", "pybpf_weak"}
    assert got["pybpf_probe_me"] == elfsym.func_offset(binaries["nopie"], "pybpf_probe_me")


def test_missing_function_and_not_an_elf(binaries: dict[str, str], tmp_path) -> None:
    with pytest.raises(NotFound) as ei:
        elfsym.func_offset(binaries["pie"], "nope_not_here")
    assert "nope_not_here" in str(ei.value)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an elf at all")
    with pytest.raises(BPFError) as ei2:
        elfsym.func_offset(str(junk), "main")
    assert str(junk) in str(ei2.value)


def test_versioned_symbol_of_libc() -> None:
    libc = elfsym.resolve_binary("libc.so.6")
    plain = elfsym.func_offset(libc, "getppid")
    nm = subprocess.run(["nm", "-D", libc], capture_output=True, text=True).stdout if shutil.which("nm") else ""
    m = re.search(r"^([0-9a-f]+) \w getppid@@(GLIBC_[\d.]+)$", nm, re.M)
    if m:  # .text of libc is mapped at its file offset, so nm's value is the file offset
        assert plain == int(m.group(1), 16)
        assert elfsym.func_offset(libc, f"getppid@@{m.group(2)}") == plain
    with pytest.raises(NotFound):
        elfsym.func_offset(libc, "getppid@NO_SUCH_VERSION")


def test_resolve_binary() -> None:
    sh = elfsym.resolve_binary("sh")
    assert os.path.isabs(sh) and os.access(sh, os.X_OK)
    own = elfsym.resolve_binary("libc.so.6", os.getpid())
    assert own.startswith(f"/proc/{os.getpid()}/root/") and own.endswith("libc.so.6")
    assert elfsym.resolve_binary("libc.so", os.getpid()) == own  # a versioned file matches its stem
    with pytest.raises(NotFound) as ei:
        elfsym.resolve_binary("libnot-a-library-pybpf.so")
    assert "ld.so" in str(ei.value)


def test_probe_event_names_are_unique_and_valid() -> None:
    names = {event_name("u", "/usr/lib/x86_64-linux-gnu/libc.so.6" + "x" * 80) for _ in range(5)}
    assert len(names) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9_]{1,63}", n) for n in names)


# --- auto-attach argument checks -----------------------------------------------------------------------------------


def fake(section: str, prog_type: int = abi.BPF_PROG_TYPE_KPROBE, eat: int = 0) -> SimpleNamespace:
    return SimpleNamespace(name="p", section=section, type=prog_type, expected_attach_type=eat, attach_to="")


@pytest.mark.parametrize("section, needs", [
    ("kprobe", "a kernel function"), ("uretprobe", "a function of a binary"), ("tracepoint", "a tracepoint"),
    ("raw_tp", "a raw tracepoint"), ("ksyscall", "a syscall"),
])
def test_sections_without_target_ask_for_one(section: str, needs: str) -> None:
    with pytest.raises(ValueError) as ei:
        auto.attach(fake(section))  # type: ignore[arg-type]
    assert needs in str(ei.value) and "attach(" in str(ei.value)


def test_malformed_targets_and_unsupported_kinds() -> None:
    with pytest.raises(ValueError, match="BINARY:FUNCTION"):
        auto.attach(fake("uprobe/just-a-binary"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="FUNCTION"):
        auto.attach(fake("kprobe/bad name"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="BINARY:PROVIDER:NAME"):
        auto.attach(fake("usdt/bin:name"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a USDT probe"):
        auto.attach(fake("usdt"))  # type: ignore[arg-type]
    with pytest.raises(BPFError, match="struct_ops"):
        auto.attach(fake("struct_ops/x", abi.BPF_PROG_TYPE_STRUCT_OPS))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="network interface"):
        auto.attach(fake("xdp", abi.BPF_PROG_TYPE_XDP, abi.BPF_XDP))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no attach target"):
        auto.attach(fake("", abi.BPF_PROG_TYPE_PERF_EVENT), "eth0")  # type: ignore[arg-type]


# --- choosing the mechanism -----------------------------------------------------------------------------------------


def test_link_fallback_is_learnt_from_einval(monkeypatch: pytest.MonkeyPatch) -> None:
    from pybpf.errors import KernelError, NotSupported
    from pybpf.link import base

    monkeypatch.setattr(base, "_has_link", {})
    calls = []

    def refuse(err: int):
        def create() -> int:
            calls.append(err)
            raise KernelError("BPF_LINK_CREATE", err)
        return create

    assert base.try_link("xdp", None, "netlink", refuse(22)) is None  # EINVAL: use the legacy way
    base.legacy_worked("xdp", None)
    assert base.try_link("xdp", None, "netlink", refuse(22)) is None and calls == [22]  # not asked again
    with pytest.raises(NotSupported, match="mechanism='netlink'"):
        base.try_link("tcx", "bpf_link", "netlink", refuse(22))
    with pytest.raises(KernelError) as ei:
        base.try_link("tcx", None, "netlink", refuse(16))  # EBUSY is an answer, not a missing feature
    assert ei.value.errno_name == "EBUSY"
    assert base.try_link("tcx", "netlink", "netlink", refuse(22)) is None and calls == [22, 22, 16]
    with pytest.raises(ValueError, match="mechanism"):
        base.try_link("tcx", "perf_event", "netlink", refuse(22))
