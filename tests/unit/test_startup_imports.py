"""Start-up cost: what the load and tool paths import.  A fresh interpreter imports the modules a command or a
tool needs and reports which heavy modules came along; each one listed here is only imported by the feature
that uses it."""
from __future__ import annotations

import ast
import subprocess
import sys


def _imported(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return ast.literal_eval(out)


def test_readers_do_not_import_asyncio() -> None:
    assert _imported("import pybpf.maps.ringbuf, pybpf.maps.perfbuf, pybpf.tools.runner", ("asyncio",)) == []
