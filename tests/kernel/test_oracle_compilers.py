"""The prebuilt sources built by every clang in apt and at other optimisation levels and CPU versions load as
libbpf loads them: pybpf must handle the code generation of real toolchains, not one compiler's habits.

Per compiler variant the whole corpus is built once per session (tools/build_objs.sh, parallel jobs) into a
temporary directory, then each object goes through the libbpf oracle of test_oracle_load.py
(tests/libbpf_oracle.py); each (variant, object) is one test.  The committed objects (clang-19 -O2, v1) are
test_oracle_load.py's.  Variants:

* clang-14 -O2, clang-16 -O2: the older clangs of Debian bookworm (other BTF/BTF.ext and CO-RE emission,
  other register allocation and instruction selection);
* clang-19 -O1: less inlining and fewer combined loads, more subprogram calls and stack traffic;
* clang-19 -O2 -mcpu=v3: 32-bit jumps and ALU32 sub-registers; -mcpu=v4: sign-extending loads and moves,
  bswap, sdiv/smod, gotol (kernel 6.6+).

-O3 and -Os are not variants: for BPF, clang-19 -O3 gives byte-identical objects to -O2 and -Os differs in
few.  All objects are built for every variant: a build takes 12-40 s on two CPUs (idle to loaded), the
comparisons ~5 s; the module ~1.5 min idle, ~3.5 min on a loaded machine.

A compiler that is missing skips its tests (a failure under PYBPF_REQUIRE_KERNEL=1:
tools/install_test_deps.sh installs clang-14, -16 and -19).  An object that does not load fails with pybpf's
message; for a CO-RE relocation the kernel cannot satisfy it names program, instruction and relocation,
checked here for every variant.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pybpf.prebuilt
import pytest
from conftest import kernel_skip
from libbpf_oracle import Build, compare_with_libbpf

pytestmark = [pytest.mark.kernel]

VARIANTS = [
    Build("clang-14", "-O2"),
    Build("clang-16", "-O2"),
    Build("clang-19", "-O1"),
    Build("clang-19", "-O2", "-mcpu=v3"),
    Build("clang-19", "-O2", "-mcpu=v4"),
]


class _Corpora:
    """Each variant's corpus, built on first use into its own directory (session-wide)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.built: dict[Build, tuple[Build, subprocess.CompletedProcess[str]]] = {}

    def get(self, variant: Build) -> tuple[Build, subprocess.CompletedProcess[str]]:
        if variant not in self.built:
            out = os.path.join(self.base, variant.id)
            os.makedirs(out, exist_ok=True)
            res = variant.run(out)  # a source that does not compile fails its own test below, not the others
            self.built[variant] = (Build(variant.clang, variant.opt, variant.extra_cflags, out), res)
        return self.built[variant]


@pytest.fixture(scope="session")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> _Corpora:
    return _Corpora(str(tmp_path_factory.mktemp("corpora")))


def _need(clang: str) -> None:
    if not shutil.which(clang):
        kernel_skip(f"{clang} is not installed (tools/install_test_deps.sh installs it)")


@pytest.mark.parametrize("variant,obj", [pytest.param(v, o, id=f"{v.id}:{o}") for v in VARIANTS
                                         for o in pybpf.prebuilt.names()])
def test_same_as_libbpf(variant: Build, obj: str, corpora: _Corpora, tmp_path: Any, require_root: None,
                        uniq: str) -> None:
    _need(variant.clang)
    build, res = corpora.get(variant)
    if not os.path.exists(build.object(obj)):
        pytest.fail(f"{variant} does not compile {obj}:\n{res.stderr[-3000:]}", pytrace=False)
    compare_with_libbpf(obj, build, str(tmp_path), uniq)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_unsatisfiable_core_relocation_is_explained(variant: Build, tmp_path: Any, require_root: None) -> None:
    import pybpf.loader as L
    from loader_objects import MISSING_FIELD, MISSING_FIELD_ERROR, build
    from pybpf.errors import LinkError

    _need(variant.clang)
    path = build(tmp_path, MISSING_FIELD, clang=variant.clang, opt=variant.opt, cflags=variant.extra_cflags.split())
    with pytest.raises(LinkError, match=MISSING_FIELD_ERROR):
        L.load(path)
