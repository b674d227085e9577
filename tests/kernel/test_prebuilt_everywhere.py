"""Every prebuilt CO-RE object loads on the running kernel, or fails with a message naming what the kernel
lacks -- and the test knows which objects fail where.  Runs on the host and in every kernel-matrix VM."""
from __future__ import annotations

import os

import pytest

import pybpf
from pybpf import prebuilt

pytestmark = [pytest.mark.kernel, pytest.mark.vm, pytest.mark.usefixtures("require_root")]

_FENTRY_REFUSED = "the kernel itself refuses it"  # this host blocks the function tracer: fentry/fexit/lsm get EPERM

# kernel (major.minor) -> object -> a phrase its load error must contain
EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    "6.18": {
        "hello_clone_fentry.bpf.o": _FENTRY_REFUSED, "prog_types_fentry.bpf.o": _FENTRY_REFUSED,
        "prog_types_lsm.bpf.o": "this kernel cannot load BPF_PROG_TYPE_LSM programs",
        "tcptracer_fentry.bpf.o": _FENTRY_REFUSED, "module_fentry.bpf.o": _FENTRY_REFUSED,
        "ksyms_var.bpf.o": "no such symbol in /proc/kallsyms",  # CONFIG_KALLSYMS_ALL is off here
    },
    "6.12": {},
    "6.1": {"ksyms.bpf.o": "'bpf_task_acquire': the kernel's BTF (vmlinux and modules) has no kfunc of that "
                           "name",  # kfunc since 6.2
            "struct_ops.bpf.o": "through a bpf_link"},  # SEC(".struct_ops.link"): 6.4
    "5.10": {
        "btf_maps.bpf.o": "this kernel has no bloom_filter maps",  # 5.16
        "maps_tour.bpf.o": "this kernel has no bloom_filter maps",
        "callbacks.bpf.o": "bpf_loop to xdp programs",  # 5.17 (bpf_for_each_map_elem: 5.13)
        "ksyms.bpf.o": "'bpf_task_acquire': the kernel's BTF (vmlinux and modules) has no kfunc",
        "ksyms_var.bpf.o": "'runqueues': the kernel's BTF (vmlinux and modules) has no variable of that "
                           "name",  # no per-CPU variables in 5.10's BTF
        # no module BTF before 5.11 (veth is a module); conntrack kfuncs since 6.0
        "module_fentry.bpf.o": "has no function 'veth_xmit' to attach to",
        "module_kfunc.bpf.o": "'bpf_xdp_ct_lookup': the kernel's BTF (vmlinux and modules) has no kfunc",
        "struct_ops.bpf.o": "through a bpf_link",
    },
}


def _kernel() -> str:
    return ".".join(os.uname().release.split(".")[:2])


@pytest.mark.parametrize("name", prebuilt.names())
def test_loads_or_names_what_is_missing(name: str) -> None:
    known = EXPECTED_FAILURES.get(_kernel())
    if known is None:
        pytest.skip(f"no expectations recorded for kernel {_kernel()}: add them to EXPECTED_FAILURES")
    expected = known.get(name)
    try:
        with pybpf.load(prebuilt.path(name)) as obj:
            assert obj.programs, f"{name}: no program loaded"
    except pybpf.BPFError as e:
        assert expected is not None, f"{name} should load on {_kernel()}: {e}"
        assert expected in str(e), f"{name} on {_kernel()}: expected {expected!r} in: {e}"
        return
    assert expected is None, f"{name} loaded on {_kernel()}, where it was expected to fail ({expected})"
