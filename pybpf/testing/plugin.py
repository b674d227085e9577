"""pytest plugin for testing BPF programs (entry point ``pytest11``: ``pybpf = "pybpf.testing.plugin"``).

Fixtures (everything they create is closed after the test):

* ``bpf_object(source, **load_options)`` -- load an object (a path, bytes, an ``ObjectSpec``) or a generated
  skeleton class, return the live ``Object`` (or loaded skeleton);
* ``bpf_skeleton(obj_path, **options)`` -- generate an object's typed skeleton module and import it;
* ``bpf_program(insns, prog_type, **options)`` -- load instructions (assembler text, ``Instructions``, bytes);
* ``bpf_map(map_type, key_size, value_size, max_entries, **options)`` -- create a map.

Markers skip a test, with the reason, when the running kernel cannot run it -- probed with
:mod:`pybpf.sys.probes`, never guessed: ``bpf_feature("ringbuf", ...)`` (a :data:`pybpf.sys.probes.FEATURES`
name, or ``kprobe``/``uprobe``), ``bpf_prog_type("xdp", ...)``, ``bpf_map_type("ringbuf", ...)`` and
``bpf_root`` (CAP_BPF or CAP_SYS_ADMIN; every bpf marker implies it).

Under ``PYBPF_REQUIRE_KERNEL=1`` a skip becomes a failure, unless the feature is declared absent on this host:
by the ``pytest_bpf_absent_features(config)`` hook (a conftest returns names), the ``bpf_absent_features`` ini
option or ``PYBPF_ABSENT_FEATURES`` (comma-separated).  :func:`bpf_skip` applies the same policy in a test.

Helpers (also in :mod:`pybpf.testing`): :func:`pybpf.testing.run` (BPF_PROG_TEST_RUN with typed results),
:func:`pybpf.testing.assert_map` (map contents with a readable diff) and :mod:`pybpf.testing.packets`.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import pytest

REQUIRE_ENV = "PYBPF_REQUIRE_KERNEL"
ABSENT_ENV = "PYBPF_ABSENT_FEATURES"
#: marker features that stand for several probes (any of them is enough)
FEATURE_ALIASES = {"kprobe": ("kprobe_pmu", "kprobe_events"), "uprobe": ("uprobe_pmu",)}
_CAP_SYS_ADMIN, _CAP_BPF = 21, 39
_MARKERS = (
    "bpf_feature(*names): needs these kernel features (pybpf.sys.probes names, or kprobe/uprobe); probed, "
    "skipped with the reason when absent",
    "bpf_prog_type(*names): needs these program types (xdp, sched_cls...); probed",
    "bpf_map_type(*names): needs these map types (ringbuf, lru_hash...); probed",
    "bpf_root: needs CAP_BPF or CAP_SYS_ADMIN for the bpf() syscall",
)


class _Hooks:
    """Hook specifications this plugin adds."""

    @pytest.hookspec(firstresult=False)
    def pytest_bpf_absent_features(self, config: pytest.Config) -> Iterable[str]:  # type: ignore[empty-body]
        """Names of kernel features truly absent on this host: a skip for them stays a skip under
        ``PYBPF_REQUIRE_KERNEL=1``."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register :meth:`_Hooks.pytest_bpf_absent_features`."""
    pluginmanager.add_hookspecs(_Hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``bpf_absent_features`` ini option."""
    parser.addini("bpf_absent_features", "kernel features absent on this host (skips that stay skips under "
                  f"{REQUIRE_ENV}=1)", type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers."""
    for line in _MARKERS:
        config.addinivalue_line("markers", line)


# --- skipping ------------------------------------------------------------------------------------------------


def absent_features(config: pytest.Config) -> set[str]:
    """Features declared absent on this host (hook, ini option, environment)."""
    out = set(config.getini("bpf_absent_features"))
    out.update(filter(None, (s.strip() for s in os.environ.get(ABSENT_ENV, "").split(","))))
    for names in config.hook.pytest_bpf_absent_features(config=config):
        out.update(names)
    return out


def bpf_skip(config: pytest.Config, reason: str, feature: str | None = None) -> None:
    """Skip for a missing kernel feature -- or fail under ``PYBPF_REQUIRE_KERNEL=1`` unless ``feature`` is
    declared absent on this host."""
    if os.environ.get(REQUIRE_ENV) == "1" and (feature is None or feature not in absent_features(config)):
        pytest.fail(f"{REQUIRE_ENV}=1 but: {reason}", pytrace=False)
    pytest.skip(reason)


def privileged() -> bool:
    """True if this process has CAP_BPF or CAP_SYS_ADMIN (read from the kernel's view of it)."""
    try:
        with open("/proc/self/status") as f:
            caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return os.geteuid() == 0
    return bool(caps >> _CAP_BPF & 1 or caps >> _CAP_SYS_ADMIN & 1)


def missing(kind: str, name: str) -> str | None:
    """Why the running kernel lacks ``name`` (a feature, program type or map type; ``kind`` says which), or
    None if it has it."""
    from ..sys import probes

    if kind == "feature":
        wanted = FEATURE_ALIASES.get(name, (name,))
        if any(probes.feature(n) for n in wanted):
            return None
        return f"the kernel lacks the BPF feature {name!r} (probed: {', '.join(wanted)})"
    if kind == "prog_type":
        from ..program import prog_type_of

        if probes.prog_type(prog_type_of(name)):
            return None
        return f"the kernel cannot load {name} programs (probed)"
    from ..maps.map import map_type_of

    if probes.map_type(map_type_of(name)):
        return None
    return f"the kernel cannot create {name} maps (probed)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (with the reason) tests whose bpf markers the kernel or the privileges do not satisfy."""
    marks = {m: [n for mark in item.iter_markers(m) for n in mark.args]
             for m in ("bpf_feature", "bpf_prog_type", "bpf_map_type")}
    if not any(marks.values()) and item.get_closest_marker("bpf_root") is None:
        return
    if not privileged():
        bpf_skip(item.config, "needs root (CAP_BPF or CAP_SYS_ADMIN) for the bpf() syscall", "root")
    for marker, kind in (("bpf_feature", "feature"), ("bpf_prog_type", "prog_type"), ("bpf_map_type", "map_type")):
        for name in marks[marker]:
            reason = missing(kind, name)
            if reason is not None:
                bpf_skip(item.config, reason, name)


# --- fixtures --------------------------------------------------------------------------------------------------


class _Closer:
    """What a factory fixture created, closed in reverse order at teardown."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def keep(self, obj: Any) -> Any:
        self.items.append(obj)
        return obj

    def close(self) -> None:
        while self.items:
            self.items.pop().close()


@pytest.fixture
def bpf_object() -> Iterator[Callable[..., Any]]:
    """Factory: ``bpf_object(source, **load_options)`` loads an object (path, bytes, ``ObjectSpec``; options
    as for :func:`pybpf.loader.load`) or a generated skeleton class, and closes it after the test."""
    closer = _Closer()

    def load(source: Any, **options: Any) -> Any:
        from ..gen.runtime import Skeleton
        from ..loader import load as load_object

        if isinstance(source, type) and issubclass(source, Skeleton):
            return closer.keep(source().load(**options))
        return closer.keep(load_object(source, **options))

    yield load
    closer.close()


@pytest.fixture
def bpf_skeleton(tmp_path: Path) -> Callable[..., ModuleType]:
    """Factory: ``bpf_skeleton(obj_path, **options)`` generates the object's skeleton module (options as for
    :func:`pybpf.gen.generate_skeleton`) into the test's temporary directory and imports it."""
    def generate(obj_path: str, **options: Any) -> ModuleType:
        import importlib.util

        from ..gen import generate_skeleton

        path = tmp_path / f"{os.path.basename(obj_path).split('.')[0]}_skel.py"
        path.write_text(generate_skeleton(obj_path, **options))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return generate


@pytest.fixture
def bpf_program() -> Iterator[Callable[..., Any]]:
    """Factory: ``bpf_program(insns, prog_type, **options)`` loads instructions (assembler text,
    ``Instructions`` or bytes; options as for :meth:`pybpf.Program.load`), closed after the test."""
    closer = _Closer()

    def load(insns: Any, prog_type: int | str, **options: Any) -> Any:
        from ..program import Program

        return closer.keep(Program.load(insns, prog_type, **options))

    yield load
    closer.close()


@pytest.fixture
def bpf_map() -> Iterator[Callable[..., Any]]:
    """Factory: ``bpf_map(map_type, key_size, value_size, max_entries, **options)`` creates a map (options as
    for :meth:`pybpf.Map.create`), closed after the test."""
    closer = _Closer()

    def create(map_type: int | str, key_size: int, value_size: int, max_entries: int, **options: Any) -> Any:
        from ..maps.map import Map

        return closer.keep(Map.create(map_type, key_size, value_size, max_entries, **options))

    yield create
    closer.close()
