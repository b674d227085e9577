"""The loader: ELF object -> :class:`ObjectSpec` (pure: SEC table, maps, global data, relocations, linking)
and :class:`ObjectSpec` -> :class:`Object` (maps created, programs loaded), the way libbpf does it.

Names resolve lazily: importing this package imports neither pyelftools nor the kernel door.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ObjectFile": "reader", "internal_map_name": "reader",
    "ObjectSpec": "spec", "ProgramSpec": "spec", "MapSpec": "spec", "VariableSpec": "spec", "Relocation": "spec",
    "Line": "spec",
    "link_program": "linker", "LinkedProgram": "linker",
    "Object": "object", "load": "object",
    "parse_section": "sections", "SectionInfo": "sections",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
