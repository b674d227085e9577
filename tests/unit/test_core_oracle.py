"""CO-RE results checked against libbpf (through bpftool) on the same objects and the running kernel's BTF.

* ``bpftool -d gen min_core_btf`` (no root) runs libbpf's relocation matching: every relocation's local spec,
  the candidate it matched (or none) must render exactly as libbpf renders them;
* ``bpftool -d prog loadall`` (root, bpffs) runs libbpf's patching: every patched value, load-size change and
  poisoning must be what :func:`pybpf.btf.core.patch` does to the same instruction.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import pytest

from btf_testlib import VMLINUX, Insn, compiled, need_toolchain, programs, sections, sources
from pybpf.btf import BTF, BTFExt
from pybpf.btf.core import Resolver, patch

SPEC_RE = re.compile(r"prog '(?P<prog>[^']+)': relo #(?P<n>\d+): (?P<rest>.*)$")
PATCH_RE = re.compile(r"patched insn #(?P<insn>\d+) \((?P<cls>[^)]+)\) (?P<what>imm64|imm|off|mem_sz) "
                      r"(?P<old>\d+) -> (?P<new>\d+)$")
POISON_RE = re.compile(r"substituting insn #(?P<insn>\d+) w/ invalid insn$")


@pytest.fixture(scope="module")
def vmlinux() -> BTF:
    need_toolchain()
    return BTF.load(VMLINUX)


def _ours(name: str, vmlinux: BTF):
    obj = compiled(name)
    secs = sections(obj)
    btf = BTF.parse(secs[".BTF"])
    ext = BTFExt.parse(secs[".BTF.ext"], btf)
    resolver = Resolver(btf, [vmlinux])
    return obj, secs, {sec: [resolver.resolve(r) for r in relos] for sec, relos in ext.core_relos.items()}


def _libbpf_lines(args: list[str]) -> dict[tuple[str, int], list[str]]:
    proc = subprocess.run(["bpftool", "-d", *args], capture_output=True, text=True)
    out: dict[tuple[str, int], list[str]] = {}
    for line in proc.stderr.splitlines():
        m = SPEC_RE.search(line)
        if m:
            out.setdefault((m["prog"], int(m["n"])), []).append(m["rest"].strip())
    return out


@pytest.mark.parametrize("name", sources())
def test_specs_match_libbpf(name: str, vmlinux: BTF, tmp_path) -> None:
    obj, _, results = _ours(name, vmlinux)
    lines = _libbpf_lines(["gen", "min_core_btf", VMLINUX, str(tmp_path / "min.btf"), str(obj)])
    assert lines, "bpftool printed no relocation lines"
    for sec, res in results.items():
        for n, r in enumerate(res):
            got = lines[(sec, n)]
            assert got[0] == r.local_spec.format(), (sec, n)
            matching = [g.split(" ", 3)[3] for g in got if g.startswith("matching candidate #")]
            if r.relo.kind == 6:  # TYPE_ID_LOCAL: no candidate search
                assert r.target_spec is None and not matching
            elif r.target_spec is None:
                assert "no matching targets found" in got, (sec, n, got)
            else:
                assert matching and matching[0] == r.target_spec.format(), (sec, n, got)


def _bpffs_dir() -> str:
    if os.geteuid() != 0:
        pytest.skip("bpftool prog loadall needs root")
    if not os.path.ismount("/sys/fs/bpf"):
        if subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], capture_output=True).returncode:
            pytest.skip("bpffs is not mounted at /sys/fs/bpf and cannot be mounted")
    return f"/sys/fs/bpf/pybpf-core-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("name", sources())
def test_patches_match_libbpf(name: str, vmlinux: BTF) -> None:
    obj, secs, results = _ours(name, vmlinux)
    pin = _bpffs_dir()
    try:
        lines = _libbpf_lines(["prog", "loadall", str(obj), pin])
    finally:
        shutil.rmtree(pin, ignore_errors=True)
    sec_of = programs(obj)
    by_sec = {(sec_of[prog], n): v for (prog, n), v in lines.items()}
    assert by_sec, "libbpf printed no relocation lines"
    checked = 0
    for sec, res in results.items():
        text = secs[sec]
        for n, r in enumerate(res):
            got = by_sec[(sec, n)]
            insn = Insn.at(text, r.relo.insn_idx)
            out = patch(insn, r)
            poisoned = [int(m["insn"]) for g in got if (m := POISON_RE.match(g))]
            patched = {m["what"]: int(m["new"]) for g in got if (m := PATCH_RE.match(g))}
            if poisoned:
                assert len(out) == len(poisoned) and all(i.code == 0x85 and i.imm == 0xBAD2310 for i in out), \
                    (sec, n, got, r)
            else:
                assert len(out) == 1, (sec, n, got, r)
                if "imm" in patched:
                    assert insn.imm & 0xFFFFFFFF == patched["imm"] & 0xFFFFFFFF, (sec, n, got)
                if "imm64" in patched:
                    assert insn.imm & (2**64 - 1) == patched["imm64"], (sec, n, got)
                if "off" in patched:
                    assert insn.off == patched["off"], (sec, n, got)
                if "mem_sz" in patched:
                    assert r.new_size == patched["mem_sz"] and {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[
                        insn.code & 0x18] == r.new_size, (sec, n, got)
                assert patched, (sec, n, got)
            checked += 1
    assert checked == sum(map(len, results.values()))
