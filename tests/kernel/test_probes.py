"""Feature probes ask the running kernel, and answer consistently with what loading actually does."""
from __future__ import annotations

import pytest

from pybpf.sys import abi, probes

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]


def test_basic_types_and_helpers() -> None:
    assert probes.prog_type(abi.BPF_PROG_TYPE_SOCKET_FILTER)
    assert probes.prog_type(abi.BPF_PROG_TYPE_XDP)
    assert not probes.prog_type(abi.BPF_PROG_TYPE_UNSPEC)
    assert probes.map_type(abi.BPF_MAP_TYPE_HASH) and probes.map_type(abi.BPF_MAP_TYPE_LPM_TRIE)
    assert probes.map_type(abi.BPF_MAP_TYPE_ARRAY_OF_MAPS)
    assert probes.helper(abi.BPF_PROG_TYPE_XDP, abi.BPF_FUNC_map_lookup_elem)
    assert not probes.helper(abi.BPF_PROG_TYPE_SOCKET_FILTER, 0x7FFF)  # no such helper
    # a tracing-only helper is refused to socket filters
    assert not probes.helper(abi.BPF_PROG_TYPE_SOCKET_FILTER, abi.BPF_FUNC_override_return)


def test_every_feature_answers() -> None:
    answers = {name: probes.feature(name) for name in probes.FEATURES}
    assert all(isinstance(v, bool) for v in answers.values())
    assert answers["btf"] and answers["global_data"] and answers["prog_name"]
    with pytest.raises(ValueError):
        probes.feature("no_such_feature")


def test_probe_matches_reality() -> None:
    """The ringbuf answer agrees with actually creating one."""
    import pybpf

    if probes.feature("ringbuf"):
        pybpf.Map.create("ringbuf", 0, 0, 4096).close()
    else:
        with pytest.raises(pybpf.KernelError):
            pybpf.Map.create("ringbuf", 0, 0, 4096)


@pytest.mark.feature("isa")
@pytest.mark.parametrize(("feature", "text"), [
    ("isa_v3", "w0 = 0\nif w0 s< -1 goto +0"),
    ("isa_v4", "r1 = 7\nr0 = (s16)r1"),
    ("load_acquire", "*(u32 *)(r10 - 4) = 0\nw0 = load_acquire((u32 *)(r10 - 4))"),
])
def test_instruction_set_probes_match_reality(feature: str, text: str) -> None:
    """Each ISA answer agrees with loading a program that uses that level's instructions."""
    import pybpf
    from pybpf.asm import assemble

    code = assemble(text + "\nexit")
    if probes.feature(feature):
        pybpf.Program.load(code, "socket_filter").close()
    else:
        with pytest.raises(pybpf.VerifierError):
            pybpf.Program.load(code, "socket_filter")


def test_kernel_version_code() -> None:
    import os

    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    assert probes.kernel_version_code() >> 8 == (major << 8) + minor
