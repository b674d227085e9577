"""Histogram printing: byte-for-byte BCC's layout (golden strings from BCC 0.26's ``print_log2_hist``, and BCC
itself as an oracle when its Python module is installed), then a real log2 histogram map filled by a program."""
from __future__ import annotations

import io
import json
import os
import random
import subprocess

import pytest

import pybpf
from pybpf.maps.hist import linear_hist, log2_hist
from pybpf.maps.map import Map

BCC_PYTHON = "/usr/bin/python3"

GOLDEN = {
    "log2": (([0, 3, 10, 0, 25, 7, 1], "usecs", False),
             "     usecs               : count     distribution\n"
             "         0 -> 1          : 3        |****                                    |\n"
             "         2 -> 3          : 10       |****************                        |\n"
             "         4 -> 7          : 0        |                                        |\n"
             "         8 -> 15         : 25       |****************************************|\n"
             "        16 -> 31         : 7        |***********                             |\n"
             "        32 -> 63         : 1        |*                                       |\n"),
    "log2_strip": (([0, 0, 0, 0, 5, 9, 100, 3], "msecs", True),
                   "     msecs               : count     distribution\n"
                   "         8 -> 15         : 5        |**                                      |\n"
                   "        16 -> 31         : 9        |***                                     |\n"
                   "        32 -> 63         : 100      |****************************************|\n"
                   "        64 -> 127        : 3        |*                                       |\n"),
    "linear_strip": (([0, 0, 4, 0, 15], "ms", True),
                     "     ms            : count     distribution\n"
                     "        2          : 4        |**********                              |\n"
                     "        3          : 0        |                                        |\n"
                     "        4          : 15       |****************************************|\n"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_layout(name: str) -> None:
    (vals, val_type, strip), expected = GOLDEN[name]
    fmt = linear_hist if name.startswith("linear") else log2_hist
    assert fmt(vals, val_type, strip) == expected
    assert fmt(dict(enumerate(vals)), val_type, strip) == expected  # {slot: count} works too


def test_wide_and_empty() -> None:
    wide = log2_hist({1: 1, 32: 2, 34: 4}, "nsecs")
    lines = wide.splitlines()
    assert lines[0] == "               nsecs                         : count     distribution"
    assert lines[-1] == "          8589934592 -> 17179869183          : 4        |********************|"
    assert log2_hist([0] * 65) == "" and linear_hist([]) == ""


_ORACLE = r"""
import contextlib, io, json, sys
from bcc import table
out = []
for kind, vals, val_type, strip in json.load(sys.stdin):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        (table._print_log2_hist if kind == "log2" else table._print_linear_hist)(vals, val_type, strip)
    out.append(buf.getvalue())
print(json.dumps(out))
"""


def test_bcc_oracle_random_histograms() -> None:
    """Random histograms printed by BCC itself and by pybpf are identical."""
    if not os.path.exists(BCC_PYTHON) or subprocess.run([BCC_PYTHON, "-c", "import bcc"],
                                                         capture_output=True).returncode:
        pytest.skip("BCC's Python module (apt python3-bpfcc) is not installed")
    rng = random.Random(7)
    cases = []
    for i in range(200):
        kind = "log2" if i % 2 else "linear"
        n = rng.choice([3, 10, 33, 40, 64]) if kind == "log2" else rng.randint(1, 60)
        vals = [rng.choice([0, 0, 1, rng.randint(0, 10 ** rng.randint(1, 9))]) for _ in range(n)]
        vals += [0] * ((65 if kind == "log2" else 1025) - n)
        cases.append((kind, vals, rng.choice(["usecs", "msecs", "value"]), bool(i % 3)))
    proc = subprocess.run([BCC_PYTHON, "-c", _ORACLE], input=json.dumps(cases), capture_output=True, text=True,
                          check=True)
    expected = json.loads(proc.stdout)
    for (kind, vals, val_type, strip), want in zip(cases, expected):
        assert (log2_hist if kind == "log2" else linear_hist)(vals, val_type, strip) == want


# A socket filter adding skb->len's log2 slot to hist[slot] (like BCC's bpf_log2l + increment).
HIST_PROG = """
    r2 = *(u32 *)(r1 + 0)
    r3 = 0
loop:
    if r2 == 0 goto done
    r2 >>= 1
    r3 += 1
    goto loop
done:
    *(u32 *)(r10 - 4) = r3
    r1 = map[hist] ll
    r2 = r10
    r2 += -4
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = 0
    exit
"""


@pytest.mark.kernel
@pytest.mark.usefixtures("require_root")
def test_histogram_map_printed_like_bcc() -> None:
    with Map.create("array", 4, 8, 65, name="t_hist", key="I", value="Q") as hist:
        with pybpf.Program.load(HIST_PROG, "socket_filter", maps={"hist": hist}) as prog:
            for size, times in ((14, 3), (64, 5), (100, 2), (1500, 1)):
                prog.test_run(b"\0" * (14 + size), repeat=times)  # skb->len excludes the Ethernet header
        out = io.StringIO()
        hist.print_log2_hist("bytes", file=out)
        counts = {4: 3, 7: 5 + 2, 11: 1}  # 14 -> slot 4, 64 and 100 -> slot 7, 1500 -> slot 11
        assert out.getvalue() == log2_hist(counts, "bytes")
        assert "        64 -> 127        : 7        |****************************************|" in out.getvalue()
    with Map.create("hash", 8, 8, 16, key=("=II", "disk slot"), value="Q") as per_disk:
        per_disk.update_batch({(1, 3): 4, (1, 5): 1, (2, 2): 9})
        out = io.StringIO()
        per_disk.print_log2_hist("usecs", section_header="disk", section_print_fn=lambda d: f"sd{d}",
                                 bucket_sort_fn=sorted, file=out)
        text = out.getvalue()
        assert text.startswith("\ndisk = sd1\n" + log2_hist({3: 4, 5: 1}, "usecs"))
        assert "\ndisk = sd2\n" + log2_hist({2: 9}, "usecs") in text
