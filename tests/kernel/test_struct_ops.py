"""struct_ops on the real kernel: prebuilt struct_ops.bpf.o is a TCP congestion control written in BPF
(struct tcp_congestion_ops), registered through a bpf_link (SEC(".struct_ops.link")) and by the map update
(SEC(".struct_ops")).  Each test gives it names unique to the test, registers it, runs one loopback connection with
it (TCP_CONGESTION) and checks that its programs ran for that socket: init exactly once, cong_avoid on ACKs;
closing the link unregisters it."""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from conftest import kernel_skip

import pybpf
from pybpf import prebuilt
from pybpf.loader import ObjectFile, ObjectSpec

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

AVAILABLE = "/proc/sys/net/ipv4/tcp_available_congestion_control"


def available() -> list[str]:
    with open(AVAILABLE) as f:
        return f.read().split()


def rename(spec: ObjectSpec, uniq: str) -> dict[str, str]:
    """Give both variables of ``spec`` a name unique to this test (congestion control names are global to the
    kernel); return map name -> its congestion control's name."""
    assert spec.btf is not None
    names = {"pybpf_cc": f"pl{uniq}"[:15], "pybpf_cc_old": f"po{uniq}"[:15]}
    for map_name, cc in names.items():
        m = spec.maps[map_name]
        member = next(mb for mb in spec.btf[m.value_type].members if mb.name == "name")
        data = bytearray(m.data or b"")
        data[member.byte_offset:member.byte_offset + 16] = cc.encode().ljust(16, b"\0")
        m.data = bytes(data)
    return names


def one_connection(cc: str) -> str:
    """Send 64 KiB over a loopback connection whose client uses congestion control ``cc``; return what the client
    socket says it uses."""
    with socket.create_server(("127.0.0.1", 0)) as srv, socket.socket() as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        client.connect(srv.getsockname())
        conn, _ = srv.accept()
        with conn:
            client.sendall(b"x" * 65536)
            got = 0
            while got < 65536:
                got += len(conn.recv(65536))
        return client.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()


def load(spec: ObjectSpec, feature: str) -> pybpf.Object:
    try:
        return pybpf.load(spec)
    except pybpf.NotSupported as e:
        kernel_skip(f"struct_ops.bpf.o does not load here: {e}", feature=feature)
        raise


@pytest.fixture
def loaded(uniq: str) -> Iterator[tuple[pybpf.Object, dict[str, str]]]:
    spec = ObjectFile(prebuilt.path("struct_ops"))
    names = rename(spec, uniq)
    with load(spec, "struct_ops_link") as obj:
        yield obj, names


@pytest.mark.feature("struct_ops_link")
def test_link_registers_a_congestion_control(loaded: tuple[pybpf.Object, dict[str, str]]) -> None:
    obj, names = loaded
    cc = names["pybpf_cc"]
    assert cc not in available()
    with obj.attach_struct_ops("pybpf_cc") as link:
        assert (link.kind, link.mechanism, link.target) == ("struct_ops", "bpf_link", "pybpf_cc")
        assert link.info().type_name == "struct_ops"
        assert cc in available()
        assert one_connection(cc) == cc
        counts = obj.map(".bss")[0]
        assert counts.inits == 1 and counts.acks >= 1
    assert cc not in available()


@pytest.mark.feature("struct_ops")
def test_map_update_registers_the_older_way(uniq: str) -> None:
    """SEC(".struct_ops") alone (the link variable left out of the spec, so this runs before Linux 6.4 too)."""
    spec = ObjectFile(prebuilt.path("struct_ops"))
    cc = rename(spec, uniq)["pybpf_cc_old"]
    del spec.maps["pybpf_cc"]
    with load(spec, "struct_ops") as obj:
        with obj.attach_struct_ops("pybpf_cc_old") as link:
            assert link.mechanism == "map_update" and cc in available()
            assert one_connection(cc) == cc
            assert obj.map(".bss")[0].inits == 1
        assert cc not in available()


@pytest.mark.feature("struct_ops_link")
def test_skeleton_attach_registers_every_struct_ops_map(uniq: str, bpf_skeleton: Callable[..., ModuleType]) -> None:
    """As libbpf's skeleton attach: attach() registers the struct_ops maps (their programs are not attached
    themselves); close() unregisters them."""
    mod = bpf_skeleton(prebuilt.path("struct_ops"))
    with mod.StructOps() as skel:
        names = rename(skel.spec, uniq)
        try:
            skel.load()
        except pybpf.NotSupported as e:
            kernel_skip(f"struct_ops.bpf.o does not load here: {e}", feature="struct_ops_link")
        skel.attach()
        assert sorted(skel.links) == ["pybpf_cc", "pybpf_cc_old"]
        assert set(names.values()) <= set(available())
        assert one_connection(names["pybpf_cc_old"]) == names["pybpf_cc_old"]
    assert not set(names.values()) & set(available())


def test_struct_ops_maps_and_programs_as_the_object_describes_them() -> None:
    spec = ObjectFile(prebuilt.path("struct_ops"))
    link, old = spec.maps["pybpf_cc"], spec.maps["pybpf_cc_old"]
    assert (link.type_name, link.section, link.flags) == ("struct_ops", ".struct_ops.link", 0x2000)
    assert (old.section, old.flags) == (".struct_ops", 0)
    assert spec.btf is not None
    members = {mb.byte_offset: mb.name for mb in spec.btf[link.value_type].members}
    assert {members[off]: prog for off, prog in link.values.items()} == {
        "init": "pybpf_init", "ssthresh": "pybpf_ssthresh", "cong_avoid": "pybpf_cong_avoid",
        "undo_cwnd": "pybpf_undo_cwnd"}


def test_errors(loaded: tuple[pybpf.Object, dict[str, str]]) -> None:
    obj, _ = loaded
    with pytest.raises(pybpf.BPFError, match=r"attach_struct_ops\(map_name\)"):
        obj.programs["pybpf_init"].attach()
    with pytest.raises(KeyError, match="struct_ops maps: pybpf_cc, pybpf_cc_old"):
        obj.attach_struct_ops("nope")
    assert obj.struct_ops_maps == ["pybpf_cc", "pybpf_cc_old"]
    with pytest.raises(pybpf.LinkError, match="program 'pybpf_cong_avoid', which was not loaded"):
        pybpf.load(prebuilt.path("struct_ops"), programs=["pybpf_ssthresh"])
