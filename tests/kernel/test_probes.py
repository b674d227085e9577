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


def test_kernel_version_code() -> None:
    import os

    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    assert probes.kernel_version_code() >> 8 == (major << 8) + minor
