"""BTF and CO-RE, pure computation: types, reader/writer, BTF.ext, kernel BTF, sanitising, C dump.

Importing this package is cheap; submodules load on first use of a name:

* :class:`BTF` (``pybpf.btf.btf``) and the type classes (``pybpf.btf.types``);
* :class:`BTFExt`, :class:`CoreRelo`, :class:`FuncInfo`, :class:`LineInfo` (``pybpf.btf.ext``);
* ``pybpf.btf.kernel`` (vmlinux and module BTF), ``pybpf.btf.core`` (CO-RE relocations),
  ``pybpf.btf.sanitize`` (making an object's BTF acceptable to an older kernel), ``pybpf.btf.cdump`` (C).
"""
from __future__ import annotations

from .._lazy import lazy_exports


_LAZY = {
    "BTF": "btf", "Field": "btf", "Strings": "btf",
    "BTFExt": "ext", "CoreRelo": "ext", "FuncInfo": "ext", "LineInfo": "ext",
    "CoreResult": "core", "resolve": "core", "patch": "core", "Resolver": "core",
    "Feature": "sanitize", "sanitize": "sanitize", "fixup_datasecs": "sanitize",
}
_TYPES = ("Type", "Void", "Int", "Ptr", "Array", "Member", "Struct", "Union", "EnumValue", "Enum", "Enum64", "Fwd",
          "Typedef", "Volatile", "Const", "Restrict", "Func", "Param", "FuncProto", "Var", "VarSecinfo", "Datasec",
          "Float", "DeclTag", "TypeTag")
_LAZY.update(dict.fromkeys(_TYPES, "types"))

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
