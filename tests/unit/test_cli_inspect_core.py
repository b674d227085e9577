"""``pybpf inspect OBJ --btf FILE``: the CO-RE relocations of prebuilt/core.bpf.o resolved against a target BTF --
this kernel's vmlinux (field offsets checked against ``bpftool btf dump``'s member offsets), a hand-built BTF
that lacks fields and types (poisoned relocations) or holds two candidates that disagree (a relocation that
fails), and, when the VM kernels are cached, Debian's 6.1 kernel (its BTF read from the vmlinux ELF extracted from
the kernel image)."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pybpf.btf import BTF
from pybpf.btf.types import Int, Member, Struct
from pybpf.cli import main
from pybpf.sys import abi

PREBUILT = Path(__file__).resolve().parents[2] / "prebuilt"
CORE_OBJ = str(PREBUILT / "core.bpf.o")
VMLINUX = "/sys/kernel/btf/vmlinux"
BPFTOOL = shutil.which("bpftool")
VM_CACHE = Path(os.environ.get("PYBPF_VM_CACHE", Path.home() / ".cache" / "pybpf-vm"))

# byte_off of a direct member: "[5] struct task_struct.pid (0:92 @ offset 1264)"
_DIRECT = re.compile(r"^\[\d+\] struct (\w+)\.(\w+) \(0:\d+ @ offset \d+\)$")
_RAW_STRUCT = re.compile(r"^\[\d+\] STRUCT '(\w+)' ")
_RAW_MEMBER = re.compile(r"^\t'(\w+)' type_id=\d+ bits_offset=(\d+)( bitfield_size=\d+)?$")


def inspect_json(capsys: pytest.CaptureFixture[str], btf: str, obj: str = CORE_OBJ) -> dict[str, Any]:
    assert main(["inspect", obj, "--btf", btf, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for p in (*report["programs"], *report["functions"]) for r in p.get("core_resolved", ())]


def row(report: dict[str, Any], kind: str, local_prefix: str) -> dict[str, Any]:
    found = [r for r in rows(report) if r["kind"] == kind and r["local"].startswith(local_prefix)]
    assert found, f"no {kind} relocation on {local_prefix}"
    return found[0]


def bpftool_member_offsets(btf_file: str) -> dict[tuple[str, str], int | None]:
    """(struct, member) -> byte offset from ``bpftool btf dump file F`` (None for bitfields and names that
    occur in more than one struct of that name)."""
    out = subprocess.run([BPFTOOL, "btf", "dump", "file", btf_file], check=True, capture_output=True,
                         text=True).stdout
    offsets: dict[tuple[str, str], int | None] = {}
    struct = None
    for line in out.splitlines():
        if m := _RAW_STRUCT.match(line):
            struct = m[1]
        elif not line.startswith("\t"):
            struct = None
        elif struct and (m := _RAW_MEMBER.match(line)):
            key = (struct, m[1])
            offsets[key] = None if key in offsets or m[3] else int(m[2]) // 8
    return offsets


def check_direct_offsets(report: dict[str, Any], btf_file: str) -> int:
    """Every resolved byte_off of a direct member equals the member's offset in bpftool's dump of the BTF."""
    offsets = bpftool_member_offsets(btf_file)
    checked = 0
    for r in rows(report):
        m = _DIRECT.match(r["local"])
        if r["kind"] != "byte_off" or r["status"] != "ok" or not m:
            continue
        expected = offsets.get((m[1].split("___")[0], m[2]))
        if expected is None:
            continue  # a bitfield (its load is aligned) or an ambiguous name
        assert r["new"] == expected, f"{r['local']}: pybpf {r['new']}, bpftool {expected}"
        checked += 1
    return checked


@pytest.mark.skipif(not os.access(VMLINUX, os.R_OK), reason=f"{VMLINUX} not readable")
def test_against_this_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    report = inspect_json(capsys, VMLINUX)
    task_info = report["programs"][0]
    assert task_info["name"] == "task_info"
    assert len(task_info["core_resolved"]) == len(task_info["core"])  # one resolution per listed relocation
    # the object's probes of what does not exist
    assert row(report, "field_exists", "[328] struct task_struct___pybpf.pybpf_no_such_field")["new"] == 0
    assert row(report, "type_exists", "[329] struct pybpf_no_such_type")["new"] == 0
    assert row(report, "enumval_exists", "[331] enum bpf_map_type___pybpf::BPF_MAP_TYPE_PYBPF_NO_SUCH")["new"] == 0
    assert row(report, "type_exists", "[5] struct task_struct")["new"] == 1
    # task_struct.state became __state in 5.14: the old flavor's read is poisoned on this kernel
    pre514 = row(report, "byte_off", "[327] struct task_struct___pre514.state")
    assert pre514["status"] == "poisoned" and pre514["poison"] and "no matching target field" in pre514["reason"]
    s = report["core_target"]
    assert s["btf"] == VMLINUX and s["relocations"] == len(rows(report)) and s["failed"] == 0
    assert s["poisoned"] == 1 and s["resolved"] == s["relocations"] - 1
    if BPFTOOL:
        assert check_direct_offsets(report, VMLINUX) >= 10

    assert main(["inspect", CORE_OBJ, "--btf", VMLINUX]) == 0
    text = capsys.readouterr().out
    assert re.search(r"CO-RE byte_off \[327\] struct task_struct___pre514\.state \(0:0 @ offset 0\) => poisoned: "
                     r"no matching target field$", text, re.M)
    assert re.search(r"CO-RE type_exists \[329\] struct pybpf_no_such_type => 0 \(compiled 1\)$", text, re.M)
    assert re.search(rf"^CO-RE against {VMLINUX}: {s['relocations']} relocations, {s['resolved']} resolved "
                     rf"\({s['changed']} changed\), 1 poisoned, 0 failed$", text, re.M)


def _hand_built(path: Path, second_flavor: bool = False) -> str:
    """struct task_struct { unsigned int __state; int pid; int tgid; } and nothing else (no cred, comm, sock...);
    with ``second_flavor`` also task_struct___v2 with pid elsewhere: two candidates that disagree."""
    btf = BTF()
    uint = btf.add(Int("unsigned int", 4))
    sint = btf.add(Int("int", 4, encoding=abi.BTF_INT_SIGNED))
    btf.add(Struct("task_struct", 16, [Member("__state", uint, 0), Member("pid", sint, 64), Member("tgid", sint, 96)]))
    if second_flavor:
        btf.add(Struct("task_struct___v2", 8, [Member("pid", sint, 0), Member("tgid", sint, 32)]))
    path.write_bytes(btf.to_bytes())
    return str(path)


def test_hand_built_btf_missing_fields_poison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = inspect_json(capsys, _hand_built(tmp_path / "small.btf"))
    pid = row(report, "byte_off", "[5] struct task_struct.pid")
    assert (pid["status"], pid["orig"], pid["new"]) == ("ok", 1264, 8)
    assert pid["target"] == "[3] struct task_struct.pid (0:1 @ offset 8)"
    assert row(report, "byte_off", "[5] struct task_struct.tgid")["new"] == 12
    assert row(report, "type_size", "[5] struct task_struct")["new"] == 16
    assert row(report, "field_exists", "[5] struct task_struct.__state")["new"] == 1
    for missing in ("[5] struct task_struct.cred", "[5] struct task_struct.comm", "[132] struct cred.uid.val",
                    "[489] struct sock.sk_protocol"):
        r = row(report, "byte_off", missing)
        assert r["status"] == "poisoned" and r["poison"] and "target" not in r, missing
    assert row(report, "byte_sz", "[5] struct task_struct.comm")["status"] == "poisoned"
    assert row(report, "type_exists", "[5] struct task_struct")["new"] == 1
    assert row(report, "enumval_exists", "[331] enum bpf_map_type___pybpf::BPF_MAP_TYPE_RINGBUF")["new"] == 0
    assert report["core_target"]["failed"] == 0 and report["core_target"]["poisoned"] > 10

    assert main(["inspect", CORE_OBJ, "--btf", str(tmp_path / "small.btf"), "--no-relocations"]) == 0
    text = capsys.readouterr().out
    assert "    CO-RE byte_off [5] struct task_struct.pid (0:92 @ offset 1264) => 8 (compiled 1264)\n" in text
    assert "    CO-RE byte_off [5] struct task_struct.cred (0:123 @ offset 1736) => poisoned: no matching target " \
           "field\n" in text


def test_hand_built_btf_ambiguity_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = inspect_json(capsys, _hand_built(tmp_path / "two.btf", second_flavor=True))
    pid = row(report, "byte_off", "[5] struct task_struct.pid")
    assert pid["status"] == "failed" and "field offset ambiguity" in pid["error"]
    assert report["core_target"]["failed"] >= 2  # pid and tgid
    assert main(["inspect", CORE_OBJ, "--btf", str(tmp_path / "two.btf")]) == 0
    assert re.search(r"CO-RE byte_off \[5\] struct task_struct\.pid \(0:92 @ offset 1264\) => fails: .*field offset "
                     r"ambiguity", capsys.readouterr().out)


def test_without_btf_nothing_is_resolved(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", CORE_OBJ, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "core_target" not in report and not rows(report) and report["programs"][0]["core"]
    assert main(["inspect", CORE_OBJ]) == 0
    assert "=>" not in capsys.readouterr().out


def test_bad_btf_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"\x9f\xeb\x01\x00junk")
    assert main(["inspect", CORE_OBJ, "--btf", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pybpf: error: {bad}") and len(err.splitlines()) == 1


def _debian_61_vmlinux(tmp_path: Path) -> str:
    """The vmlinux ELF inside the cached Debian 6.1 kernel image (an LZ4-compressed bzImage payload)."""
    images = sorted(glob.glob(str(VM_CACHE / "kernels" / "linux-image-6.1.*" / "boot" / "vmlinuz-*")))
    if not images or not shutil.which("lz4"):
        pytest.skip("no cached Debian 6.1 kernel (tools/vmtest.py 6.1 fetches it) or no lz4 tool")
    image = Path(images[-1]).read_bytes()
    start = image.find(b"\x02\x21\x4c\x18")  # the kernel's LZ4 (legacy frame) payload
    if start < 0:
        pytest.skip(f"{images[-1]}: not an LZ4-compressed kernel")
    # lz4 complains about the bytes after the payload, but has written the whole ELF by then
    elf = subprocess.run(["lz4", "-dc"], input=image[start:], capture_output=True, check=False).stdout
    assert elf[:4] == b"\x7fELF", "no ELF in the decompressed kernel image"
    out = tmp_path / "vmlinux-6.1"
    out.write_bytes(elf)
    return str(out)


def test_against_debian_61_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vmlinux = _debian_61_vmlinux(tmp_path)
    report = inspect_json(capsys, vmlinux)  # an ELF: its .BTF section
    s = report["core_target"]
    assert s["failed"] == 0 and s["poisoned"] == 1 and s["changed"] > 10  # another layout of task_struct
    pid = row(report, "byte_off", "[5] struct task_struct.pid")
    assert pid["status"] == "ok" and pid["new"] != pid["orig"]
    if BPFTOOL:
        assert check_direct_offsets(report, vmlinux) >= 10
