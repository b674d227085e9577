"""Human-readable text of an :class:`~pybpf.loader.spec.ObjectSpec` (``str(spec)``, ``pybpf inspect``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .spec import type_label

if TYPE_CHECKING:
    from .spec import ObjectSpec


def format_spec(spec: ObjectSpec, relocations: bool = True, core: Mapping[str, list[str]] | None = None) -> str:
    """A multi-line report: programs, functions, maps, globals, externs and (optionally) relocations.  ``core``
    (program or function name -> lines) replaces the listing of CO-RE relocations, e.g. with what each
    resolves to against a target BTF (``pybpf inspect --btf``)."""
    d = spec.to_dict()
    out = [f"object {spec.name}" + (f" ({spec.path})" if spec.path else ""),
           f"  license {spec.license!r}, kern_version "
           + (f"0x{spec.kern_version:x}" if spec.kern_version is not None else "(running kernel)")
           + f", BTF {'yes' if spec.btf is not None else 'no'}, BTF.ext {'yes' if spec.btf_ext is not None else 'no'}"]
    for title, progs in (("programs", d["programs"]), ("functions", d["functions"])):
        if not progs:
            continue
        out.append(f"{title}:")
        for p in progs:
            line = f"  {p['name']}: section {p['section']!r}, type {p['type']}"
            if p.get("expected_attach_type"):
                line += f", attach type {p['expected_attach_type']}"
            if p.get("attach_to"):
                line += f", attach to {p['attach_to']!r}"
            line += f", {p['insns']} insns"
            if p.get("calls"):
                line += ", calls " + ", ".join(p["calls"])
            if p.get("autoload") is False:
                line += ", autoload off"
            out.append(line)
            out.extend(f"    CO-RE {c}" for c in (p.get("core", ()) if core is None else core.get(p["name"], ())))
    if spec.maps:
        out.append("maps:")
        for m in spec.maps.values():
            line = (f"  {m.name}: {m.type_name}, key {m.key_size}, value {m.value_size}, max_entries "
                    f"{m.max_entries}, flags 0x{m.flags:x}, section {m.section!r}")
            if m.key_type or m.value_type:
                line += (f", BTF key {type_label(spec.btf, m.key_type) or '-'}"
                         f" value {type_label(spec.btf, m.value_type) or '-'}")
            if m.pinning:
                line += ", pinned by name"
            if m.inner is not None:
                line += f", inner {m.inner.type_name} (key {m.inner.key_size}, value {m.inner.value_size})"
            if m.values:
                line += ", values " + ", ".join(f"[{k}]={v}" for k, v in sorted(m.values.items()))
            out.append(line)
    if d["globals"]:
        out.append("globals:")
        for g in d["globals"]:
            out.append(f"  {g['name']}: {g['section']}+{g['offset']}, {g['size']} bytes"
                       + (f", {g['type']}" if g["type"] else "") + (f" = {g['value']}" if g["value"] else ""))
    if spec.externs:
        out.append("externs:")
        out.extend(f"  {name}: {sec or '(no BTF)'}" for name, sec in spec.externs.items())
    if relocations and spec.relocations:
        out.append("relocations:")
        for r in spec.relocations:
            out.append(f"  {r.section}+{r.offset}: {r.type} {r.symbol!r} -> {r.kind}"
                       + (f" {r.target}" if r.target else ""))
    return "\n".join(out)
