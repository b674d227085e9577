"""Kernel enum values from the names users type: ``"xdp"``, ``"percpu_array"``, ``"BPF_MAP_TYPE_HASH"``."""
from __future__ import annotations

from . import abi


def enum_value(enum: str, prefix: str, value: int | str) -> int:
    """The value of kernel enum ``enum`` named ``value`` (any case, with or without ``prefix``); ints pass through.
    An unknown name raises ValueError listing the known ones."""
    if isinstance(value, int):
        return value
    name = value.upper()
    if not name.startswith(prefix):
        name = prefix + name
    members = abi._ENUMS[enum]
    if name not in members:
        known = ", ".join(n[len(prefix):].lower() for n in members if not n.startswith("__"))
        raise ValueError(f"unknown {enum.replace('bpf_', '').replace('_', ' ')} {value!r}; known: {known}")
    return int(getattr(abi, name))
