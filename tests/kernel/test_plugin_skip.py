"""The plugin's skip markers and policy, run in a separate pytest session on the real kernel: a kprobe-needing
test skips with the probed reason on this host (which has no kprobes), ``PYBPF_REQUIRE_KERNEL=1`` turns that
skip into a failure (a setup error) unless the feature is declared absent (environment, ini option or conftest
hook), present features run, and a process without CAP_BPF/CAP_SYS_ADMIN skips for root."""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pybpf.testing.plugin import missing, privileged

pytestmark = pytest.mark.kernel

TESTS = '''
import pytest

@pytest.mark.bpf_feature("kprobe")
def test_needs_kprobes():
    pass

@pytest.mark.bpf_map_type("ringbuf")
@pytest.mark.bpf_prog_type("xdp")
def test_ringbuf_and_xdp(bpf_map, bpf_program):
    bpf_map("ringbuf", 0, 0, 4096)
    assert bpf_program("r0 = 2\\nexit", "xdp").test_run(bytes(14)).retval == 2

@pytest.mark.bpf_root
def test_root():
    pass

def test_plain():
    pass
'''


def session(tmp: Path, env: dict[str, str], ini: str = "", conftest: str = "",
            prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """Run TESTS in a fresh pytest session; test name -> (outcome, message)."""
    (tmp / "test_inner.py").write_text(TESTS)
    (tmp / "pytest.ini").write_text("[pytest]\n" + ini)
    if conftest:
        (tmp / "conftest.py").write_text(textwrap.dedent(conftest))
    plugin = [] if any(ep.value == "pybpf.testing.plugin" for ep in importlib.metadata.entry_points(group="pytest11")) \
        else ["-p", "pybpf.testing.plugin"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYBPF_", "PYTEST_"))} | env
    subprocess.run([*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin,
                    f"--junitxml={tmp / 'out.xml'}", str(tmp)], cwd=tmp, env=full_env, capture_output=True,
                   text=True, timeout=120)
    out = {}
    for case in ET.parse(tmp / "out.xml").getroot().iter("testcase"):
        child = next(iter(case), None)
        tag = child.tag if child is not None else "passed"
        out[case.get("name", "")] = ({"skipped": "skipped", "failure": "failed", "error": "error"}.get(tag, tag),
                                     (child.get("message", "") if child is not None else ""))
    return out


@pytest.fixture(autouse=True)
def _root(require_root: None) -> None:
    """Every session here probes the kernel, which needs bpf()."""


NO_KPROBES = missing("feature", "kprobe")


def test_missing_feature_skips_with_the_probed_reason(tmp_path: Path) -> None:
    res = session(tmp_path, {})
    if NO_KPROBES is None:
        pytest.skip("this kernel has kprobes: the skip path cannot be shown here")
    outcome, msg = res["test_needs_kprobes"]
    assert outcome == "skipped" and "kprobe" in msg and "probed: kprobe_pmu, kprobe_events" in msg
    assert res["test_ringbuf_and_xdp"][0] == res["test_root"][0] == res["test_plain"][0] == "passed"


@pytest.mark.parametrize("how", ["none", "env", "ini", "hook"])
def test_require_kernel_fails_unless_declared_absent(tmp_path: Path, how: str) -> None:
    if NO_KPROBES is None:
        pytest.skip("this kernel has kprobes: the skip path cannot be shown here")
    env = {"PYBPF_REQUIRE_KERNEL": "1"}
    ini = conftest = ""
    if how == "env":
        env["PYBPF_ABSENT_FEATURES"] = "fentry, kprobe"
    elif how == "ini":
        ini = "bpf_absent_features =\n    kprobe\n"
    elif how == "hook":
        conftest = """
            def pytest_bpf_absent_features(config):
                return {"kprobe", "lsm"}
        """
    res = session(tmp_path, env, ini, conftest)
    outcome, msg = res["test_needs_kprobes"]
    if how == "none":
        assert outcome == "error" and "PYBPF_REQUIRE_KERNEL=1 but: the kernel lacks the BPF feature 'kprobe'" in msg
    else:
        assert outcome == "skipped", (how, res)
    assert res["test_ringbuf_and_xdp"][0] == "passed"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop privileges")
def test_process_without_capabilities_skips_for_root(tmp_path: Path) -> None:
    assert privileged()
    # still uid 0, but with no capability left: the plugin reads capabilities, it does not guess from the uid
    res = session(tmp_path, {}, prefix=("setpriv", "--inh-caps=-all", "--bounding-set=-all"))
    for name in ("test_needs_kprobes", "test_ringbuf_and_xdp", "test_root"):
        outcome, msg = res[name]
        assert outcome == "skipped" and "needs root (CAP_BPF or CAP_SYS_ADMIN)" in msg, (name, res)
    assert res["test_plain"][0] == "passed"
