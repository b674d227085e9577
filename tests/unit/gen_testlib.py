"""Shared by the gen tests: generate a prebuilt object's skeleton into a directory and import it."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pybpf import prebuilt
from pybpf.gen import generate_skeleton
from pybpf.loader import ObjectFile

#: prebuilt objects with BTF (every one but the hand-made legacy object)
BTF_OBJECTS = [n for n in prebuilt.names() if ObjectFile(prebuilt.path(n)).btf is not None]


def module_name(obj: str) -> str:
    """``execsnoop.bpf.o`` -> ``execsnoop_skel``."""
    return obj.split(".")[0] + "_skel"


def write_skeleton(obj: str, directory: Path) -> Path:
    """Generate the skeleton of prebuilt ``obj`` into ``directory``; return its path."""
    path = directory / f"{module_name(obj)}.py"
    path.write_text(generate_skeleton(prebuilt.path(obj)))
    return path


def import_file(path: Path) -> ModuleType:
    """Import a generated module from its file (registered under its file name)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod
