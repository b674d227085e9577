"""The loader: ELF object -> :class:`ObjectSpec` (pure: SEC table, maps, global data, relocations, linking)
and :class:`ObjectSpec` -> :class:`Object` (maps created, programs loaded), the way libbpf does it.

Names resolve lazily: importing this package imports neither pyelftools nor the kernel door.
"""
from __future__ import annotations

from .._lazy import lazy_exports


_LAZY = {
    "ObjectFile": "reader", "internal_map_name": "reader",
    "ObjectSpec": "spec", "ProgramSpec": "spec", "MapSpec": "spec", "VariableSpec": "spec", "Relocation": "spec",
    "Line": "spec",
    "link_program": "linker", "LinkedProgram": "linker",
    "Object": "object", "load": "object",
    "parse_section": "sections", "SectionInfo": "sections",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
