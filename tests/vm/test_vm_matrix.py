"""The kernel matrix: boot other Debian kernels under qemu (tools/vmtest.py) and check them from inside.

Off unless ``PYBPF_VM=1`` (each kernel costs a VM boot plus Python running ~15-25x slower under TCG; see
tools/vm/README.md).  ``PYBPF_VM_KERNELS`` picks the kernels (comma-separated aliases or paths; default ``6.1``).
Per kernel: the probe (tools/vm/probe.py) must show what that kernel is known to support, then the tests marked
``feature`` or ``vm`` run inside the guest.  Needs qemu-system-x86 and busybox-static (tools/vm/install_deps.sh).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VMTEST = ROOT / "tools" / "vmtest.py"
KERNELS = [k.strip() for k in os.environ.get("PYBPF_VM_KERNELS", "6.1").split(",") if k.strip()]
TIMEOUT = float(os.environ.get("PYBPF_VM_TIMEOUT", "1800"))

pytestmark = [
    pytest.mark.skipif(os.environ.get("PYBPF_VM") != "1", reason="kernel matrix VMs run only with PYBPF_VM=1"),
    pytest.mark.skipif(os.environ.get("PYBPF_IN_VM") == "1", reason="already inside a matrix VM"),
]

# What each Debian kernel was measured to support (tools/vm/README.md); the probe must find at least these.
# Debian's 6.1 has CONFIG_FPROBE off, so no kprobe.multi there; 5.10 refuses BPF_LINK_CREATE for perf events.
BASE = {"btf", "kprobe_pmu", "uprobe_pmu", "kprobe", "kretprobe", "kprobe_events", "tracepoint",
        "raw_tracepoint"}
EXPECTED = {
    "5.10": BASE,
    "6.1": BASE | {"perf_link"},
    "6.12": BASE | {"perf_link", "kprobe_multi"},
    "newest": BASE | {"perf_link", "kprobe_multi"},
}


def vm(kernel: str, *command: str, env: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    if not shutil.which("qemu-system-x86_64"):
        pytest.fail("PYBPF_VM=1 but qemu-system-x86_64 is missing: run tools/vm/install_deps.sh", pytrace=False)
    args = [sys.executable, str(VMTEST), kernel, "--timeout", str(TIMEOUT), "--cwd", str(ROOT)]
    for e in env:
        args += ["--env", e]
    p = subprocess.run([*args, "--", *command], capture_output=True, text=True, timeout=TIMEOUT + 600,
                       check=False)
    sys.stderr.write(p.stderr)  # vmtest's progress lines (boot and command times) land in the test report
    return p


@pytest.mark.parametrize("kernel", KERNELS)
def test_probe(kernel: str) -> None:
    p = vm(kernel, sys.executable, "tools/vm/probe.py")
    assert p.returncode == 0, f"probe failed on {kernel} ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("PROBE-JSON ")]
    assert lines, f"no PROBE-JSON line from {kernel}:\n{p.stdout}"
    report = json.loads(lines[-1][len("PROBE-JSON "):])
    if kernel in EXPECTED:
        assert report["release"].startswith(kernel + ".") or kernel == "newest", report["release"]
        missing = sorted(f for f in EXPECTED[kernel] if not report["features"].get(f))
        assert not missing, f"{kernel} ({report['release']}) lacks {missing}: {report['attach']}"
    progs = report["prog_types"]
    for t in ("SOCKET_FILTER", "KPROBE", "SCHED_CLS", "TRACEPOINT", "XDP", "RAW_TRACEPOINT", "CGROUP_SKB"):
        assert progs.get(t) == "ok", f"{kernel}: {t} does not load: {progs.get(t)}"
    for t in ("HASH", "ARRAY", "PERF_EVENT_ARRAY", "PERCPU_ARRAY", "LPM_TRIE", "RINGBUF"):
        assert report["map_types"].get(t) == "ok", f"{kernel}: map {t}: {report['map_types'].get(t)}"


# Features each kernel truly lacks (measured: tools/vm/README.md).  Inside the guest a test that skips for
# any other reason fails (PYBPF_REQUIRE_KERNEL=1), exactly as on the host.
ABSENT = {
    # Debian 5.10 boots without the BPF LSM and has no module BTF (5.11) nor conntrack kfuncs (6.0);
    # load-acquire/store-release came in 6.15, struct_ops through a bpf_link in 6.4
    "5.10": "kprobe_multi,perf_link,lsm,uprobe_multi,hw_perf,module_btf,ct_kfunc,load_acquire,struct_ops_link",
    "6.1": "kprobe_multi,hw_perf,load_acquire,struct_ops_link",  # CONFIG_FPROBE is off in Debian's 6.1
    "6.12": "hw_perf,load_acquire",
    "newest": "hw_perf",
}


@pytest.mark.parametrize("kernel", KERNELS)
def test_feature_tests_in_guest(kernel: str) -> None:
    """The tests marked `feature` or `vm` (tests/kernel, tests/vm) pass inside the guest; a skip is a failure
    unless the feature is absent from that kernel."""
    absent = ABSENT.get(kernel, "hw_perf")
    p = vm(kernel, sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "feature or vm",
           "tests/kernel", "tests/vm", env=("PYBPF_REQUIRE_KERNEL=1", f"PYBPF_ABSENT_FEATURES={absent}"))
    assert p.returncode == 0, f"tests failed inside the {kernel} VM ({p.returncode}):\n{p.stdout[-20000:]}"
    assert " passed" in p.stdout, f"no test ran inside the {kernel} VM:\n{p.stdout[-5000:]}"
