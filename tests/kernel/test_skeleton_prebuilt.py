"""Generated skeletons on the real kernel: every prebuilt object with BTF loads through its skeleton and reads
back typed values equal to what the untyped API decodes; .rodata is settable before load and refused after;
.data/.bss are live; ring buffer records arrive as the generated record type, equal to the untyped decode."""
from __future__ import annotations

import os
import subprocess
from types import ModuleType
from typing import Any, Callable

import pytest
from conftest import kernel_skip

from pybpf import prebuilt
from pybpf.errors import BPFError, LinkError, NotSupported, PermissionDenied
from pybpf.gen.runtime import Skeleton, TypedMap
from pybpf.loader import ObjectFile
from pybpf.maps.btfcodec import btf_codec
from pybpf.maps.map import Map
from pybpf.maps.ringbuf import RingBuffer
from pybpf.program import Program
from pybpf.testing import packets, run

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

BTF_OBJECTS = [n for n in prebuilt.names() if ObjectFile(prebuilt.path(n)).btf is not None]
#: objects this host's kernel cannot load, and the (conftest ABSENT_HERE) feature they need
NEEDS = {"hello_clone_fentry": "fentry", "prog_types_fentry": "fentry", "tcptracer_fentry": "fexit",
         "prog_types_lsm": "lsm", "ksyms_var": "ksym_var", "module_fentry": "fentry"}


def skeleton_class(mod: ModuleType) -> type[Skeleton]:
    return next(v for v in vars(mod).values() if isinstance(v, type) and issubclass(v, Skeleton)
                and v.__module__ == mod.__name__)


def load(skel: Skeleton, obj: str) -> None:
    base = obj.split(".")[0]
    try:
        skel.load()
    except (PermissionDenied, NotSupported, LinkError) as e:
        if base in NEEDS:
            kernel_skip(f"{obj} cannot load on this kernel: {e}", NEEDS[base])
        raise


@pytest.mark.parametrize("obj", BTF_OBJECTS)
def test_every_object_loads_and_reads_through_its_skeleton(obj: str, bpf_skeleton: Callable[..., ModuleType]) -> None:
    mod = bpf_skeleton(prebuilt.path(obj))
    cls = skeleton_class(mod)
    with cls() as skel:
        sections = [a for a in dir(cls) if isinstance(getattr(cls, a), property) and a not in
                    ("progs", "maps", "loaded")]
        before = {a: {v: getattr(getattr(skel, a), v) for v in _vars(getattr(skel, a))} for a in sections}
        load(skel, obj)
        assert skel.obj is not None and skel.loaded
        for name, prog in skel.obj.programs.items():
            assert isinstance(prog, Program)
        for attr, pspec in zip(getattr(mod, cls.__name__ + "Progs").__annotations__, skel.spec.programs.values()):
            if pspec.autoload:
                assert isinstance(getattr(skel.progs, attr), Program)
            else:  # SEC("?...") programs are not loaded by default, as libbpf
                with pytest.raises(BPFError, match="not loaded"):
                    getattr(skel.progs, attr)
        for attr in sections:  # loading changed no initial value; reads now come from the live maps
            assert {v: getattr(getattr(skel, attr), v) for v in _vars(getattr(skel, attr))} == before[attr]
        spec, btf = skel.spec, skel.spec.btf
        typed_maps = {m.name: getattr(skel.maps, a) for a, m in zip(
            getattr(mod, cls.__name__ + "Maps").__annotations__, spec.maps.values())}
        for name, typed in typed_maps.items():
            m = spec.maps[name]
            if not isinstance(typed, TypedMap) or not (m.key_type and m.value_type):
                continue
            with Map.from_fd(typed.map.dup_fd(), key="bytes", value="bytes") as raw:  # untyped: bytes + BTF codecs
                kc, vc = btf_codec(btf, m.key_type), btf_codec(btf, m.value_type)
                untyped = {kc.decode(k): ([vc.decode(b) for b in v] if raw.percpu else vc.decode(v))
                           for k, v in raw.items()}
            assert dict(typed.items()) == untyped


def _vars(section: Any) -> list[str]:
    return [v for v in vars(type(section)) if not v.startswith("_") and v != "SECTION"]


def test_globals_rodata_before_load_data_and_bss_live(bpf_skeleton: Callable[..., ModuleType]) -> None:
    mod = bpf_skeleton(prebuilt.path("globals"))
    with mod.Globals() as skel:
        assert (skel.rodata.knob_u32, skel.rodata.knob_name, skel.data.point) == (7, "default", mod.Point(3, 4))
        skel.rodata.knob_u32 = 6
        skel.rodata.knob_name = "typed"
        skel.data.point = mod.Point(10, 20)
        skel.load()
        prog = skel.progs.read_globals
        assert run(prog, packets.udp_frame("192.0.2.1", "192.0.2.2", 1, 2)).verdict == "XDP_PASS"
        result = skel.bss.result
        assert isinstance(result, mod.Result)
        assert (result.knob_u32, result.table_pick, result.point_sum, result.knob_name, result.runs) == \
            (6, 12, 30, "typed", 1)
        assert skel.data.counter == 101 and skel.bss.runs == 1 and skel.data_bar.data_bar == 6
        skel.data.counter = 1000  # written through the mmap: the next run sees it
        skel.data_bar.data_bar = 50
        run(prog, bytes(64))
        assert (skel.bss.result.counter, skel.bss.result.data_bar, skel.bss.runs) == (1001, 51, 2)
        with pytest.raises(BPFError, match="'knob_u32' is a .rodata constant, frozen at load: set it before"):
            skel.rodata.knob_u32 = 1
        assert skel.rodata.knob_u32 == 6
    assert not skel.loaded
    with pytest.raises(BPFError, match="not loaded yet"):
        skel.progs  # noqa: B018


@pytest.mark.bpf_map_type("ringbuf")
def test_execsnoop_ring_records_are_typed_and_equal_the_untyped_decode(
        bpf_skeleton: Callable[..., ModuleType], tmp_path: Any) -> None:
    mod = bpf_skeleton(prebuilt.path("execsnoop"))
    marker = tmp_path / "pb-skel-true"
    os.symlink("/bin/true", marker)
    with mod.Execsnoop() as skel:
        skel.rodata.ignore_failed = False
        skel.load().attach()
        events = skel.maps.events
        with events.reader() as typed:
            subprocess.run([str(marker), "typed"], check=True)
            mine = [e for e in typed.read(timeout=2) if e.comm == "pb-skel-true"]
        assert len(mine) == 1 and isinstance(mine[0], mod.ExecEvent)
        assert mine[0].args.startswith(str(marker)) and mine[0].retval == 0 and mine[0].pid > 0
        with RingBuffer(events.map) as raw:  # the untyped API on the same map: bytes, decoded with BTF codecs
            subprocess.run([str(marker), "raw"], check=True)
            records = [r for r in raw.read(timeout=2)]
        untyped = btf_codec(skel.spec.btf, skel.spec.btf.find_one("exec_event").id)
        decoded = [(events.decode(r), untyped.decode(r)) for r in records]
        ours = [(t, u) for t, u in decoded if t.comm == "pb-skel-true"]
        assert len(ours) == 1 and ours[0][0] == ours[0][1] and isinstance(ours[0][0], mod.ExecEvent)
        assert "raw" in ours[0][0].args.split("\0") or ours[0][0].args == str(marker)
        assert list(skel.links) == ["tracepoint__syscalls__sys_enter_execve", "tracepoint__syscalls__sys_exit_execve"]


@pytest.mark.bpf_prog_type("xdp", "sched_cls")
def test_network_skeletons_typed_per_cpu_maps(bpf_skeleton: Callable[..., ModuleType]) -> None:
    frame = packets.udp_frame("192.0.2.1", "192.0.2.2", 1, 2)
    drop = bpf_skeleton(prebuilt.path("xdp_drop"))
    with drop.XdpDrop() as skel:
        skel.rodata.drop_proto = 17
        skel.load()
        assert run(skel.progs.xdp_drop, frame, repeat=4).verdict == "XDP_DROP"
        assert sum(skel.maps.xdp_stats[1]) == 4 and sum(skel.maps.xdp_stats[0]) == 0
    tcx = bpf_skeleton(prebuilt.path("tcx"))
    with tcx.Tcx() as skel:
        skel.load()
        run(skel.progs.tcx_egress, frame, repeat=2)
        per_cpu = skel.maps.counters[1]
        assert all(isinstance(c, tcx.DirCounters) for c in per_cpu)
        assert (sum(c.packets for c in per_cpu), sum(c.bytes for c in per_cpu)) == (2, 2 * len(frame))
