"""Helpers shared by the fuzz tests: the fuzzing tool (tools/fuzz.py) as a module, the prebuilt corpus, and
running a parse in a child process under an address-space limit."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pybpf.errors import BPFError

ROOT = Path(__file__).resolve().parents[2]
PREBUILT = ROOT / "prebuilt"
HANG_GUARD = 300  # seconds: a child still running then is hung (a failure, never a measurement)


@cache
def fuzz_tool() -> ModuleType:
    """``tools/fuzz.py`` imported as the module ``pybpf_fuzz_tool``."""
    spec = importlib.util.spec_from_file_location("pybpf_fuzz_tool", ROOT / "tools" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@cache
def prebuilt(name: str) -> bytes:
    """The bytes of ``prebuilt/NAME.bpf.o``."""
    return (PREBUILT / f"{name}.bpf.o").read_bytes()


def small_objects(limit: int = 16 << 10) -> list[str]:
    """Names of the prebuilt objects of at most ``limit`` bytes (fast to parse many times)."""
    return sorted(p.name.split(".bpf.")[0] for p in PREBUILT.glob("*.bpf.o") if p.stat().st_size <= limit)


def only_pybpf_errors(fn: Callable[[], Any], located: str | None = None) -> BPFError | None:
    """Run ``fn``; return the pybpf error it raised (None if it succeeded).  Any other exception fails the test
    (it propagates); a pybpf error must have a message, starting with ``located`` when that is given."""
    try:
        fn()
    except BPFError as e:
        text = str(e)
        assert text.strip(), f"{type(e).__name__} without a message"
        if located is not None:
            assert text.startswith(located), f"{type(e).__name__} does not say where: {text!r}"
        return e
    return None


def run_limited(code: str, memory: int = 1 << 30, **data: bytes) -> dict[str, Any]:
    """Run ``code`` in a child Python with RLIMIT_AS = ``memory`` bytes; the bytes in ``data`` are its globals
    (hex-encoded on the way).  The code assigns ``result`` (JSON-able), usually ``outcome(lambda: parse(...))``:
    ``{"ok": repr}`` or ``{"error": pybpf error type, "message": ...}``; any other exception escaping the code
    is reported as ``{"escaped": type name, "message": ...}``."""
    prog = textwrap.dedent("""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({memory}, resource.getrlimit(resource.RLIMIT_AS)[1]))
        data = json.loads(sys.stdin.read())
        globals().update({{k: bytes.fromhex(v) for k, v in data.items()}})
        result = None

        def outcome(fn):
            from pybpf.errors import BPFError
            try:
                return {{"ok": repr(fn())[:300]}}
            except BPFError as e:
                return {{"error": type(e).__name__, "message": str(e)[:2000]}}

        try:
        {body}
        except BaseException as e:
            result = {{"escaped": type(e).__name__, "message": str(e)[:2000]}}
        print(json.dumps(result))
    """).format(memory=memory, body=textwrap.indent(textwrap.dedent(code), "    "))
    r = subprocess.run([sys.executable, "-c", prog], input=json.dumps({k: v.hex() for k, v in data.items()}),
                       capture_output=True, text=True, timeout=HANG_GUARD, check=False)
    assert r.returncode == 0, f"child failed ({r.returncode}): {r.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out
