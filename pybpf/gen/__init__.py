"""Code generation from eBPF objects: typed Python skeletons and record types (``pybpf gen``).

* :func:`generate_skeleton` -- a self-contained module with a typed class for an object (``pybpf gen skeleton``);
* :func:`generate_types` -- record types alone, from an object or raw BTF such as vmlinux (``pybpf gen types``);
* :mod:`pybpf.gen.runtime` -- what generated modules build on.
"""
from __future__ import annotations

from typing import Any

__all__ = ["generate_skeleton", "generate_types"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import skeleton

        value = getattr(skeleton, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
