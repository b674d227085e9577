"""pybpf's prebuilt CO-RE objects (built from ``src/*.bpf.c`` by tools/build_objs.sh, shipped in the wheel)."""
from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    """Absolute path of the prebuilt object ``name`` (``"hello.bpf.o"`` or just ``"hello"``)."""
    if not name.endswith(".o"):
        name += ".bpf.o"
    full = os.path.join(_HERE, name)
    if not os.path.exists(full):
        raise FileNotFoundError(f"no prebuilt object {name!r}; available: {', '.join(names())}")
    return full


def names() -> list[str]:
    """File names of every prebuilt object."""
    return sorted(f for f in os.listdir(_HERE) if f.endswith(".o"))
