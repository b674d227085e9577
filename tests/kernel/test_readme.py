"""The README's hand-written bytecode example runs as printed."""
from __future__ import annotations

import os
import re

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_bytecode_example() -> None:
    blocks = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)
    code = next(b for b in blocks if "Program.load" in b)
    exec(compile("import pybpf\n" + code, "README.md", "exec"), {})
