"""Helpers for testing BPF programs from Python: :func:`run`, :func:`assert_map`, packet builders
(:mod:`pybpf.testing.packets`) and the pytest plugin (:mod:`pybpf.testing.plugin`: fixtures and skip markers).
Importing this package does not import pytest."""
from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {"run": "helpers", "RunResult": "helpers", "assert_map": "helpers", "map_diff": "helpers",
         "packets": "packets"}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
