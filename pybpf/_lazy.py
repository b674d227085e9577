"""Lazy package exports: a package lists ``name -> submodule`` and the submodule is imported only when the
name is first used, so importing a package costs almost nothing."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` exporting ``table`` (name -> submodule, relative to the
    package).  A name mapped to itself that its module does not define is the submodule itself."""
    names = sorted(table)

    def __getattr__(name: str) -> Any:
        mod = table.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{mod}")
        value = module if mod == name and not hasattr(module, name) else getattr(module, name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
