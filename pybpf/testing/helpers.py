"""Test helpers with no pytest dependency: :func:`run` (BPF_PROG_TEST_RUN with typed results) and
:func:`assert_map` (a map's contents against what is expected, with a readable diff)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from ..sys import abi

_ETH_HLEN = 14
_PACKET_TYPES = frozenset((abi.BPF_PROG_TYPE_XDP, abi.BPF_PROG_TYPE_SCHED_CLS, abi.BPF_PROG_TYPE_SCHED_ACT,
                           abi.BPF_PROG_TYPE_SOCKET_FILTER, abi.BPF_PROG_TYPE_CGROUP_SKB,
                           abi.BPF_PROG_TYPE_LWT_IN, abi.BPF_PROG_TYPE_LWT_OUT, abi.BPF_PROG_TYPE_LWT_XMIT))


class RunResult(NamedTuple):
    """One BPF_PROG_TEST_RUN: the program's return value, the packet and context after the run, the average
    duration of one run in nanoseconds, and the program type (for :attr:`verdict`)."""

    retval: int
    data: bytes
    ctx: bytes
    duration_ns: int
    prog_type: int

    @property
    def signed(self) -> int:
        """:attr:`retval` as the signed 32-bit ``int`` a C program returned (tc's -1 rather than 4294967295)."""
        return self.retval - (1 << 32) if self.retval >> 31 else self.retval

    @property
    def verdict(self) -> str:
        """The return value by name where the program type defines names (``XDP_DROP``, ``TCX_NEXT``), else the
        number."""
        enum = _VERDICTS.get(self.prog_type)
        if enum is not None:
            for name in abi._ENUMS[enum]:
                if getattr(abi, name) == self.signed and not name.startswith("__"):
                    return str(name)
        return str(self.signed)


_VERDICTS = {abi.BPF_PROG_TYPE_XDP: "xdp_action", abi.BPF_PROG_TYPE_SCHED_CLS: "tcx_action_base"}


def run(prog: Any, data: bytes = b"", ctx: bytes | None = None, repeat: int = 1, **options: Any) -> RunResult:
    """Run ``prog`` (a :class:`~pybpf.Program`) in the kernel on packet ``data`` and/or context ``ctx``,
    ``repeat`` times (BPF_PROG_TEST_RUN; ``options``: ``flags``, ``cpu``, ``data_size_out``...)."""
    if prog.type in _PACKET_TYPES and len(data) < _ETH_HLEN:
        raise ValueError(f"program {prog.name!r} runs on packets: give at least an Ethernet header "
                         f"({_ETH_HLEN} bytes; see pybpf.testing.packets), got {len(data)} bytes")
    r = prog.test_run(data, ctx, repeat, **options)
    return RunResult(r.retval, r.data, r.ctx, r.duration_ns, prog.type)


def map_diff(actual: Mapping[Any, Any], expected: Mapping[Any, Any], exact: bool = True) -> list[str]:
    """The differences between two map contents, one line each (empty when they agree): values that differ,
    expected keys that are missing and, with ``exact``, keys that were not expected."""
    lines = []
    for key, want in expected.items():
        if key not in actual:
            lines.append(f"missing key {key!r} (expected {want!r})")
        elif actual[key] != want:
            lines.append(f"key {key!r}: expected {want!r}, got {actual[key]!r}")
    if exact:
        lines += [f"unexpected key {k!r}: {v!r}" for k, v in actual.items() if k not in expected]
    return lines


def assert_map(mp: Any, expected: Mapping[Any, Any], *, exact: bool = True,
               percpu: Callable[[list[Any]], Any] | None = None) -> None:
    """Assert that map ``mp`` (a :class:`~pybpf.Map` or a skeleton's typed map) holds ``expected``.

    ``exact=False`` checks only the expected keys (e.g. a few slots of an array map); ``percpu`` folds each
    per-CPU value list into one value first (``percpu=sum``).  A mismatch raises AssertionError listing every
    difference."""
    actual = {k: (percpu(v) if percpu is not None else v) for k, v in mp.items()}
    lines = map_diff(actual, expected, exact)
    if lines:
        name = getattr(getattr(mp, "map", mp), "name", "")
        raise AssertionError(f"map {name!r} differs from what was expected:\n" + "\n".join(f"  {ln}" for ln in lines))
