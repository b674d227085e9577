"""Kernel modules' BTF: fentry on a module's function and calls to a module's kfuncs (prebuilt module_fentry and
module_kfunc).  Where the function is in a module (Debian's kernels in the VM matrix load veth and nf_conntrack
as modules) the loader finds it in the module's split BTF and names that BTF object to the kernel
(attach_btf_obj_fd; fd_array for kfunc calls); where it is built in (this host) it is found in vmlinux."""
from __future__ import annotations

import socket
from types import ModuleType
from typing import Callable

import pytest
from conftest import kernel_skip

from pybpf import prebuilt
from pybpf.asm import Instructions
from pybpf.btf import kernel
from pybpf.errors import BTFError, LinkError, PermissionDenied
from pybpf.loader import ObjectFile
from pybpf.sys import abi, probes, syscall
from pybpf.sys._cffi_abi import ffi
from pybpf.sys.fd import FD
from pybpf.testing import packets, run
from pybpf.testing.netns import VethPair

pytestmark = [pytest.mark.kernel, pytest.mark.vm, pytest.mark.usefixtures("require_root")]


def where(name: str, kind: int) -> str | None:
    """"vmlinux" or the module whose BTF has ``name``; None if the kernel's BTF has it nowhere."""
    if kernel.vmlinux().find(name, kind):
        return "vmlinux"
    return next((m for m in kernel.module_names() if kernel.module(m).find(name, kind)), None)


def btf_name(btf_id: int) -> str:
    """The name of the kernel BTF object ``btf_id`` (``vmlinux`` or a module's)."""
    buf = ffi.new("char[]", 64)
    info = ffi.new("struct bpf_btf_info *")
    info.name, info.name_len = syscall.address(buf), len(buf)
    with FD(syscall.fd_by_id("btf", btf_id)) as fd:
        syscall.obj_info(fd.fd, "btf", info)
    return ffi.string(buf).decode()


@pytest.mark.feature("fentry")
def test_fentry_on_a_module_function(uniq: str, bpf_skeleton: Callable[..., ModuleType]) -> None:
    home = where("veth_xmit", abi.BTF_KIND_FUNC)
    if home is None:
        kernel_skip("the kernel's BTF has no veth_xmit (no module BTF for veth)", feature="module_btf")
    payload = b"m" * 1000
    mod = bpf_skeleton(prebuilt.path("module_fentry"))
    with VethPair(uniq) as pair, mod.ModuleFentry() as skel:
        with pair.inside_a():
            skel.rodata.target_ifindex = socket.if_nametoindex(pair.a)
        skel.rodata.frame_len = 14 + 20 + 8 + len(payload)
        try:
            skel.load()
        except PermissionDenied as e:
            kernel_skip(f"fentry programs do not load here: {e}", feature="fentry")
        info = skel.progs.veth_xmit_entry.info()
        assert btf_name(info.attach_btf_obj_id) == home  # module BTF where veth is a module (the VMs)
        skel.attach()
        assert pair.ping(count=3)  # the neighbour is resolved: each datagram below goes out at once
        for _ in range(3):
            pair.udp_send(9, payload)
        assert (skel.bss.xmits, skel.bss.bytes) == (3, 3 * (14 + 20 + 8 + len(payload)))


def test_kfuncs_of_a_module(bpf_skeleton: Callable[..., ModuleType]) -> None:
    home = where("bpf_xdp_ct_lookup", abi.BTF_KIND_FUNC)
    if home is None:
        kernel_skip("the kernel's BTF has no bpf_xdp_ct_lookup (conntrack kfuncs: Linux 6.0+, nf_conntrack loaded)",
                    feature="ct_kfunc")
    mod = bpf_skeleton(prebuilt.path("module_kfunc"))
    with mod.ModuleKfunc() as skel:
        skel.load()
        prog = skel.progs.ct_lookup
        for _ in range(2):
            assert run(prog, packets.udp_frame("192.0.2.1", "192.0.2.2", 1, 2)).verdict == "XDP_PASS"
        assert (skel.bss.lookups, skel.bss.found, skel.bss.error) == (2, 0, -2)  # -ENOENT: no such connection
        calls = [i for i in Instructions.decode(prog.xlated()) if i.is_call and i.src == abi.BPF_PSEUDO_KFUNC_CALL]
        assert len(calls) == 2 and len({i.off for i in calls}) == 1  # both kfuncs through the same BTF object
        assert (calls[0].off == 0) == (home == "vmlinux")


def test_module_btf_objects_are_found_by_name() -> None:
    try:
        vmlinux = kernel.module_btf_fd("vmlinux")
    except BTFError as e:  # before 5.11 the kernel's BTF objects have no ids, names or modules
        kernel_skip(f"no named kernel BTF objects: {e}", feature="module_btf")
    with vmlinux as fd:
        info = syscall.obj_info(fd.fd, "btf")
        assert info.kernel_btf and btf_name(info.id) == "vmlinux"
    for module in kernel.module_names()[:3]:
        with kernel.module_btf_fd(module) as fd:
            assert btf_name(syscall.obj_info(fd.fd, "btf").id) == module
    with pytest.raises(BTFError, match="no BTF object for module 'pybpf_no_such_module'"):
        kernel.module_btf_fd("pybpf_no_such_module")


@pytest.mark.parametrize("target,found", [("vmlinux:sched_process_fork", True),
                                          ("pybpf_no_such_module:sched_process_fork", False)])
def test_attach_target_with_a_module_prefix(target: str, found: bool) -> None:
    """``tp_btf/MODULE:NAME`` (and fentry/fexit...) looks for the target in that module's BTF only, as libbpf."""
    import pybpf

    spec = ObjectFile(prebuilt.path("prog_types"))
    spec.programs["tp_btf_fork"].attach_to = target
    if found:
        with pybpf.load(spec, programs=["tp_btf_fork"]) as obj:
            info = obj.programs["tp_btf_fork"].info()
            if probes.kernel_version_code() < 5 << 16 | 16 << 8:  # prog info reports the target since 5.16
                assert (info.attach_btf_obj_id, info.attach_btf_id) == (0, 0)
                return
            assert btf_name(info.attach_btf_obj_id) == "vmlinux"
            assert info.attach_btf_id == kernel.vmlinux().find_one("btf_trace_sched_process_fork").id
    else:
        with pytest.raises(LinkError, match="the kernel's BTF \\(module 'pybpf_no_such_module'\\) has no typedef "
                                            "'btf_trace_sched_process_fork' to attach to"):
            pybpf.load(spec, programs=["tp_btf_fork"])
