"""pybpf: a pure-Python eBPF toolkit -- load clang-built CO-RE objects, assemble programs, attach them and
read their maps, with no BCC, clang or libbpf on the machine.

    import pybpf
    with pybpf.load("prog.bpf.o") as obj:
        obj.programs["handle_exec"].attach()
        ...

Names are resolved lazily, so ``import pybpf`` costs almost nothing until a feature is used.
"""
from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "BPFError": "errors", "ParseError": "errors", "ELFError": "errors", "BTFError": "errors", "AsmError": "errors",
    "LinkError": "errors", "SectionError": "errors", "KernelError": "errors", "PermissionDenied": "errors",
    "NotSupported": "errors", "NotFound": "errors", "VerifierError": "errors", "CodecError": "errors",
    "Program": "program", "TestRunResult": "program",
    "Map": "maps.map", "MapInfo": "maps.map", "Codec": "maps.codec",
    "load": "loader.object", "Object": "loader.object",
    "ObjectFile": "loader.reader", "ObjectSpec": "loader.spec", "ProgramSpec": "loader.spec", "MapSpec": "loader.spec",
    "Link": "link.base", "LinkInfo": "link.info", "attach": "link.auto", "TracePipe": "trace_pipe",
    "RingBuffer": "maps.ringbuf", "UserRingBuffer": "maps.ringbuf", "PerfBuffer": "maps.perfbuf",
    "Poller": "maps.reader",
    "BTF": "btf.btf",
}

__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
