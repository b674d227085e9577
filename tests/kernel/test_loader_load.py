"""pybpf.load on the real kernel: global data, map initialisation, pinning, partial loads, fd hygiene, CLI."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pybpf.prebuilt
import pytest

from pybpf.errors import BPFError, KernelError, LinkError
from pybpf.sys import abi

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def _raw(m: object, key: int) -> bytes:
    """The raw value at array index ``key`` of a pybpf Map (whatever its codecs)."""
    from pybpf.maps.map import Map

    with Map(m.dup_fd(), m.type, 4, m.value_size, m.max_entries, key="I", value="bytes") as raw:  # type: ignore
        return raw[key]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_rodata_set_before_load_and_frozen() -> None:
    import pybpf.loader as L

    with L.load(pybpf.prebuilt.path("write_watch"), globals={"target_pid": 4321}) as obj:
        rodata = obj.map(".rodata")
        assert rodata is obj.maps["write_wa.rodata"]
        assert _raw(rodata, 0)[:4] == struct.pack("<i", 4321)
        info = rodata.info()
        assert info.map_flags & abi.BPF_F_RDONLY_PROG
        with pybpf.Map(rodata.dup_fd(), rodata.type, 4, rodata.value_size, 1, key="I", value="bytes") as raw, \
                pytest.raises(KernelError):  # frozen: user space cannot change it any more
            raw[0] = bytes(rodata.value_size)
        prog = obj.programs["handle_write"]
        assert prog.section == "tracepoint/syscalls/sys_enter_write"
        assert prog.attach_to == "syscalls/sys_enter_write"
        assert rodata.info().id in prog.info().map_ids


def test_prog_array_and_map_in_map_are_initialised() -> None:
    import pybpf.loader as L

    with L.load(pybpf.prebuilt.path("maps_tour")) as obj:
        jmp = obj.maps["prog_array"]
        ids = {slot: struct.unpack("<I", _raw(jmp, slot))[0] for slot in (1, 2)}
        assert ids == {1: obj.programs["tail_step1"].info().id, 2: obj.programs["tail_step2"].info().id}
        outer = obj.maps["outer_array"]
        assert struct.unpack("<I", _raw(outer, 0))[0] == obj.maps["inner0"].info().id
        assert struct.unpack("<I", _raw(outer, 2))[0] == obj.maps["inner1"].info().id


def test_program_subset_and_max_entries() -> None:
    import pybpf.loader as L

    with L.load(pybpf.prebuilt.path("biolatency"), programs=["block_rq_issue"],
                max_entries={"hists": 77}, log_level=1) as obj:
        assert list(obj.programs) == ["block_rq_issue"]
        assert obj.maps["hists"].info().max_entries == 77
        assert "processed" in obj.programs["block_rq_issue"].verifier_log
    with pytest.raises(LinkError, match="no program"):
        L.load(pybpf.prebuilt.path("biolatency"), programs=["nope"])


def test_pinned_maps_are_reused_or_refused(uniq: str, tmp_path: object) -> None:
    import pybpf.loader as L
    from pybpf.sys.fs import ensure_bpffs

    root = os.path.join(ensure_bpffs(), uniq)
    os.makedirs(root)
    try:
        with L.load(pybpf.prebuilt.path("btf_maps"), pin_root=root) as first:
            pinned = [m for m in first.spec.maps.values() if m.pinning]
            assert pinned
            name = pinned[0].name
            assert os.path.exists(os.path.join(root, name))
            with L.load(pybpf.prebuilt.path("btf_maps"), pin_root=root) as second:
                assert second.maps[name].info().id == first.maps[name].info().id
        spec = L.ObjectFile(pybpf.prebuilt.path("btf_maps"))
        spec.maps[name].max_entries += 1
        with pytest.raises(LinkError, match=f"map '{name}'.*cannot be reused: max_entries"):
            L.load(spec, pin_root=root)
    finally:
        for f in os.listdir(root):
            os.unlink(os.path.join(root, f))
        os.rmdir(root)


def test_no_fd_leaks_across_loads_and_failures() -> None:
    import pybpf.loader as L

    from pybpf.asm import Instruction, Instructions

    ok = [pybpf.prebuilt.path(n) for n in ("maps_tour", "subprogs", "tcptracer", "globals", "legacy_maps")]
    failing = L.ObjectFile(pybpf.prebuilt.path("maps_tour"))  # maps and two programs are created, then:
    last = list(failing.programs.values())[-1]
    last.instructions = Instructions([Instruction(0x95, symbol=last.name)])  # exit with r0 unset: rejected
    for path in ok:  # warm the per-process caches (probes; the kernel BTF, whose mapping holds an fd)
        L.load(path).close()
    try:
        L.load(failing).close()
    except BPFError:
        pass
    before = _open_fds()
    for _ in range(10):
        for path in ok:
            with L.load(path) as obj:
                assert obj.programs
        with pytest.raises(BPFError):
            L.load(failing)
    assert _open_fds() == before


def test_gpl_only_helper_needs_gpl_license(tmp_path: object) -> None:
    import pybpf.loader as L

    spec = L.ObjectFile(pybpf.prebuilt.path("hello"))
    spec.license = "Proprietary"
    for p in spec.programs.values():
        p.license = "Proprietary"
    with pytest.raises(LinkError, match="GPL-only helper.*license is 'Proprietary'"):
        L.load(spec)


def test_cli_load_pins_programs_and_inspect_json(uniq: str) -> None:
    from pybpf.program import Program
    from pybpf.sys.fs import ensure_bpffs

    pin = os.path.join(ensure_bpffs(), uniq)
    obj = pybpf.prebuilt.path("tcptracer")
    try:
        out = subprocess.run([sys.executable, "-m", "pybpf", "load", obj, "--pin", pin, "--program",
                              "sys_exit_accept"], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert os.listdir(pin) == ["sys_exit_accept"]
        with Program.from_pin(os.path.join(pin, "sys_exit_accept")) as p:
            assert p.info().type == abi.BPF_PROG_TYPE_TRACEPOINT
    finally:
        if os.path.isdir(pin):
            for f in os.listdir(pin):
                os.unlink(os.path.join(pin, f))
            os.rmdir(pin)
    out = subprocess.run([sys.executable, "-m", "pybpf", "inspect", "--json", obj], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {p["name"] for p in doc["programs"]} == {"inet_sock_set_state", "sys_exit_accept4", "sys_exit_accept"}
    assert {m["name"] for m in doc["maps"]} == {"connecting", "events", "fdinstall_pids"}


def test_xdp_program_runs(tmp_path: object) -> None:
    import pybpf.loader as L

    eth = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00"
    icmp = eth + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]) + bytes(8)
    tcp = icmp[:14 + 9] + b"\x06" + icmp[14 + 10:]
    with L.load(pybpf.prebuilt.path("xdp_drop")) as obj:
        prog = obj.programs["xdp_drop"]
        assert prog.test_run(icmp).retval == abi.XDP_DROP
        assert prog.test_run(tcp).retval == abi.XDP_PASS


def _global(obj: object, name: str) -> int:
    """An integer global read back from its map after a run."""
    var = obj.spec.variables[name]  # type: ignore[attr-defined]
    raw = _raw(obj.maps[var.map], 0)  # type: ignore[attr-defined]
    return int.from_bytes(raw[var.offset:var.offset + var.size], "little")


PACKET = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + bytes(50)


def test_subprograms_run_with_the_right_calls() -> None:
    import pybpf.loader as L

    with L.load(pybpf.prebuilt.path("subprogs")) as obj:
        assert obj.programs["calc_a"].test_run(PACKET).retval == abi.XDP_PASS
        assert obj.programs["calc_b"].test_run(PACKET).retval == abi.XDP_PASS
        assert (_global(obj, "a_result"), _global(obj, "b_result")) == (45, 50)
        assert _global(obj, "a_len") == len(PACKET)


def test_callbacks_and_rodata_knob() -> None:
    import pybpf.loader as L

    with L.load(pybpf.prebuilt.path("callbacks")) as obj:
        obj.programs["run_callbacks"].test_run(PACKET)
        assert (_global(obj, "loop_sum"), _global(obj, "array_sum")) == (45, 36)
    with L.load(pybpf.prebuilt.path("callbacks"), globals={"loop_n": 5}) as obj:
        obj.programs["run_callbacks"].test_run(PACKET)
        assert _global(obj, "loop_sum") == 10


def test_kconfig_values_reach_the_program() -> None:
    import pybpf.loader as L
    from pybpf.loader.externs import kernel_config_text
    from pybpf.sys import probes

    if kernel_config_text() is None:
        pytest.skip("this kernel's config is not readable (/boot/config-*, /proc/config.gz)")
    with L.load(pybpf.prebuilt.path("kconfig")) as obj:
        obj.programs["read_kconfig"].test_run(PACKET)
        raw = _raw(obj.maps[obj.spec.variables["values"].map], 0)
        off = obj.spec.variables["values"].offset
        version, = struct.unpack_from("<I", raw, off)
        assert version == probes.kernel_version_code()
        assert struct.unpack_from("<I", raw, off + 24)[0] == 1  # CONFIG_BPF_SYSCALL=y
        assert raw[off + 40:off + 56].rstrip(b"\0") == b"(none)"  # CONFIG_DEFAULT_HOSTNAME


def test_maps_decode_with_their_btf_types() -> None:
    import pybpf.loader as L

    with L.load(pybpf.prebuilt.path("globals"), globals={"knob_u32": 2}) as obj:
        rodata = obj.map(".rodata")[0]
        assert (rodata.knob_u32, rodata.knob_name, rodata.table) == (2, "default", [10, 11, 12, 13])
        assert obj.map(".data")[0].point.x == 3
    with L.load(pybpf.prebuilt.path("maps_tour")) as obj:
        h = obj.maps["hash"]
        h[5] = 10
        assert h[5] == 10 and dict(h.items()) == {5: 10}


def test_unsatisfiable_core_relocation_is_explained(tmp_path: object) -> None:
    """The LinkError names the program, the instruction and the relocation (for every compiler:
    test_oracle_compilers.py)."""
    import pybpf.loader as L
    from loader_objects import MISSING_FIELD, MISSING_FIELD_ERROR, build

    with pytest.raises(LinkError, match=MISSING_FIELD_ERROR):
        L.load(build(tmp_path, MISSING_FIELD))
