"""Kernel BTF access (vmlinux, modules, the identity-keyed cache) and the ``pybpf btf dump`` command."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from btf_testlib import VMLINUX, compiled, need_toolchain, sources
from pybpf.btf import kernel
from pybpf.cli import main
from pybpf.errors import BTFError


@pytest.fixture
def have_vmlinux() -> None:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is missing")


def test_vmlinux_is_cached_by_file_identity(have_vmlinux: None, tmp_path) -> None:
    assert kernel.vmlinux() is kernel.vmlinux()
    copy = tmp_path / "vmlinux"
    shutil.copyfile(VMLINUX, copy)
    first = kernel.vmlinux(str(copy))
    assert kernel.vmlinux(str(copy)) is first
    os.utime(copy, ns=(0, 12345))
    assert kernel.vmlinux(str(copy)) is not first  # changed file: read again


def test_targets(have_vmlinux: None, tmp_path) -> None:
    t = kernel.targets()
    assert t[0] is kernel.vmlinux() and len(t) == 1 + len(kernel.module_names())
    for i, mod in enumerate(list(t)[1:3], 1):
        assert mod.base is t[0] and mod.first_id == len(t[0]) and t[i] is mod
    with pytest.raises(IndexError):
        t[len(t)]
    copy = tmp_path / "other"
    shutil.copyfile(VMLINUX, copy)
    only = kernel.targets(str(copy))
    assert len(only) == 1 and list(only)[0] is kernel.vmlinux(str(copy))


def test_module_names_and_errors(have_vmlinux: None) -> None:
    for bad in ("", "../vmlinux", "."):
        with pytest.raises(BTFError):
            kernel.module(bad)
    with pytest.raises(BTFError, match="cannot read"):
        kernel.module("pybpf_no_such_module")
    names = kernel.module_names()
    if names:
        assert kernel.module(names[0]).base is kernel.vmlinux()


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    rc = main(["btf", "dump", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_dump_object(capsys: pytest.CaptureFixture) -> None:
    need_toolchain()
    obj = str(compiled(sources()[0]))
    rc, out, _ = run_cli(capsys, obj)
    want = subprocess.run(["bpftool", "btf", "dump", "file", obj], capture_output=True, text=True).stdout
    assert rc == 0 and out == want
    rc, out, _ = run_cli(capsys, obj, "--json")
    data = json.loads(out)
    assert rc == 0 and data[0]["id"] == 1 and {d["kind"] for d in data} >= {"STRUCT", "FUNC", "DATASEC"}
    rc, out, _ = run_cli(capsys, obj, "--format", "c")
    assert rc == 0 and "struct task_struct {" in out and out.startswith("#ifndef __VMLINUX_H__")


def test_cli_dump_vmlinux_c(capsys: pytest.CaptureFixture, have_vmlinux: None) -> None:
    rc, out, _ = run_cli(capsys, "vmlinux", "--format", "c")
    assert rc == 0 and "struct task_struct {" in out and out.rstrip().endswith("#endif /* __VMLINUX_H__ */")


def test_cli_errors(capsys: pytest.CaptureFixture, tmp_path) -> None:
    rc, _, err = run_cli(capsys, str(tmp_path / "missing"))
    assert rc == 1 and "missing" in err
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x9f\xeb\x01\x00\x18\x00\x00\x00" + b"\xff" * 16)
    rc, _, err = run_cli(capsys, str(junk))
    assert rc == 1 and "runs past the end" in err and "Traceback" not in err


def test_cli_as_a_command(have_vmlinux: None) -> None:
    proc = subprocess.run([sys.executable, "-m", "pybpf", "btf", "dump", "vmlinux"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("[1] ")
