"""Privilege and environment errors give one clear error naming what is missing: capabilities dropped (even as
root: ``setpriv --bounding-set``), bpffs or tracefs not mounted (a private mount namespace, ``unshare -m``,
where they are unmounted or their mount points hidden), a kernel without kprobes, a locked-down kernel refusing
``bpf_probe_write_user``.  Each case runs in a child process; the messages themselves are checked."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pybpf.prebuilt
import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("require_root")]

HANG_GUARD = 120
PY = sys.executable

# Run by the child: each named step's outcome as {"ok": ...} or {"error": type, "message": ...}.
PRELUDE = """
import json, os, sys
import pybpf
results = {}
def step(name, fn):
    try:
        value = fn()
        results[name] = {"ok": repr(value)[:200]}
    except Exception as e:
        results[name] = {"error": type(e).__name__, "message": str(e).split("\\nverifier log:")[0],
                         "pybpf": isinstance(e, pybpf.BPFError)}
"""


def _child(script: str, wrap: list[str] | None = None, shell_setup: str = "") -> dict[str, dict[str, object]]:
    """Run PRELUDE + ``script`` in a child Python, inside ``wrap`` (setpriv ...) and after ``shell_setup``
    commands in a private mount namespace when given; return its steps' outcomes."""
    code = PRELUDE + textwrap.dedent(script) + "\nprint(json.dumps(results))\n"
    argv = [*(wrap or []), PY, "-c", code]
    if shell_setup:
        if shutil.which("unshare") is None:
            pytest.skip("unshare (util-linux) is not installed")
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                f"{shell_setup} && exec \"$@\"", "sh", *argv]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=HANG_GUARD, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out: dict[str, dict[str, object]] = json.loads(r.stdout.strip().splitlines()[-1])
    for name, res in out.items():
        print(f"\n  {name}: {res.get('error', 'ok')}: {res.get('message', res.get('ok'))}")
    return out


def _error(res: dict[str, object], kind: str, *fragments: str) -> None:
    assert res.get("error") == kind and res.get("pybpf"), res
    assert str(res["message"]).count("\n") == 0, f"more than one line: {res['message']!r}"
    for frag in fragments:
        assert frag in str(res["message"]), (frag, res["message"])


def _setpriv(*caps: str) -> list[str]:
    """``setpriv`` dropping every capability except ``caps`` from the bounding set (root then has only them)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    keep = "".join(f",+{c}" for c in caps)
    return ["setpriv", "--inh-caps=-all", f"--bounding-set=-all{keep}"]


def test_without_capabilities_as_root() -> None:
    out = _child(f"""
        step("map", lambda: pybpf.Map.create("array", 4, 4, 1))
        step("program", lambda: pybpf.Program.load("r0 = 0\\nexit", "socket_filter"))
        step("object", lambda: pybpf.load({str(pybpf.prebuilt.path("hello"))!r}))
    """, wrap=_setpriv())
    for name in ("map", "program", "object"):
        _error(out[name], "PermissionDenied", "EPERM", "neither CAP_BPF nor CAP_SYS_ADMIN", "missing: CAP_BPF",
               "although running as root")


def test_cli_without_capabilities_is_one_line() -> None:
    r = subprocess.run([*_setpriv(), PY, "-m", "pybpf", "load", str(pybpf.prebuilt.path("hello"))],
                       capture_output=True, text=True, timeout=HANG_GUARD, check=False)
    print(f"\n  pybpf load without capabilities: exit {r.returncode}: {r.stderr.strip()}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "neither CAP_BPF nor CAP_SYS_ADMIN" in r.stderr


def test_without_bpffs() -> None:
    """bpffs unmounted: a pin is refused before the kernel is asked, naming what the path is on; the loader
    mounts bpffs itself for its default pin root (as bpftool does) when it may, and says so when it may not."""
    script = f"""
        m = pybpf.Map.create("array", 4, 4, 1)
        step("pin", lambda: m.pin("/sys/fs/bpf/pybpf_no_bpffs"))
        step("pin_root", lambda: pybpf.load({str(pybpf.prebuilt.path("btf_maps"))!r},
                                            pin_root="/sys/fs/bpf/pybpf_no_bpffs_dir"))
        step("default_root", lambda: pybpf.load({str(pybpf.prebuilt.path("btf_maps"))!r}).close())
    """
    out = _child(script, shell_setup="umount -l /sys/fs/bpf")
    _error(out["pin"], "PermissionDenied", "/sys/fs/bpf/pybpf_no_bpffs is not inside a bpffs mount",
           "/sys/fs/bpf is on sysfs", "mount -t bpf bpf /sys/fs/bpf")
    _error(out["pin_root"], "PermissionDenied", "not inside a bpffs mount")
    assert "ok" in out["default_root"], out["default_root"]  # root: bpffs mounted at /sys/fs/bpf on demand
    out = _child(script, wrap=_setpriv("bpf", "perfmon", "net_admin"), shell_setup="umount -l /sys/fs/bpf")
    _error(out["default_root"], "PermissionDenied", "mount -t bpf /sys/fs/bpf failed: EPERM",
           "mount it yourself (mount -t bpf bpf /sys/fs/bpf)")


TRACING = """
from pybpf.link import attach_tracepoint, attach_uprobe
kp = pybpf.Program.load("r0 = 0\\nexit", "kprobe", name="t_priv_up")
tp = pybpf.Program.load("r0 = 0\\nexit", "tracepoint", name="t_priv_tp")
step("uprobe_legacy", lambda: attach_uprobe(kp, "libc.so.6", "getpid", legacy=True).close())
step("tracepoint", lambda: attach_tracepoint(tp, "syscalls/sys_enter_getppid").close())
"""
UNMOUNT_TRACING = ("umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug/tracing 2>/dev/null; "
                   "umount -l /sys/kernel/debug 2>/dev/null; true")


def test_without_tracefs() -> None:
    # unmounted, but root may mount it: pybpf mounts tracefs itself and tracing works
    out = _child(TRACING, shell_setup=UNMOUNT_TRACING)
    assert "ok" in out["uprobe_legacy"] and "ok" in out["tracepoint"], out
    # no mount point left (a tmpfs over /sys/kernel): says there is nowhere to mount it
    out = _child(TRACING, shell_setup=UNMOUNT_TRACING + " && mount -t tmpfs pybpf-test /sys/kernel")
    for name in ("uprobe_legacy", "tracepoint"):
        _error(out[name], "KernelError", "mount tracefs failed", "neither /sys/kernel/tracing nor /sys/kernel/debug "
               "exists", "mount -t tracefs tracefs /sys/kernel/tracing")
    # mount points there, but no CAP_SYS_ADMIN to mount: says the mount was refused and what to run
    out = _child(TRACING, wrap=_setpriv("bpf", "perfmon", "net_admin"), shell_setup=UNMOUNT_TRACING)
    for name in ("uprobe_legacy", "tracepoint"):
        _error(out[name], "KernelError", "mount -t tracefs /sys/kernel/tracing failed: EPERM",
               "mount it yourself (mount -t tracefs tracefs /sys/kernel/tracing)")


def test_kernel_without_kprobes() -> None:
    from pybpf.link.kprobe import has_kprobes

    if has_kprobes():
        pytest.skip("this kernel has kprobes: the missing-feature error cannot be seen here")
    out = _child("""
        from pybpf.link import attach_kprobe
        p = pybpf.Program.load("r0 = 0\\nexit", "kprobe", name="t_priv_kp")
        step("kprobe", lambda: attach_kprobe(p, "do_sys_openat2"))
        step("kprobe_legacy", lambda: attach_kprobe(p, "do_sys_openat2", legacy=True))
        step("kretprobe", lambda: attach_kprobe(p, "do_sys_openat2", retprobe=True))
    """)
    for name in out:
        _error(out[name], "NotSupported", "this kernel has no kprobes", "CONFIG_KPROBES")


def test_locked_down_kernel_refuses_probe_write_user() -> None:
    try:
        with open("/sys/kernel/security/lockdown") as f:
            mode = f.read()
    except OSError:
        pytest.skip("no /sys/kernel/security/lockdown on this kernel")
    if "[none]" in mode:
        pytest.skip("the kernel is not locked down")
    out = _child("""
        step("write_user", lambda: pybpf.Program.load('''
            *(u64 *)(r10 - 8) = 0
            r1 = 0
            r2 = r10
            r2 += -8
            r3 = 8
            call bpf_probe_write_user
            r0 = 0
            exit''', "kprobe", name="t_priv_wu"))
    """)
    _error(out["write_user"], "VerifierError", "bpf_probe_write_user", "the kernel is locked down",
           mode.split("[")[1].split("]")[0])
