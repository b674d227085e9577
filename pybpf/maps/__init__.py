"""Maps and events: the dict-like :class:`Map`, key/value codecs (struct formats, ctypes, BTF), ring and perf
buffer readers, histogram printing and stack symbolisation.

Names resolve lazily (``pybpf.maps.RingBuffer`` imports only what it needs):

* :class:`Map`, :class:`MapInfo`, :class:`BuildIdFrame` (``map``);
* :class:`Codec`, :class:`LpmKey`, :func:`struct_codec`, :func:`raw_codec`, :func:`ctypes_codec`,
  :func:`fd_codec`, :func:`lpm_codec` (``codec``) and :func:`btf_codec` (``btfcodec``);
* :class:`RingBuffer`, :class:`UserRingBuffer` (``ringbuf``), :class:`PerfBuffer` (``perfbuf``),
  :class:`Poller` (``reader``);
* :func:`log2_hist`, :func:`linear_hist` (``hist``); :class:`KernelSymbols`, :class:`ProcessSymbols` (``symbols``).
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Map": "map", "MapInfo": "map", "BuildIdFrame": "map",
    "Codec": "codec", "LpmKey": "codec", "struct_codec": "codec", "raw_codec": "codec", "ctypes_codec": "codec",
    "fd_codec": "codec", "lpm_codec": "codec", "btf_codec": "btfcodec",
    "RingBuffer": "ringbuf", "UserRingBuffer": "ringbuf", "Reservation": "ringbuf", "PerfBuffer": "perfbuf",
    "Poller": "reader", "Reader": "reader",
    "log2_hist": "hist", "linear_hist": "hist",
    "KernelSymbols": "symbols", "ProcessSymbols": "symbols", "kernel_symbols": "symbols",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
