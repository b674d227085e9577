"""Oracle: every prebuilt object loaded by pybpf and by ``bpftool prog loadall`` (libbpf) gives the same
programs (kernel-translated instructions, type, name, func/line info and the BTF blob loaded for them) and the
same maps (type, sizes, flags, name, BTF key/value type ids); the comparison is tests/libbpf_oracle.py.

Another build of the corpus (same names) is compared instead with ``PYBPF_ORACLE_OBJDIR``, given the CLANG/OPT/
EXTRA_CFLAGS it was built with (so that the variants bpftool needs are built the same way), e.g.
``CLANG=clang-14 OPT=-O1 tools/build_objs.sh /tmp/o`` then
``PYBPF_ORACLE_OBJDIR=/tmp/o CLANG=clang-14 OPT=-O1 pytest tests/kernel/test_oracle_load.py``.
tests/kernel/test_oracle_compilers.py does that for a fixed set of compilers and flags.
"""
from __future__ import annotations

from typing import Any

import pybpf.prebuilt
import pytest
from libbpf_oracle import Build, compare_with_libbpf

BUILD = Build.from_env()


@pytest.mark.kernel
@pytest.mark.parametrize("obj", pybpf.prebuilt.names())
def test_same_as_libbpf(obj: str, tmp_path: Any, require_root: None, uniq: str) -> None:
    compare_with_libbpf(obj, BUILD, str(tmp_path), uniq)
