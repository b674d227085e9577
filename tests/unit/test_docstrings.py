"""Every public name of the pybpf package has a docstring: each module whose name has no part starting with
``_``, and in it every public class and function it defines, and every public method, class method, static
method and property of those classes (a method overriding a documented one inherits its docstring, as
``inspect.getdoc`` does).  The generated ``pybpf.sys.abi`` is only checked for its module docstring: its
names are kernel constants; ``pybpf.sys._cffi_abi`` is private."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pybpf

GENERATED = {"pybpf.sys.abi"}  # kernel constants and enums, written by tools/gen_abi.py


def public_modules() -> list[str]:
    """Names of every public module of the package (and ``pybpf.prebuilt``, shipped from ``prebuilt/``)."""
    names = ["pybpf", "pybpf.prebuilt"]
    names += [m.name for m in pkgutil.walk_packages(pybpf.__path__, "pybpf.")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))


def _members(cls: type) -> list[tuple[str, object]]:
    """The public methods and properties ``cls`` defines itself (as functions, or what wraps them)."""
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append((name, member))
        elif isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(member):
            out.append((name, getattr(cls, name)))
    return out


def undocumented(module: ModuleType) -> list[str]:
    """The public names of ``module`` (defined there) that lack a docstring, dotted."""
    name = module.__name__
    missing = [] if inspect.getdoc(module) else [name]
    if name in GENERATED:
        return missing
    for attr, obj in sorted(vars(module).items()):
        if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) != name:
            continue  # imported from elsewhere: checked where it is defined
        if not inspect.getdoc(obj):
            missing.append(f"{name}.{attr}")
        if inspect.isclass(obj):
            for member_name, member in _members(obj):
                doc = member.__doc__ if isinstance(member, property) else inspect.getdoc(member)
                if not doc:
                    missing.append(f"{name}.{attr}.{member_name}")
    return missing


def test_walk_finds_the_package() -> None:
    names = public_modules()
    assert {"pybpf.asm.disasm", "pybpf.loader.object", "pybpf.cli.inspect", "pybpf.sys.syscall"} <= set(names)
    assert not any(n.endswith("_cffi_abi") for n in names)


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in public_modules():
        missing += undocumented(importlib.import_module(name))
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_the_check_sees_what_is_missing() -> None:
    """The walker itself: an undocumented function, class, method and property are each reported."""
    mod = ModuleType("fake_mod", "A module.")

    def f() -> None:
        pass

    class C:
        """Documented."""

        def method(self) -> None:
            pass

        @property
        def prop(self) -> int:
            return 1

        def _private(self) -> None:
            pass

    class D:
        pass

    for obj in (f, C, D):
        obj.__module__ = "fake_mod"
        mod.__dict__[obj.__name__] = obj
    assert undocumented(mod) == ["fake_mod.C.method", "fake_mod.C.prop", "fake_mod.D", "fake_mod.f"]
