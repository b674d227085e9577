"""The loop every ready-made tool (and ``pybpf run``) shares: load an object, attach its programs, poll its
ring buffers, perf buffers and ``bpf_printk`` output until Ctrl-C (or SIGTERM), then detach and close it all.

    with Session("execsnoop", globals={"ignore_failed": 0}) as s:
        s.ring("events", print_event)
        s.run()

A :class:`Session` owns the loaded object, its links and its readers; :meth:`Session.close` (or leaving the
``with`` block, whatever happened) ends every attachment and releases every fd.
"""
from __future__ import annotations

import argparse
import os
import re
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..btf import BTF
    from ..link import Link
    from ..loader import Object
    from ..maps.codec import Codec
    from ..trace_pipe import TraceLine, TracePipe

_PRINTK_HELPERS = (6, 177)  # BPF_FUNC_trace_printk, BPF_FUNC_trace_vprintk
_CONVERSION = re.compile(r"%%|%[-+ #0]*(?:\d+|\*)?(?:\.\d+)?(?:hh|h|ll|l|z|j|t)?(?:p[a-zA-Z0-9]*|[a-zA-Z])")


def object_path(source: str | os.PathLike[str]) -> str:
    """The object file ``source`` names: a path, or the name of a prebuilt object (``execsnoop``)."""
    path = os.fspath(source)
    if os.sep in path or path.endswith(".o") or os.path.exists(path):
        return path
    from ..prebuilt import path as prebuilt

    return prebuilt(path)


def printk_patterns(obj: Object) -> list[re.Pattern[str]] | None:
    """Regexes matching the ``bpf_printk`` messages ``obj``'s programs can print (from the format strings in
    its read-only data); ``[]`` if no program calls bpf_printk; None if they do but no format string is known
    (then any bpf_printk line may be theirs)."""
    progs = [obj.spec.programs[n] for n in obj.programs] + list(obj.spec.functions.values())
    if not any(ins.is_helper_call and ins.imm in _PRINTK_HELPERS for p in progs for ins in p.instructions):
        return []
    out = []
    for m in obj.spec.maps.values():
        if not m.section.startswith(".rodata") or not m.data:
            continue
        for chunk in m.data.split(b"\0"):
            text = chunk.decode("ascii", errors="replace")
            if not text.strip() or not text.isprintable():
                continue
            parts, last = [], 0
            for c in _CONVERSION.finditer(text):
                parts.append(re.escape(text[last:c.start()]))
                parts.append("%" if c.group() == "%%" else ".*?")
                last = c.end()
            parts.append(re.escape(text[last:]))
            out.append(re.compile("".join(parts), re.DOTALL))
    return out or None


class Stop(Exception):
    """Raised by a callback (or :meth:`Session.stop`) to end :meth:`Session.run` cleanly."""


class Session:
    """An object loaded (``globals`` set before load, only ``programs`` if given) and every loaded program
    attached from its SEC() name -- or to ``targets[name]`` (an interface, a tracepoint...), with
    ``attach_options[name]`` as keywords (``mode="skb"``...).  Programs named in ``optional`` may fail to attach
    because their hook does not exist here; they are listed in ``skipped``.
    ``netns`` names a network namespace to attach in (network hooks)."""

    def __init__(self, source: str | os.PathLike[str], *, globals: Mapping[str, Any] | None = None,
                 programs: Iterable[str] | None = None, targets: Mapping[str, Any] | None = None,
                 attach_options: Mapping[str, Mapping[str, Any]] | None = None, optional: Iterable[str] = (),
                 netns: str | None = None):
        from ..loader import load

        self._sigterm = _trap_sigterm()  # SIGTERM now unwinds like Ctrl-C, so close() always runs
        try:
            self.obj: Object = load(object_path(source), globals=globals, programs=programs)
        except BaseException:
            _restore_sigterm(self._sigterm)
            raise
        self.links: dict[str, Link] = {}
        self.skipped: dict[str, str] = {}
        self._poller: Any = None
        self._trace: TracePipe | None = None
        self._on_line: Callable[[TraceLine], Any] | None = None
        self._keep: Callable[[TraceLine], bool] | None = None
        self._stopping = False
        try:
            self._attach(targets or {}, attach_options or {}, set(optional), netns)
        except BaseException:
            self.close()
            raise

    def _attach(self, targets: Mapping[str, Any], options: Mapping[str, Mapping[str, Any]], optional: set[str],
                netns: str | None) -> None:
        from ..errors import KernelError
        from ..sys import abi
        from ..sys.netns import entered

        with entered(netns) if netns else nullcontext():
            for name, prog in self.obj.programs.items():
                if prog.type == abi.BPF_PROG_TYPE_STRUCT_OPS:
                    continue  # registered with its struct_ops map below
                try:
                    self.links[name] = prog.attach(targets.get(name), **options.get(name, {}))
                except KernelError as e:
                    if name not in optional:
                        raise
                    self.skipped[name] = str(e)
            for name in self.obj.struct_ops_maps:
                self.links[name] = self.obj.attach_struct_ops(name)

    # --- what the object offers ---------------------------------------------------------------------------

    @property
    def btf(self) -> BTF:
        """The object's BTF (for record codecs)."""
        from ..errors import BTFError

        if self.obj.spec.btf is None:
            raise BTFError(f"{self.obj.name}: the object has no BTF")
        return self.obj.spec.btf

    def codec(self, struct_name: str) -> Codec:
        """A decoder for records of ``struct struct_name`` as the object's BTF declares it."""
        from ..maps.btfcodec import btf_codec

        return btf_codec(self.btf, self.btf.find_one(struct_name))

    def offset(self, struct_name: str, member: str) -> int:
        """Byte offset of ``member`` in ``struct struct_name`` (object BTF)."""
        return self.btf.field(struct_name, member).byte_offset

    # --- event sources ------------------------------------------------------------------------------------

    def ring(self, map_name: str, callback: Callable[[Any], Any], decode: Any = None) -> None:
        """Deliver each record of ring buffer map ``map_name`` to ``callback`` (a memoryview valid during the
        call, or the value ``decode`` makes of it)."""
        from ..maps.ringbuf import RingBuffer

        self._add_reader(RingBuffer(self.obj.maps[map_name], callback, decode=decode))

    def perf(self, map_name: str, callback: Callable[[Any], Any], decode: Any = None,
             lost: Callable[[int, int], Any] | None = None) -> None:
        """Deliver each record of perf event array ``map_name`` to ``callback`` (as :meth:`ring`; a raw
        record's length includes the kernel's padding to 8 bytes), and counts of lost records to
        ``lost(cpu, count)``."""
        from ..maps.perfbuf import PerfBuffer

        self._add_reader(PerfBuffer(self.obj.maps[map_name], lambda cpu, record: callback(record), decode=decode,
                                    lost=lost))

    def _add_reader(self, reader: Any) -> None:
        from ..maps.reader import Poller

        if self._poller is None:
            self._poller = Poller()
        self._poller.add(reader)

    def printk(self, callback: Callable[[TraceLine], Any], *, only_own: bool = True) -> bool:
        """Deliver ``bpf_printk`` lines written from now on to ``callback`` -- with ``only_own``, just those
        whose message matches one of the object's format strings.  False (and nothing delivered) when no
        program of the object calls bpf_printk."""
        from ..trace_pipe import TracePipe

        patterns = printk_patterns(self.obj)
        if patterns == []:
            return False
        own = patterns if only_own else None
        self._keep = lambda ln: ln.function == "bpf_trace_printk" and (not own or any(p.fullmatch(ln.message)
                                                                                      for p in own))
        self._trace = TracePipe()
        self._trace.skip_backlog()
        self._on_line = callback
        return True

    # --- running ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Make :meth:`run` return after the current batch of events."""
        self._stopping = True

    def run(self, *, ready: Callable[[], Any] | None = None, interval: float | None = None,
            tick: Callable[[], Any] | None = None, duration: float | None = None) -> None:
        """Call ``ready()`` (say the tool is ready: a Ctrl-C from then on ends the run normally), then poll every
        source until Ctrl-C, SIGTERM, :meth:`stop` (or a callback raising :class:`Stop`), or ``duration``
        seconds; call ``tick()`` every ``interval`` seconds."""
        try:
            if ready is not None:
                ready()
            for _ in self._rounds(interval, duration):
                if tick is not None:
                    tick()
                if self._stopping:
                    break
        except (KeyboardInterrupt, Stop):
            pass

    def _rounds(self, interval: float | None, duration: float | None) -> Iterator[None]:
        """Wait for and deliver events; yield whenever ``interval`` has passed; return after ``duration``."""
        now = time.monotonic()
        end = now + duration if duration is not None else None
        next_tick = now + interval if interval else None
        fds = [r.fileno() for r in (self._poller, self._trace) if r is not None]
        while not self._stopping:
            deadline = min((t for t in (next_tick, end) if t is not None), default=None)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if fds:
                select.select(fds, [], [], wait)
            else:
                time.sleep(wait if wait is not None else 3600)
            self._deliver()
            now = time.monotonic()
            if end is not None and now >= end:
                return
            if next_tick is not None and now >= next_tick:
                next_tick += interval * (1 + int((now - next_tick) // interval))  # type: ignore[operator]
                yield

    def _deliver(self) -> None:
        if self._poller is not None:
            self._poller.consume()
        if self._trace is not None and self._on_line is not None:
            for line in self._trace.read(0, where=self._keep):
                self._on_line(line)

    # --- the end ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach every link, then close the readers, the trace pipe and the object (maps and programs)."""
        for link in self.links.values():
            link.close()
        if self._poller is not None:
            self._poller.close()
        if self._trace is not None:
            self._trace.close()
        self.obj.close()
        _restore_sigterm(self._sigterm)
        self._sigterm = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler while a :class:`Session` is open: unwind as Ctrl-C does."""
    raise KeyboardInterrupt


def _trap_sigterm() -> Any:
    """Make SIGTERM raise KeyboardInterrupt; return the handler to restore (None off the main thread, where
    signals cannot be handled and nothing is changed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    return previous if previous is not None else signal.SIG_DFL


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


class Printer:
    """Tool output: text lines (with a header) or, with ``json``, one JSON object per event; flushed per line
    so a pipe sees each event as it happens."""

    def __init__(self, json: bool = False):
        self.json = json

    def header(self, text: str) -> None:
        """Print the column header -- on stderr in JSON mode, where it only says the tool is ready."""
        import sys

        print(text, file=sys.stderr if self.json else sys.stdout, flush=True)

    def event(self, text: str, record: Mapping[str, Any]) -> None:
        """Print one event: ``text``, or ``record`` as JSON."""
        if self.json:
            import json

            print(json.dumps(record, default=_json_default), flush=True)
        else:
            print(text, flush=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def tool_main(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int | None],
              argv: list[str] | None = None) -> int:
    """Run a tool: parse ``argv``, call ``body(args)``, and turn pybpf and OS errors into one line on stderr
    and exit status 1 (tracebacks only with ``--debug``); Ctrl-C before the run gives 130."""
    import sys

    from ..errors import BPFError

    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    args = parser.parse_args(argv)
    try:
        return int(body(args) or 0)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (BPFError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
