"""Helpers for testing BPF programs from Python: :func:`run`, :func:`assert_map`, packet builders
(:mod:`pybpf.testing.packets`) and the pytest plugin (:mod:`pybpf.testing.plugin`: fixtures and skip markers).
Importing this package does not import pytest."""
from __future__ import annotations

from typing import Any

_LAZY = {"run": "helpers", "RunResult": "helpers", "assert_map": "helpers", "map_diff": "helpers"}

__all__ = sorted(_LAZY) + ["packets"]


def __getattr__(name: str) -> Any:
    import importlib

    if name == "packets":
        return importlib.import_module(f"{__name__}.packets")
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value
