"""Tracing attachments on the real kernel: tracepoints (bpf_link and perf ioctl), raw tracepoints, tp_btf,
perf_event sampling, iterators, fentry/LSM (VM kernels), and the Link life cycle (pin, from_pin/from_id,
detach, close on garbage collection, info, update) -- each making the hook fire and counting in a map."""
from __future__ import annotations

import gc
import os
import struct

import pytest
from conftest import kernel_skip
from linkprogs import EXIT, R0, R1, R2, R3, R6, btf_id, counter, counter_map, insn, load_counter, mov, printk

import pybpf
from pybpf.errors import KernelError, NotSupported
from pybpf.link import (Link, attach_iter, attach_perf_event, attach_raw_tracepoint, attach_trace,
                        attach_tracepoint)
from pybpf.sys import abi, fs, perf, syscall
from pybpf.trace_pipe import TracePipe

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

TP = "syscalls/sys_enter_getppid"


def fire(n: int) -> None:
    for _ in range(n):
        os.getppid()


def link_ids() -> set[int]:
    return set(syscall.object_ids("link"))


@pytest.mark.feature("tracepoint")
@pytest.mark.parametrize("mechanism", [None, "bpf_link", "perf_event"])
def test_tracepoint_counts_own_calls(mechanism: str | None) -> None:
    prog, m = load_counter("tracepoint", pid=os.getpid())
    with prog, m:
        try:
            link = attach_tracepoint(prog, TP, mechanism=mechanism)
        except NotSupported as e:
            kernel_skip(f"no perf_event bpf_link here: {e}", feature="perf_link")
        with link:
            assert link.kind == "tracepoint" and link.target == TP
            assert link.mechanism == (mechanism or link.mechanism)
            fire(7)
            info = link.info()
            assert info.prog_id == prog.info().id
            assert info["tp_name"] == "sys_enter_getppid"
            if link.mechanism == "bpf_link":
                assert info.type_name == "perf_event" and info.details.get("event_type", "tracepoint") == "tracepoint"
        fire(3)  # after close: not counted
        assert m[0] == 7


def test_auto_attach_from_section() -> None:
    prog, m = load_counter("tracepoint", pid=os.getpid())
    prog.section = f"tracepoint/{TP}"
    with prog, m, prog.attach() as link:
        fire(4)
        assert link.target == TP and m[0] == 4


def test_raw_tracepoint() -> None:
    prog, m = load_counter("raw_tracepoint", pid=os.getpid())
    with prog, m:
        with attach_raw_tracepoint(prog, "sys_enter") as link:
            fire(5)
            info = link.info()
            assert (info.type_name, info["tp_name"]) == ("raw_tracepoint", "sys_enter")
        seen = m[0]
        assert seen >= 5  # every syscall of this process, getppid or not
        fire(5)
        assert m[0] == seen


def test_tp_btf() -> None:
    m = counter_map()
    with m, pybpf.Program.load(counter(m.fd, os.getpid()), "tracing", name="t_tpbtf",
                               expected_attach_type="trace_raw_tp",
                               attach_btf_id=btf_id("btf_trace_sys_enter", "TYPEDEF")) as prog:
        with attach_trace(prog) as link:
            fire(5)
            assert link.kind == "tp_btf" and link.info().type_name in ("tracing", "raw_tracepoint")
        assert m[0] >= 5


def open_devnull(n: int) -> None:
    for _ in range(n):
        os.close(os.open("/dev/null", os.O_RDONLY))


@pytest.mark.feature("fentry")
def test_fentry() -> None:
    m = counter_map()
    with m:
        try:
            prog = pybpf.Program.load(counter(m.fd, os.getpid()), "tracing", name="t_fentry",
                                      expected_attach_type="trace_fentry",
                                      attach_btf_id=btf_id("do_sys_openat2", "FUNC"))
        except KernelError as e:
            kernel_skip(f"fentry programs do not load here: {e}", feature="fentry")
        with prog, attach_trace(prog) as link:
            open_devnull(6)
            assert link.kind == "fentry" and link.info().details["attach_type"] == "trace_fentry"
        assert m[0] == 6


def _load_for_target(target: pybpf.Program, name: str, feature: str) -> pybpf.Object:
    """Load program ``name`` of prebuilt freplace.bpf.o against ``target``, or skip where the kernel refuses."""
    from pybpf import prebuilt

    try:
        return pybpf.load(prebuilt.path("freplace"), programs=[name], attach_targets={name: target})
    except KernelError as e:
        kernel_skip(f"{name} does not load here: {e}", feature=feature)
        raise


@pytest.mark.feature("freplace")
def test_freplace_replaces_a_function_of_a_loaded_program() -> None:
    """drop_verdict replaces xdp_verdict's global function verdict(): the XDP program returns XDP_DROP while the
    link lives, XDP_PASS before and after; the replacement counts its calls in its own object's .bss."""
    from pybpf import prebuilt

    with pybpf.load(prebuilt.path("freplace")) as target:
        xdp = target.programs["xdp_verdict"]
        assert list(target.programs) == ["xdp_verdict"]  # SEC("?freplace/...") is not loaded by default
        assert xdp.test_run(bytes(64)).retval == abi.XDP_PASS
        with _load_for_target(xdp, "drop_verdict", "freplace") as ext:
            prog = ext.programs["drop_verdict"]
            info = prog.info()
            assert info.type == abi.BPF_PROG_TYPE_EXT
            if info.attach_btf_id:  # 0 where bpf_prog_info lacks the field (5.10)
                assert info.attach_btf_id == xdp.btf().find_one("verdict", abi.BTF_KIND_FUNC).id
            with prog.attach() as link:
                assert link.kind == "freplace"
                assert [xdp.test_run(bytes(64)).retval for _ in range(3)] == [abi.XDP_DROP] * 3
                assert ext.map(".bss")[0].replaced == 3
            assert xdp.test_run(bytes(64)).retval == abi.XDP_PASS


@pytest.mark.feature("fexit")
def test_fexit_on_a_function_of_a_loaded_program() -> None:
    """verdict_exit (fexit/verdict with xdp_verdict as its target) sees verdict()'s return value."""
    from pybpf import prebuilt

    with pybpf.load(prebuilt.path("freplace")) as target:
        xdp = target.programs["xdp_verdict"]
        with _load_for_target(xdp, "verdict_exit", "fexit") as ext, ext.programs["verdict_exit"].attach():
            assert ext.map(".data")[0].last_verdict == -1
            assert xdp.test_run(bytes(64)).retval == abi.XDP_PASS
            assert ext.map(".data")[0].last_verdict == abi.XDP_PASS


def test_freplace_without_a_target_says_what_to_pass() -> None:
    from pybpf import prebuilt

    with pytest.raises(pybpf.LinkError, match=r"attach_targets=\{'drop_verdict': program\}"):
        pybpf.load(prebuilt.path("freplace"), programs=["drop_verdict"])
    with pybpf.load(prebuilt.path("freplace")) as target, pytest.raises(pybpf.LinkError, match="no function 'nope'"):
        pybpf.load(prebuilt.path("freplace"), programs=["drop_verdict"],
                   attach_targets={"drop_verdict": (target.programs["xdp_verdict"], "nope")})


@pytest.mark.feature("lsm")
def test_lsm() -> None:
    m = counter_map()
    with m:
        try:
            prog = pybpf.Program.load(counter(m.fd, os.getpid()), "lsm", name="t_lsm",
                                      expected_attach_type="lsm_mac", attach_btf_id=btf_id("bpf_lsm_file_open", "FUNC"))
        except KernelError as e:
            kernel_skip(f"BPF LSM programs do not load here: {e}", feature="lsm")
        with prog:
            try:
                link = prog.attach()
            except NotSupported as e:
                kernel_skip(str(e), feature="lsm")
            with link:
                open_devnull(3)
                assert link.kind == "lsm"
        assert m[0] == 3


def test_perf_event_sampling_on_every_cpu() -> None:
    prog, m = load_counter("perf_event")
    with prog, m:
        with attach_perf_event(prog, sample_period=100_000) as group:
            assert [lk.target for lk in group.links] == [f"cpu {c}" for c in perf.online_cpus()]
            x = 0
            for i in range(200_000_000):  # until a cpu-clock sample fired (bounded)
                x += i
                if i % 100_000 == 0 and m[0]:
                    break
            assert m[0] > 0
            info = group.info()
            assert info.type_name == "perf_event" and len(info["links"]) == len(group.links)
        assert all(lk.closed for lk in group.links)


def test_iterator_reads_map_keys() -> None:
    """A bpf_map_elem iterator over our own array map writes each key: reading the link gives them all."""
    with pybpf.Map.create("array", 4, 8, 4, key="I", value="Q") as target:
        code = (insn(0x79, R6, R1, off=0)            # r6 = ctx->meta
                + insn(0x79, R2, R1, off=16)         # r2 = ctx->key
                + insn(0x15, R2, off=3, imm=0)       # if key == NULL goto out
                + insn(0x79, R1, R6, off=0)          # r1 = meta->seq
                + mov(R3, 4)
                + insn(0x85, imm=abi.BPF_FUNC_seq_write)
                + mov(R0, 0) + EXIT)
        with pybpf.Program.load(code, "tracing", name="t_iter", expected_attach_type="trace_iter",
                                attach_btf_id=btf_id("bpf_iter_bpf_map_elem", "FUNC")) as prog:
            with attach_iter(prog, map=target) as it:
                assert it.read() == struct.pack("<4I", 0, 1, 2, 3)
                assert it.read() == struct.pack("<4I", 0, 1, 2, 3)  # each read is a new pass
                info = it.info()
                assert info["target_name"] == "bpf_map_elem" and info["map_id"] == target.info().id


def test_pin_survives_close_until_unpinned(uniq: str) -> None:
    prog, m = load_counter("tracepoint", pid=os.getpid())
    path = os.path.join(fs.ensure_bpffs(), f"{uniq}_link")
    try:
        with prog, m:
            link = attach_tracepoint(prog, TP)
            link.pin(path)
            link_id = link.info().id
            link.close()
            fire(2)
            assert m[0] == 2 and link_id in link_ids()  # pinned: still attached
            again = Link.from_pin(path)
            assert again.info().id == link_id and again.kind == "perf_event" and again.pinned_path == path
            with Link.from_id(link_id) as third:
                assert third.info().prog_id == prog.info().id
            again.detach()  # unpins and ends it
            assert not os.path.exists(path) and link_id not in link_ids()
            fire(2)
            assert m[0] == 2
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_garbage_collected_link_detaches() -> None:
    prog, m = load_counter("tracepoint", pid=os.getpid())
    with prog, m:
        link = attach_tracepoint(prog, TP)
        link_id = link.info().id
        del link
        gc.collect()
        assert link_id not in link_ids()
        fire(3)
        assert m[0] == 0


def test_legacy_link_cannot_pin_and_tracing_cannot_update(tmp_path) -> None:
    prog, m = load_counter("tracepoint", pid=os.getpid())
    with prog, m:
        with attach_tracepoint(prog, TP, mechanism="perf_event") as legacy:
            with pytest.raises(NotSupported) as ei:
                legacy.pin(str(tmp_path / "x"))
            assert "bpf_link" in str(ei.value)
        with attach_tracepoint(prog, TP, mechanism="bpf_link") as link:
            with pytest.raises(KernelError):
                link.update(prog)  # perf_event links cannot swap programs
        link.close()  # idempotent
        assert link.closed


def test_unknown_tracepoint_says_so() -> None:
    prog, m = load_counter("tracepoint")
    with prog, m, pytest.raises(pybpf.NotFound) as ei:
        attach_tracepoint(prog, "syscalls/no_such_tracepoint_pybpf")
    assert "no_such_tracepoint_pybpf" in str(ei.value)


def test_printk_reaches_trace_pipe(uniq: str) -> None:
    marker = uniq[-7:]
    with pybpf.Program.load(printk(marker.encode(), os.getpid()), "tracepoint", name="t_printk") as prog:
        with TracePipe() as tp:
            tp.skip_backlog()
            with attach_tracepoint(prog, TP):
                fire(3)
                lines = []
                for _ in range(50):
                    lines += tp.read(timeout=0.2, contains=marker)
                    if len(lines) >= 3:
                        break
        assert len(lines) == 3
        assert {ln.pid for ln in lines} == {os.getpid()} and lines[0].function == "bpf_trace_printk"
        assert lines[0].message == marker
