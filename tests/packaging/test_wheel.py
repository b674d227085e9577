"""The wheel is all a slim container needs: build it from this tree, install it into a fresh virtual
environment (no system site-packages) with only its declared dependencies from the package index, and from
there inspect, load and attach a shipped prebuilt object.  The venv is built once per test session."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "pybpf", "prebuilt")


class Venv(NamedTuple):
    wheel: Path
    dir: Path
    python: Path
    workdir: Path  # an empty directory to run in, so nothing is imported from the source tree

    @property
    def site_packages(self) -> Path:
        return self.dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def run(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return subprocess.run(argv, capture_output=True, text=True, cwd=self.workdir, env=env, timeout=120, **kw)

    def python_code(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.python), "-c", code)


def _can_build_without_isolation() -> bool:
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


def build_venv(base: Path) -> Venv:
    """Build the wheel from a copy of the package sources under ``base`` and install it (with its declared
    dependencies, from the package index) into a fresh venv there."""
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, src / name)
    build = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(base / "dist")]
    if _can_build_without_isolation():
        build.append("--no-build-isolation")  # the same build, without downloading setuptools again
    r = subprocess.run(build, cwd=src, capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"pip wheel failed:\n{r.stdout}\n{r.stderr}")
    (wheel,) = (base / "dist").glob("pybpf-*.whl")
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"installing the wheel and its dependencies failed:\n{r.stdout}\n{r.stderr}")
    work = base / "work"
    work.mkdir()
    return Venv(wheel, env_dir, python, work)


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel of this tree installed in a fresh venv (once per session)."""
    return build_venv(tmp_path_factory.mktemp("wheel"))


def test_wheel_is_pure_python_and_ships_the_objects(venv: Venv) -> None:
    assert venv.wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(venv.wheel).namelist()
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("pybpf/prebuilt/") and n.endswith(".o")}
    assert shipped == {p.name for p in (ROOT / "prebuilt").glob("*.o")}
    assert not [n for n in names if n.endswith((".so", ".c", ".h", ".pyd"))]


def test_only_declared_dependencies_installed(venv: Venv) -> None:
    r = venv.python_code(
        "import importlib.metadata as md, json, re\n"
        "dists = {d.metadata['Name'].lower(): d for d in md.distributions()}\n"
        "need, todo = set(), ['pybpf']\n"
        "while todo:\n"
        "    n = todo.pop()\n"
        "    if n in need: continue\n"
        "    need.add(n)\n"
        "    for req in dists[n].requires or []:\n"
        "        if 'extra ==' not in req: todo.append(re.split(r'[ <>=!;\\[]', req, 1)[0].lower())\n"
        "print(json.dumps([sorted(dists), sorted(need)]))\n")
    assert r.returncode == 0, r.stderr
    installed, needed = json.loads(r.stdout)
    assert installed == needed  # nothing but pybpf and what it declares (transitively)


def test_inspect_a_shipped_object(venv: Venv) -> None:
    r = venv.run(str(venv.dir / "bin" / "pybpf"), "inspect", "--json",
                 str(venv.site_packages / "pybpf" / "prebuilt" / "execsnoop.bpf.o"))
    assert r.returncode == 0, r.stderr
    spec = json.loads(r.stdout)
    assert [p["name"] for p in spec["programs"]] == ["tracepoint__syscalls__sys_enter_execve",
                                                      "tracepoint__syscalls__sys_exit_execve"]


def test_console_scripts_start(venv: Venv) -> None:
    r = venv.python_code("import importlib.metadata as md\n"
                         "print('\\n'.join(e.name for e in md.distribution('pybpf').entry_points "
                         "if e.group == 'console_scripts'))")
    scripts = r.stdout.split()
    assert "pybpf" in scripts
    for name in scripts:
        h = venv.run(str(venv.dir / "bin" / name), "--help")
        assert h.returncode == 0 and h.stdout.startswith("usage:"), (name, h.stderr)


@pytest.mark.kernel
@pytest.mark.usefixtures("require_root")
def test_load_attach_and_see_printk_without_parsing_c(venv: Venv) -> None:
    """In the venv: load hello, attach it, exec a child, find its bpf_printk line -- and no C parser
    (pycparser, cffi's Python side) was ever imported."""
    r = venv.python_code(
        "import subprocess, sys\n"
        "from pybpf.loader import load\n"
        "from pybpf.prebuilt import path\n"
        "from pybpf.trace_pipe import TracePipe\n"
        "assert path('hello').startswith(sys.prefix), path('hello')\n"
        "with load(path('hello')) as obj, obj.programs['hello'].attach(), TracePipe() as tp:\n"
        "    tp.skip_backlog()\n"
        "    for _ in range(50):\n"
        "        child = subprocess.Popen(['/bin/true']); child.wait()\n"
        "        lines = tp.read(1, pid=child.pid)\n"
        "        if lines: break\n"
        "    print(lines[0].message)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pycparser', 'cffi')))\n")
    assert r.returncode == 0, r.stderr
    message, modules = r.stdout.splitlines()
    assert message.startswith("pybpf-hello: Hello, World! (execve from pid ")
    assert modules == "[]"


@pytest.mark.kernel
@pytest.mark.usefixtures("require_root")
def test_pybpf_run_from_the_venv(venv: Venv) -> None:
    spawned: set[int] = set()
    done = threading.Event()

    def spawn() -> None:  # execs while pybpf run is up (an exec during its 3 s window is enough)
        while not done.is_set():
            child = subprocess.Popen(["/bin/true"])
            child.wait()
            spawned.add(child.pid)
            time.sleep(0.1)
    t = threading.Thread(target=spawn)
    t.start()
    try:
        r = venv.run(str(venv.dir / "bin" / "pybpf"), "run", "hello", "--json", "--duration", "3")
    finally:
        done.set()
        t.join()
    assert r.returncode == 0, r.stderr
    events = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert events[0]["kind"] == "attached" and events[-1]["kind"] == "detached"
    assert any(e["kind"] == "printk" and e["pid"] in spawned for e in events)
