"""Shared test policy (tests import ``kernel_skip`` from here: ``from conftest import kernel_skip``).

Kernel tests skip with a reason when the machine lacks a feature -- except under ``PYBPF_REQUIRE_KERNEL=1``
(set by .ci/run), where a skip is a failure unless the feature is listed in ``ABSENT_HERE`` for the running
kernel (features this host's kernel truly lacks; the VM matrix covers them).
"""
from __future__ import annotations

import os

import pytest

REQUIRE = os.environ.get("PYBPF_REQUIRE_KERNEL") == "1"

# Features this project's host kernel (6.18, Firecracker) is known to lack: see ../shared/docs/kernels.md.
# The kernel-matrix VMs give their own kernel's list in PYBPF_ABSENT_FEATURES (comma-separated).
_HOST_ABSENT = "kprobe,kretprobe,kprobe_multi,fentry,fexit,freplace,lsm,hw_perf,ksym_var"
ABSENT_HERE = {f for f in os.environ.get("PYBPF_ABSENT_FEATURES", _HOST_ABSENT).split(",") if f}


def kernel_skip(reason: str, feature: str | None = None) -> None:
    """Skip a test for a missing kernel feature; under PYBPF_REQUIRE_KERNEL=1 fail instead, unless the
    feature is known to be absent from this machine's kernel."""
    if REQUIRE and feature not in ABSENT_HERE:
        pytest.fail(f"PYBPF_REQUIRE_KERNEL=1 but: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_bpf_absent_features(config: pytest.Config) -> set[str]:
    """The pybpf pytest plugin's markers follow the same list of features absent on this host."""
    return ABSENT_HERE


@pytest.fixture
def require_root() -> None:
    """Skip (or fail under PYBPF_REQUIRE_KERNEL=1) unless we may use bpf()."""
    if os.geteuid() != 0:
        kernel_skip("needs root (CAP_BPF/CAP_SYS_ADMIN) for the bpf() syscall")


@pytest.fixture
def uniq(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test run, for netns, veth, pins and event groups on a shared kernel."""
    import hashlib

    h = hashlib.sha1(f"{os.getpid()}-{request.node.nodeid}".encode()).hexdigest()[:8]
    return f"pb{h}"
