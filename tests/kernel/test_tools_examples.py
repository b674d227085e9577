"""The scenario examples (examples/sN_*.py) run end to end on the real kernel, in their --demo mode, and print
what the scenario promises."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kernel_skip

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str, *args: str) -> str:
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{name} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _kprobes() -> bool:
    from pybpf.sys import probes

    return probes.feature("kprobe_pmu") or probes.feature("kprobe_events")


def test_s1_hello() -> None:
    assert re.search(r"pybpf-hello: Hello, World! \(execve from pid \d+\)$", example("s1_hello.py", "--demo"),
                     re.MULTILINE)


@pytest.mark.feature("kprobe")  # on the VM kernels it runs on kprobes; here on tracepoints
def test_s2_hello_clone() -> None:
    assert "Hello, World!" in example("s2_hello_clone.py", "--demo").splitlines()[-1]


def test_s3_write_watch() -> None:
    assert re.search(r"^pybpf-write: pid \d+ fd \d+ count 4242$", example("s3_write_watch.py", "--demo"), re.MULTILINE)


@pytest.mark.feature("kprobe")
def test_s4_write_watch_kprobe() -> None:
    if not _kprobes():
        kernel_skip("no kprobes on this kernel (CONFIG_KPROBES)", feature="kprobe")
    assert "writing data (4242 bytes)" in example("s4_write_watch_kprobe.py", "--demo")


def test_s6_perf_legacy() -> None:
    out = example("s6_perf_legacy.py", "--demo")
    assert re.search(r"^cpu \d+: pid (\d+) tid \1 comm '\S+' write\(fd=\d+, count=4242\)$", out, re.MULTILINE)
    assert re.search(r"^lost samples: \d+$", out, re.MULTILINE)


@pytest.mark.feature("kprobe")  # the example picks kprobes where the kernel has them
def test_s7_tcptracer() -> None:
    out = example("s7_tcptracer.py", "--demo").splitlines()
    assert re.fullmatch(r"fd_install events: while watched [1-9]\d*, after 0", out[-1])
    kinds = [ln.split()[0] for ln in out if ln.split()[0] in ("connect", "accept", "close", "fd_install")]
    assert sorted(set(kinds)) == ["accept", "close", "connect", "fd_install"]


def test_s9_maps_tour() -> None:
    out = example("s9_maps_tour.py")
    for expected in ("hash[pid]            = 3", "percpu_array[0]      = 3 (summed over CPUs)",
                     "lpm match for 127.0.0.1 -> array[1] = 8", "outer_array[0] (inner0)[0] = 3",
                     "hash_of_maps[pid][0] = 3", "queue: 44  stack: 103", "bloom filter had pid -> array[2] = 1",
                     "tail calls: tail_step1 ran 3 times, tail_step2 3 times"):
        assert expected in out
    assert out.count("tour_record(") == 3


def test_s5_xdp_drop(uniq: str) -> None:
    out = example("s5_xdp_drop.py", "--prefix", uniq)
    assert "before: ping works" in out and "with XDP: ping fails, TCP connects" in out
    assert re.search(r"^ip link: prog/xdp id \d+ name xdp_drop", out, re.MULTILINE)
    assert "detached: ping works; ip link shows no program" in out


def test_s8_bash_readline() -> None:
    out = example("s8_bash_readline.py", "--demo")
    assert re.search(r"^\s*\d+ bash\s+echo hello from pybpf$", out, re.MULTILINE)
    assert re.search(r"^\s*\d+ bash\s+uname -s$", out, re.MULTILINE)


def test_s10_asm_xdp(uniq: str) -> None:
    out = example("s10_asm_xdp.py", "--prefix", uniq, "--count", "4")
    assert "test run, udp to port 9: XDP_DROP" in out and "test run, udp to port 53: XDP_PASS" in out
    assert "test run, tcp syn: XDP_PASS" in out
    assert re.search(r"UDP to port 9 dropped 4, other packets passed \d+; TCP connects$", out, re.MULTILINE)
