"""``pybpf gen skeleton``/``gen types`` without a kernel: deterministic output that imports and passes
``mypy --strict`` (with scripts using it), record classes the maps' own BTF codecs fill with the same values the
untyped codecs give, ring/perf record inference, and honest notes (bytes) where an object has no types."""
from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gen_testlib import BTF_OBJECTS, import_file, module_name, write_skeleton

from pybpf import prebuilt
from pybpf.cli import main
from pybpf.errors import BTFError
from pybpf.gen import generate_skeleton, generate_types
from pybpf.gen.runtime import BTFEnum, records_for
from pybpf.maps.btfcodec import btf_codec
from pybpf.testing import packets

VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every prebuilt object's skeleton, generated once into one directory."""
    d = tmp_path_factory.mktemp("skel")
    for obj in prebuilt.names():
        write_skeleton(obj, d)
    return d


def mypy(directory: Path, *files: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    env = {"MYPYPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
                           *files], cwd=directory, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("obj", prebuilt.names())
def test_regenerating_is_byte_identical(obj: str, skeletons: Path) -> None:
    assert generate_skeleton(prebuilt.path(obj)) == (skeletons / f"{module_name(obj)}.py").read_text()


@pytest.mark.parametrize("obj", BTF_OBJECTS)
def test_records_are_what_the_codecs_decode(obj: str, skeletons: Path) -> None:
    mod = import_file(skeletons / f"{module_name(obj)}.py")
    cls = next(v for v in vars(mod).values() if isinstance(v, type) and v.__module__ == mod.__name__
               and getattr(v, "OBJECT_NAME", None))
    skel = cls()
    btf = skel.spec.btf
    rng = random.Random(obj)
    for tid, record in cls.RECORDS.items():
        if issubclass(record, BTFEnum):
            continue
        typed, untyped = skel.codec(tid), btf_codec(btf, tid)
        for data in (bytes(typed.size), rng.randbytes(typed.size)):
            value = typed.decode(data)
            assert isinstance(value, record)
            assert value == untyped.decode(data)  # the same decoder, only the classes differ
            assert typed.encode(value) == untyped.encode(untyped.decode(data))


def test_all_skeletons_pass_mypy_strict_with_scripts_using_them(skeletons: Path) -> None:
    lines = ["from __future__ import annotations", "", "from pybpf.program import Program", ""]
    for obj in BTF_OBJECTS:
        mod = import_file(skeletons / f"{module_name(obj)}.py")
        cls = next(v for v in vars(mod).values() if isinstance(v, type) and getattr(v, "OBJECT_NAME", None)
                   and v.__module__ == mod.__name__)
        name = module_name(obj)
        lines += [f"import {name}", "", f"def use_{name}(skel: {name}.{cls.__name__}) -> None:"]
        progs = [a for a in vars(getattr(mod, cls.__name__ + "Progs")).get("__annotations__", {})]
        lines += [f"    p_{a}: Program = skel.progs.{a}" for a in progs]
        lines += [f"    m_{a} = skel.maps.{a}" for a in
                  vars(getattr(mod, cls.__name__ + "Maps")).get("__annotations__", {})]
        for attr in dir(cls):
            sec = getattr(cls, attr)
            if isinstance(sec, property) and attr not in ("progs", "maps", "loaded"):
                section_cls = getattr(mod, sec.fget.__annotations__["return"])
                for var in vars(section_cls):
                    if not var.startswith("_") and var != "SECTION":
                        lines += [f"    v_{attr}_{var} = skel.{attr}.{var}", f"    skel.{attr}.{var} = v_{attr}_{var}"]
        lines.append("    print(skel.loaded)")
        lines.append("")
    (skeletons / "use_all.py").write_text("\n".join(lines) + "\n")
    files = [f"{module_name(o)}.py" for o in prebuilt.names()] + ["use_all.py"]
    r = mypy(skeletons, *files)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_catches_misuse_of_generated_types(skeletons: Path) -> None:
    (skeletons / "typed_use.py").write_text(textwrap.dedent('''
        from __future__ import annotations

        from execsnoop_skel import ExecEvent, Execsnoop
        from globals_skel import Globals, Result
        from xdp_drop_skel import XdpDrop


        def good(e: Execsnoop, g: Globals, x: XdpDrop) -> None:
            e.rodata.targ_uid = 1000
            e.rodata.ignore_failed = False
            ev: ExecEvent | None = e.maps.execs.get(1)
            for rec in e.maps.events.reader().read():
                comm: str = rec.comm
                pid: int = rec.pid
            r: Result = g.bss.result
            g.data.point = g.data.point._replace(x=1)
            g.rodata.knob_name = "name"
            per_cpu: list[int] = x.maps.xdp_stats[0]
            x.rodata.drop_proto = 17
    '''))
    assert mypy(skeletons, "typed_use.py").returncode == 0
    (skeletons / "typed_misuse.py").write_text(textwrap.dedent('''
        from __future__ import annotations

        from execsnoop_skel import Execsnoop


        def bad(e: Execsnoop) -> None:
            e.rodata.targ_uid = "root"
            n: str = e.maps.execs[1].pid
            e.maps.nope
    '''))
    out = mypy(skeletons, "typed_misuse.py").stdout
    assert out.count("error:") == 3, out
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in out


def test_ring_and_perf_records_are_inferred_or_explained(skeletons: Path) -> None:
    texts = {o: (skeletons / f"{module_name(o)}.py").read_text() for o in prebuilt.names()}
    assert "events: _rt.RingBufferMap[ExecEvent]" in texts["execsnoop.bpf.o"]
    assert "ringbuf: _rt.RingBufferMap[TourRecord]" in texts["maps_tour.bpf.o"]
    assert "events: _rt.PerfBufferMap[TcpEvent]" in texts["tcptracer.bpf.o"]  # 3 structs of 88 bytes, 2 kernel's
    assert "log_map: _rt.PerfBufferMap[WriteEvent]" in texts["perf_legacy.bpf.o"]
    tour = generate_skeleton(prebuilt.path("maps_tour"), records={"ringbuf": "struct tour_record"})
    assert "given with --record" in tour
    with pytest.raises(BTFError, match="not a ring or perf buffer map"):
        generate_skeleton(prebuilt.path("maps_tour"), records={"hash": "tour_record"})
    with pytest.raises(BTFError, match="no struct, union or enum 'nope'"):
        generate_skeleton(prebuilt.path("maps_tour"), records={"ringbuf": "nope"})


def test_object_without_btf_falls_back_to_bytes_with_notes(skeletons: Path) -> None:
    text = (skeletons / "legacy_maps_ext_skel.py").read_text()
    assert "the object has no BTF: map keys/values, globals and records are bytes" in text
    assert "proto_packets: _rt.TypedMap[bytes, bytes]" in text
    assert "proto_bytes: _rt.TypedMap[bytes, list[bytes]]" in text
    assert "class " in text and "typing.NamedTuple" not in text
    legacy = (skeletons / "legacy_maps_skel.py").read_text()
    assert "map 'stats': no BTF key or value type: key and value stay bytes" in legacy
    assert "stats: _rt.TypedMap[int, bytes]" in legacy  # an array's u32 index is still an int


def test_compiler_generated_globals_are_noted_not_exposed(skeletons: Path) -> None:
    text = (skeletons / "xdp_drop_skel.py").read_text()
    assert "global 'xdp_drop.____fmt' (.rodata): not a Python name (compiler-generated): not exposed" in text
    assert 'drop_proto = _rt.Var[int]("drop_proto")' in text and 'verbose = _rt.Var[bool]("verbose")' in text


def test_enums_nested_anonymous_types_and_bitfields(tmp_path: Path) -> None:
    from pybpf.btf import BTF, Array, Enum, EnumValue, Int, Member, Struct, Union

    b = BTF()
    u8, u32 = b.add(Int("unsigned char", 1)), b.add(Int("unsigned int", 4))
    color = b.add(Enum("color", 4, [EnumValue("RED", 0), EnumValue("GREEN", 1), EnumValue("name", 2)]))
    anon = b.add(Union("", 4, [Member("a", u32, 0), Member("raw", b.add(Array(u8, u32, 4)), 0)]))
    rec = b.add(Struct("rec", 16, [Member("class", color, 0), Member("", anon, 32), Member("lo", u32, 64, 3),
                                  Member("hi", u32, 67, 5), Member("index", u32, 96)]))
    path = tmp_path / "rec.btf"
    path.write_bytes(b.to_bytes())
    text = generate_types(str(path))
    assert text == generate_types(str(path))
    mod_path = tmp_path / "rec_types.py"
    mod_path.write_text(text)
    mod = import_file(mod_path)
    assert mod.Rec._fields == ("class_", "field1", "lo", "hi", "index_")
    assert [m.name for m in mod.Color] == ["RED", "GREEN", "name_"]
    codec = btf_codec(b, rec, records=records_for(b, mod.TYPES))
    v = codec.decode(bytes([1, 0, 0, 0, 1, 2, 3, 4, 0b11101011, 0, 0, 0, 9, 0, 0, 0]))
    assert v == mod.Rec(mod.Color.GREEN, mod.RecField1(0x04030201, b"\1\2\3\4"), 3, 29, 9)
    assert isinstance(v.class_, mod.Color) and isinstance(v.field1, mod.RecField1)
    assert codec.decode(bytes([7]) + bytes(15)).class_ == 7  # a value the enum does not name
    assert "lo: int  # offset 8, bit 0: unsigned int lo:3" in text
    assert mypy(tmp_path, "rec_types.py").returncode == 0


@pytest.mark.skipif(not Path(VMLINUX).exists(), reason="no kernel BTF at /sys/kernel/btf/vmlinux")
def test_types_from_vmlinux_decode_packet_headers(tmp_path: Path) -> None:
    from pybpf.btf import BTF

    out = tmp_path / "net_types.py"
    assert main(["gen", "types", VMLINUX, "--type", "iphdr", "--type", "struct ethhdr", "-o", str(out)]) == 0
    mod = import_file(out)
    btf = BTF.load(VMLINUX)
    records = records_for(btf, mod.TYPES)
    assert set(records.values()) == set(mod.TYPES.values())
    frame = packets.udp_frame("192.0.2.1", "192.0.2.2", 1, 2)
    eth = btf_codec(btf, btf.find_one("ethhdr").id, records=records).decode(frame)
    ip = btf_codec(btf, btf.find_one("iphdr").id, records=records).decode(frame[14:])
    assert isinstance(eth, mod.Ethhdr) and eth.h_dest == packets.mac("02:00:00:00:00:02")
    assert isinstance(ip, mod.Iphdr) and (ip.version, ip.ihl, ip.protocol, ip.ttl) == (4, 5, 17, 64)
    assert mypy(tmp_path, "net_types.py").returncode == 0


def test_cli_skeleton_matches_the_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.py"
    assert main(["gen", "skeleton", prebuilt.path("tcx"), "-o", str(out), "--name", "Counters"]) == 0
    assert out.read_text() == generate_skeleton(prebuilt.path("tcx"), "Counters")
    assert "class Counters(_rt.Skeleton):" in out.read_text()
    assert main(["gen", "skeleton", prebuilt.path("maps_tour"), "--record", "ringbuf"]) == 1
    assert "expected MAP=TYPE" in capsys.readouterr().err
