"""Histogram printing in the layout BCC's ``print_log2_hist``/``print_linear_hist`` made familiar.

A log2 histogram map holds counts by slot (slot ``i`` counts values in ``[2**(i-1), 2**i - 1]``); a linear one
by value.  Keys may also be ``(bucket, slot)`` pairs (a struct key whose first member is a bucket such as a
disk or a pid and whose last member is the slot): then one histogram is printed per bucket, each under a
``section_header = bucket`` line.  ``val_type`` names the column (``"usecs"``, ``"msecs"``, ``"kbytes"``...).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

STARS_MAX = 40
LOG2_SLOTS = 65
LINEAR_SLOTS = 1025


def stars(value: int, value_max: int, width: int) -> str:
    """The bar of a histogram row: ``width`` stars for ``value_max`` (a ``+`` marks a value beyond it)."""
    if value_max <= 0:
        return ""
    n = 0
    while n <= width * value / value_max - 1 and n <= width - 1:
        n += 1
    text = "*" * n
    return text[:-1] + "+" if value > value_max else text


def _dense(counts: Sequence[int] | Mapping[int, int], slots: int) -> list[int]:
    if isinstance(counts, Mapping):
        vals = [0] * slots
        for slot, v in counts.items():
            if not 0 <= slot < slots:
                raise ValueError(f"histogram slot {slot} is outside 0..{slots - 1}")
            vals[slot] = v
        return vals
    return list(counts)


def log2_hist(counts: Sequence[int] | Mapping[int, int], val_type: str = "value",
              strip_leading_zero: bool = False) -> str:
    """A log2 histogram as text (one line per slot from 1 to the last non-empty one)."""
    vals = _dense(counts, LOG2_SLOTS)
    idx_max, val_max = -1, 0
    for i, v in enumerate(vals):
        if v > 0:
            idx_max = i
        val_max = max(val_max, v)
    if idx_max <= 32:
        header, body, width = "     %-19s : count     distribution", "%10d -> %-10d : %-8d |%-*s|", STARS_MAX
    else:
        header, body, width = ("               %-29s : count     distribution", "%20d -> %-20d : %-8d |%-*s|",
                               STARS_MAX // 2)
    lines = [header % val_type] if idx_max > 0 else []
    strip = strip_leading_zero
    for i in range(1, idx_max + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        v = vals[i]
        if strip and not v:
            continue
        strip = False
        lines.append(body % (low, high, v, width, stars(v, val_max, width)))
    return "".join(line + "\n" for line in lines)


def linear_hist(counts: Sequence[int] | Mapping[int, int], val_type: str = "value",
                strip_leading_zero: bool = False) -> str:
    """A linear histogram as text (one line per value from 0 to the last non-empty one)."""
    vals = _dense(counts, LINEAR_SLOTS)
    idx_max, val_max = -1, 0
    for i, v in enumerate(vals):
        if v > 0:
            idx_max = i
        val_max = max(val_max, v)
    lines = ["     %-13s : count     distribution" % val_type] if idx_max >= 0 else []
    strip = strip_leading_zero
    for i in range(idx_max + 1):
        v = vals[i]
        if strip and not v:
            continue
        strip = False
        lines.append("        %-10d : %-8d |%-*s|" % (i, v, STARS_MAX, stars(v, val_max, STARS_MAX)))
    return "".join(line + "\n" for line in lines)


def sections(items: Iterable[tuple[Any, Any]], bucket_fn: Callable[[Any], Any] | None = None
             ) -> dict[Any, dict[int, int]] | dict[int, int]:
    """Group histogram map items: ``{slot: count}`` for int keys, ``{bucket: {slot: count}}`` for keys that
    are tuples/records ``(bucket, ..., slot)``.  Per-CPU values are summed."""
    flat: dict[int, int] = {}
    grouped: dict[Any, dict[int, int]] = {}
    for k, v in items:
        count = sum(v) if isinstance(v, list) else int(v)
        if isinstance(k, tuple):
            bucket = bucket_fn(k[0]) if bucket_fn else k[0]
            slots = grouped.setdefault(bucket, {})
            slots[k[-1]] = slots.get(k[-1], 0) + count
        else:
            flat[k] = flat.get(k, 0) + count
    return grouped if grouped else flat


def print_hist(items: Iterable[tuple[Any, Any]], kind: str = "log2", val_type: str = "value",
               section_header: str = "Bucket ptr", section_print_fn: Callable[[Any], str] | None = None,
               bucket_fn: Callable[[Any], Any] | None = None, strip_leading_zero: bool | None = None,
               bucket_sort_fn: Callable[[list[Any]], list[Any]] | None = None, file: TextIO | None = None) -> None:
    """Print the histogram(s) in ``items`` (a histogram map's ``(key, value)`` pairs), ``kind`` ``"log2"`` or
    ``"linear"``, with BCC's options and layout."""
    out = file if file is not None else sys.stdout
    fmt = log2_hist if kind == "log2" else linear_hist
    groups = sections(items, bucket_fn)
    if groups and all(isinstance(v, dict) for v in groups.values()):
        buckets = list(groups)
        if bucket_sort_fn is not None:
            buckets = bucket_sort_fn(buckets)
        for b in buckets:
            label = section_print_fn(b) if section_print_fn else repr(b)
            out.write(f"\n{section_header} = {label}\n")
            out.write(fmt(groups[b], val_type, bool(strip_leading_zero)))  # type: ignore[arg-type]
        return
    out.write(fmt(groups, val_type, bool(strip_leading_zero)))  # type: ignore[arg-type]
