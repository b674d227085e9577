#!/usr/bin/env python3
"""Run a command on another Linux kernel: a Debian kernel booted under qemu (TCG) that sees this host's root
filesystem read-only (virtio-fs) with a tmpfs overlay on top, so the host's Python, pybpf and pytest run as-is.

    tools/vmtest.py KERNEL [-- COMMAND...]

KERNEL is an alias (6.1, 6.12, 5.10, newest), a path to a vmlinuz (with --modules DIR, or the modules found
beside it), or a directory holding an extracted kernel package (boot/vmlinuz-*, lib/modules/*).  Without a
COMMAND the guest runs tools/vm/probe.py.  The exit status is COMMAND's (124: timeout; 125: the VM failed).
Downloads are cached under $PYBPF_VM_CACHE (default ~/.cache/pybpf-vm); once a kernel is cached no network is
used (--refresh looks for a newer build).  Needs qemu-system-x86 and busybox-static (apt).  See tools/vm/README.md.
"""
from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("PYBPF_VM_CACHE") or Path.home() / ".cache" / "pybpf-vm")
HOST_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# alias -> (suite or None for the host's own apt lists, package-name pattern)
ALIASES: dict[str, tuple[str | None, str]] = {
    "6.1": (None, r"linux-image-6\.1\.0-\d+-cloud-amd64-unsigned"),
    "6.12": (None, r"linux-image-6\.12\.\d+\+deb\d+-cloud-amd64(-unsigned)?"),
    "5.10": ("bullseye", r"linux-image-5\.10\.0-\d+-cloud-amd64-unsigned"),
    "newest": ("sid", r"linux-image-\d+\.\d+[.\d]*(-\d+)?\+deb\d+-cloud-amd64(-unsigned)?"),
}
# Loaded before the share is mounted (virtio transport, virtio-fs, overlay) and for the tests (tc, veth).
BOOT_MODULES = ["virtio_pci", "virtio_rng", "fuse", "virtiofs", "overlay"]
TEST_MODULES = ["veth", "sch_ingress", "cls_bpf", "nf_conntrack"]  # nf_conntrack: its kfuncs (module BTF)

CTL = "PYBPF-VM"  # marker prefix on the control port (guest ttyS2)


def log(msg: str) -> None:
    print(f"vmtest: {msg}", file=sys.stderr, flush=True)


class VMError(Exception):
    """Setting up or running the VM failed (not the command)."""


# ---------------------------------------------------------------------------------------------------------------
# apt: the host's lists, or private lists for another suite of the same Debian mirror


def _host_sources() -> list[tuple[str, list[str], str | None]]:
    """(uri, suites, signed-by) of the host's Debian entries, from deb822 .sources and one-line .list files."""
    out: list[tuple[str, list[str], str | None]] = []
    etc = Path("/etc/apt")
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for para in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in para.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if "deb" in fields.get("types", "").split() and "uris" in fields:
                    for uri in fields["uris"].split():
                        out.append((uri, fields.get("suites", "").split(), fields.get("signed-by")))
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    opts = m.group(1) or ""
                    sb = re.search(r"signed-by=(\S+?)\]?(\s|$)", opts)
                    out.append((m.group(2), [m.group(3)], sb.group(1) if sb else None))
    return out


def _mirrors() -> tuple[str, str | None, str]:
    """The host's Debian archive and security URIs and keyring, to reach other suites from the same mirrors."""
    codename = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    main = os.environ.get("PYBPF_VM_MIRROR")
    security = os.environ.get("PYBPF_VM_SECURITY_MIRROR")
    keyring = HOST_KEYRING
    for uri, suites, signed_by in _host_sources():
        if codename and codename in suites and not main:
            main = uri
            keyring = signed_by if signed_by and signed_by.startswith("/") else keyring
        if codename and f"{codename}-security" in suites and not security:
            security = uri
    if not main:
        raise VMError("cannot find the host's Debian mirror in /etc/apt (set PYBPF_VM_MIRROR=URI)")
    return main, security, keyring


class Apt:
    """apt-get/apt-cache on the host's lists (suite None) or on private lists under the cache (never touching
    the host's apt configuration or state)."""

    def __init__(self, cache: Path, suite: str | None):
        self.suite = suite
        self.opts: list[str] = ["-q", "-o", "APT::Sandbox::User=root"]
        if suite is None:
            return
        d = cache / "apt" / suite
        for sub in ("lists/partial", "cache/archives/partial", "parts"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        main, security, keyring = _mirrors()
        lines = [f"deb [signed-by={keyring}] {main} {suite} main"]
        if security and suite not in ("sid", "unstable"):
            lines.append(f"deb [signed-by={keyring}] {security} {suite}-security main")
        (d / "sources.list").write_text("\n".join(lines) + "\n")
        self.dir = d
        self.opts += [
            "-o", f"Dir::Etc::sourcelist={d / 'sources.list'}",
            "-o", f"Dir::Etc::sourceparts={d / 'parts'}",
            "-o", f"Dir::State::Lists={d / 'lists'}",
            "-o", f"Dir::Cache={d / 'cache'}",
            "-o", "Acquire::Languages=none",
        ]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        cmd = [tool, *self.opts, *args]
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise VMError(f"{' '.join(cmd[:1] + list(args))} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
        return p.stdout

    def update(self) -> None:
        if self.suite is not None:
            log(f"apt-get update (private lists for {self.suite})")
            self.run("apt-get", "update")

    def candidates(self, pattern: str) -> list[tuple[str, str]]:
        """(package, version) of the packages whose name matches and that have a candidate, newest first."""
        rx = re.compile(pattern + r"$")
        names = [n for n in self.run("apt-cache", "pkgnames", "linux-image-").split() if rx.match(n)]
        if not names:
            return []
        cand: dict[str, str] = {}
        pkg = None
        for line in self.run("apt-cache", "policy", *names).splitlines():
            if line and not line[0].isspace() and line.endswith(":"):
                pkg = line[:-1]
            elif pkg and line.strip().startswith("Candidate:"):
                v = line.split(":", 1)[1].strip()
                if v != "(none)":
                    cand[pkg] = v

        def key(n: str) -> tuple[tuple[int, ...], bool]:
            # highest version first; of equal versions, the -unsigned image (the signed one is the same kernel)
            return tuple(int(x) for x in re.findall(r"\d+", n)), n.endswith("-unsigned")

        return [(n, cand[n]) for n in sorted(cand, key=key, reverse=True)]

    def kernel_parts(self, package: str) -> list[str]:
        """The packages that make up a whole kernel.  Newer Debian kernels split the image package:
        linux-image-R depends on linux-binary-R (vmlinuz), linux-modules-R and linux-base-R (config)."""
        out = [package]
        for pkg in out:
            for line in self.run("apt-cache", "show", "--no-all-versions", pkg).splitlines():
                if line.startswith("Depends:"):
                    for alt in line.split(":", 1)[1].split(","):
                        name = alt.split("|")[0].split("(")[0].strip()
                        if re.match(r"linux-(binary|modules|image|base)-\d", name) and name not in out:
                            out.append(name)
        return out

    def download(self, package: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.deb"):
            old.unlink()
        self.run("apt-get", "download", package, cwd=dest)
        debs = list(dest.glob("*.deb"))
        if len(debs) != 1:
            raise VMError(f"apt-get download {package} left {len(debs)} .deb files in {dest}")
        return debs[0]


# ---------------------------------------------------------------------------------------------------------------
# kernels


@dataclass
class Kernel:
    name: str          # what the user asked for
    vmlinuz: Path
    modules: Path | None   # the lib/modules/<release> directory
    release: str
    package: str = ""
    version: str = ""


def _find_vmlinuz(root: Path) -> tuple[Path, str] | None:
    """(image, release) in an extracted kernel package: boot/vmlinuz-R, or [usr/]lib/modules/R/vmlinuz."""
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if images:
        return images[-1], images[-1].name[len("vmlinuz-"):]
    for base in ("usr/lib/modules", "lib/modules"):
        images = sorted((root / base).glob("*/vmlinuz"))
        if images:
            return images[-1], images[-1].parent.name
    return None


def _kernel_in(root: Path, name: str) -> Kernel:
    """The kernel in an extracted package tree."""
    found = _find_vmlinuz(root)
    if not found:
        raise VMError(f"no boot/vmlinuz-* or lib/modules/*/vmlinuz under {root}")
    vmlinuz, release = found
    mods = None
    for cand in (root / "lib" / "modules" / release, root / "usr" / "lib" / "modules" / release):
        if cand.is_dir():
            mods = cand
    return Kernel(name, vmlinuz, mods, release)


def _dpkg_x(deb: Path, dest: Path) -> None:
    p = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise VMError(f"dpkg-deb -x {deb.name} failed: {p.stderr.strip()[-500:]}")


def extract(deb: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _dpkg_x(deb, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def fetch_kernel(apt: Apt, package: str, version: str, kdir: Path, downloads: Path) -> None:
    """Download a kernel package (and its split-off binary/modules packages) and extract it into kdir."""
    t0 = time.monotonic()
    parts = apt.kernel_parts(package)
    tmp = kdir.with_name(kdir.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    size = 0
    try:
        for part in parts:
            deb = apt.download(part, downloads)
            size += deb.stat().st_size
            _dpkg_x(deb, tmp)
            deb.unlink()
        if not _find_vmlinuz(tmp):
            raise VMError(f"{' '.join(parts)}: no vmlinuz in the package(s)")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"downloaded {' + '.join(parts)} ({size / 1e6:.1f} MB) in {time.monotonic() - t0:.1f} s")
    (tmp / ".complete").write_text(json.dumps({"package": package, "version": version, "deb_bytes": size}))
    shutil.rmtree(kdir, ignore_errors=True)
    tmp.rename(kdir)


def resolve_kernel(spec: str, cache: Path, refresh: bool, modules: str | None) -> Kernel:
    p = Path(spec)
    if spec not in ALIASES and (p.exists() or "/" in spec):
        if p.is_dir():
            k = _kernel_in(p.resolve(), spec)
        elif p.is_file():
            release = p.name[len("vmlinuz-"):] if p.name.startswith("vmlinuz-") else ""
            mods = None
            if not modules and release:
                for cand in (p.parent.parent / "lib" / "modules" / release, Path("/lib/modules") / release):
                    if cand.is_dir():
                        mods = cand
            k = Kernel(spec, p.resolve(), mods, release)
        else:
            raise VMError(f"no such kernel image: {spec}")
        if modules:
            k.modules = Path(modules).resolve()
            k.release = k.modules.name
        if k.modules and not k.release:
            k.release = k.modules.name
        return k
    if spec not in ALIASES:
        raise VMError(f"unknown kernel {spec!r}: use one of {', '.join(ALIASES)} or a path to a vmlinuz")
    suite, pattern = ALIASES[spec]
    pin = cache / "aliases" / f"{spec}.json"
    if pin.exists() and not refresh:
        info = json.loads(pin.read_text())
        kdir = cache / "kernels" / info["package"]
        if (kdir / ".complete").exists():
            k = _kernel_in(kdir, spec)
            k.package, k.version = info["package"], info["version"]
            log(f"kernel {spec}: {k.package} {k.version} (cached)")
            return k
    apt = Apt(cache, suite)
    apt.update()
    cands = apt.candidates(pattern)
    if not cands:
        where = f"the private {suite} lists" if suite else "the host's apt lists (run apt-get update?)"
        raise VMError(f"no package matching {pattern} in {where}")
    errors = []
    for package, version in cands[:4]:
        kdir = cache / "kernels" / package
        done = kdir / ".complete"
        if done.exists() and json.loads(done.read_text()).get("version") == version:
            log(f"kernel {spec}: {package} {version} (cached)")
            break
        try:
            fetch_kernel(apt, package, version, kdir, cache / "downloads")
            break
        except VMError as e:  # e.g. a build still in the lists but gone from the mirror: try the one before
            errors.append(str(e))
            log(f"{package} {version}: {e}")
    else:
        raise VMError("no kernel could be fetched:\n" + "\n".join(errors))
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.write_text(json.dumps({"package": package, "version": version}))
    k = _kernel_in(kdir, spec)
    k.package, k.version = package, version
    return k


# ---------------------------------------------------------------------------------------------------------------
# busybox and the initramfs


def _is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a PT_INTERP segment (`ldd` cannot tell: it exits 1 on static files)."""
    try:
        with open(path, "rb") as f:
            h = f.read(64)
            if h[:4] != b"\x7fELF" or h[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", h, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", h, 0x36)
            f.seek(phoff)
            ph = f.read(phentsize * phnum)
        return all(struct.unpack_from("<I", ph, i * phentsize)[0] != 3 for i in range(phnum))
    except (OSError, struct.error):
        return False


def find_busybox(cache: Path) -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox", cache / "busybox" / "busybox"):
        if Path(cand).exists() and _is_static_elf(Path(cand)):
            return Path(cand)
    log("no static busybox on the host: fetching busybox-static")
    apt = Apt(cache, None)
    deb = apt.download("busybox-static", cache / "downloads")
    tree = cache / "busybox" / "tree"
    extract(deb, tree)
    deb.unlink()
    # bookworm's package keeps it in bin/, trixie's and sid's in usr/bin/
    for rel in ("bin/busybox", "usr/bin/busybox"):
        if (tree / rel).exists():
            shutil.copy2(tree / rel, cache / "busybox" / "busybox")
            shutil.rmtree(tree)
            return cache / "busybox" / "busybox"
    raise VMError("busybox-static package has no busybox binary")


class Cpio:
    """A newc cpio archive written in memory (the kernel unpacks it as the initramfs; no compression needed)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        blob = hdr.encode() + name_b
        blob += b"\0" * (-len(blob) % 4)
        blob += data + b"\0" * (-len(data) % 4)
        self.parts.append(blob)

    def dir(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def bytes(self) -> bytes:
        self.add("TRAILER!!!", 0)
        out = b"".join(self.parts)
        return out + b"\0" * (-len(out) % 512)


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        try:
            return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise VMError(f"cannot decompress {path} (needs zstd): {e}") from e
    return data


def _modinfo(data: bytes) -> dict[str, str]:
    """The .modinfo section of a module (an ELF64 relocatable) as a dict (depends=, name=, ...)."""
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

        def sh(i: int) -> tuple[int, int, int]:
            name, = struct.unpack_from("<I", data, shoff + i * shentsize)
            off, size = struct.unpack_from("<QQ", data, shoff + i * shentsize + 0x18)
            return name, off, size

        _, stroff, _ = sh(shstrndx)
        for i in range(shnum):
            name, off, size = sh(i)
            if data[stroff + name:data.index(b"\0", stroff + name)] == b".modinfo":
                info = {}
                for item in data[off:off + size].split(b"\0"):
                    k, sep, v = item.decode(errors="replace").partition("=")
                    if sep:
                        info[k] = v
                return info
    except (struct.error, ValueError):
        pass
    raise VMError("not a kernel module (no .modinfo section)")


def _modname(path: str) -> str:
    return re.sub(r"\.ko(\.\w+)?$", "", path.rsplit("/", 1)[-1]).replace("-", "_")


def module_order(moddir: Path, wanted: list[str]) -> list[tuple[str, bytes]]:
    """(file name, uncompressed bytes) of the modules to insmod for the wanted names, dependencies first.
    Debian's packages ship no modules.dep (depmod runs at install time), so dependencies come from each
    module's .modinfo `depends=`."""
    files = {_modname(str(f)): f for f in moddir.rglob("*.ko*")}
    builtin: set[str] = set()
    if (moddir / "modules.builtin").exists():
        builtin = {_modname(x) for x in (moddir / "modules.builtin").read_text().split()}
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    missing: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in files:
            if name not in builtin:
                missing.append(name)
            return
        data = _read_module(files[name])
        for d in _modinfo(data).get("depends", "").split(","):
            if d:
                visit(d.replace("-", "_"))
        order.append((re.sub(r"\.(xz|gz|zst)$", "", files[name].name), data))

    for w in wanted:
        visit(w.replace("-", "_"))
    if missing:
        log(f"modules not in this kernel (neither built in nor a module): {', '.join(missing)}")
    return order


INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /mnt/host /mnt/rw /newroot
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
ctl() { echo "@CTL@ $* $(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS2; }
die() { echo "vmtest-init: $*"; ctl FAIL "$*"; sync; poweroff -f; }
ctl BOOTED
for m in @MODULES@; do insmod "/modules/$m" 2>/dev/null || echo "vmtest-init: insmod $m failed"; done
i=0
until mount -t virtiofs -o ro host /mnt/host; do
  i=$((i + 1)); [ $i -ge 100 ] && die "cannot mount the virtio-fs share"; sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || die "tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot \
  || die "cannot mount the overlay"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
[ "@TMPFS_TMP@" = 1 ] && mount -t tmpfs -o mode=1777 tmpfs $R/tmp  # not when the project or cache is in /tmp
mount -t tmpfs -o mode=0755 tmpfs $R/run
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
CG="@CGROUP2@"  # where the host has cgroup2, so tests see the same layout
if [ "$CG" != /sys/fs/cgroup ]; then mount -t tmpfs -o mode=0755 cgroup $R/sys/fs/cgroup; mkdir -p "$R$CG"; fi
mount -t cgroup2 cgroup2 "$R$CG" 2>/dev/null
if [ -n "@MODDIR@" ]; then
  mkdir -p "$R/lib/modules/@RELEASE@" && mount --bind "$R@MODDIR@" "$R/lib/modules/@RELEASE@"
fi
if [ -n "@CONFIG@" ]; then  # the kernel package's config, where libbpf and pybpf look for it (.kconfig)
  mkdir -p "$R/boot" && cp "$R@CONFIG@" "$R/boot/config-@RELEASE@"
fi
ip link set lo up
hostname pybpf-vm
cp /cmd.sh $R/run/pybpf-vm-cmd.sh
ctl RUN
chroot $R /usr/bin/env -i @ENV@ /bin/sh /run/pybpf-vm-cmd.sh </dev/null >/dev/ttyS1 2>&1
rc=$?
ctl EXIT $rc
sync
poweroff -f
"""


def _host_cgroup2() -> str:
    """The host's cgroup2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid layout)."""
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            f = line.split()
            if len(f) > 2 and f[2] == "cgroup2" and f[1].startswith("/sys/fs/cgroup") and "'" not in f[1]:
                return f[1]
    except OSError:
        pass
    return "/sys/fs/cgroup"


def _under_tmp(path: str) -> bool:
    return os.path.realpath(path or "/").startswith("/tmp/")


def build_initramfs(path: Path, busybox: Path, kernel: Kernel, modules: list[str], env: dict[str, str],
                    cwd: str, command: list[str]) -> None:
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules", "mnt", "newroot", "tmp"):
        c.dir(d)
    c.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    c.file("bin/busybox", busybox.read_bytes(), 0o755)
    names = []
    for name, data in module_order(kernel.modules, modules) if kernel.modules else []:
        c.file(f"modules/{name}", data)
        names.append(name)
    moddir = str(kernel.modules) if kernel.modules else ""
    config = kernel.vmlinuz.parent / f"config-{kernel.release}"
    tmpfs_tmp = "0" if any(_under_tmp(x) for x in (cwd, moddir, *command[:1])) else "1"
    init = (INIT.replace("@CTL@", CTL).replace("@CONFIG@", str(config) if config.exists() else "")
            .replace("@MODULES@", " ".join(names)).replace("@MODDIR@", moddir).replace("@CGROUP2@", _host_cgroup2())
            .replace("@TMPFS_TMP@", tmpfs_tmp).replace("@RELEASE@", kernel.release)
            .replace("@ENV@", " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())))
    c.file("init", init.encode(), 0o755)
    cmd = f"cd {shlex.quote(cwd)} || exit 125\nexec {shlex.join(command)}\n"
    c.file("cmd.sh", cmd.encode(), 0o755)
    path.write_bytes(c.bytes())


# ---------------------------------------------------------------------------------------------------------------
# running


def virtiofsd_cmd(sock: Path) -> list[str]:
    rust = shutil.which("virtiofsd", path="/usr/libexec:/usr/lib/virtiofsd:/usr/bin")
    if os.environ.get("PYBPF_VM_VIRTIOFSD"):
        rust = os.environ["PYBPF_VM_VIRTIOFSD"]
    if rust and Path(rust).exists() and not rust.startswith("/usr/lib/qemu/"):
        # the Rust virtiofsd (trixie and later; untested here: bookworm has only qemu's C one)
        cmd = [rust, f"--socket-path={sock}", "--shared-dir=/", "--sandbox=chroot", "--cache=always"]
        helptext = subprocess.run([rust, "--help"], capture_output=True, text=True, check=False).stdout
        return cmd + (["--readonly"] if "--readonly" in helptext else [])
    c = "/usr/lib/qemu/virtiofsd"
    if Path(c).exists():
        return [c, f"--socket-path={sock}", "-o", "source=/", "-o", "sandbox=chroot", "-o", "cache=always",
                "--rlimit-nofile=0"]
    raise VMError("no virtiofsd: apt-get install qemu-system-x86 (bookworm ships /usr/lib/qemu/virtiofsd)")


def _stop(p: subprocess.Popen | None, grace: float = 3.0) -> None:
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


class _Tail:
    def __init__(self, path: Path):
        self.path = path
        self.pos = 0

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return b""
        self.pos += len(data)
        return data


def run_vm(kernel: Kernel, command: list[str], *, busybox: Path, timeout: float, smp: int, mem: int,
           modules: list[str], env: dict[str, str], cwd: str, verbose: bool, console_copy: Path | None,
           tcg_thread: str = "single") -> int:
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise VMError("no qemu-system-x86_64: apt-get install qemu-system-x86")
    tmp = Path(tempfile.mkdtemp(prefix="pybpf-vm-"))
    vfsd = vm = None
    t_start = time.monotonic()
    try:
        initrd = tmp / "initramfs.cpio"
        build_initramfs(initrd, busybox, kernel, modules, env, cwd, command)
        sock = tmp / "vfs.sock"
        with open(tmp / "virtiofsd.log", "wb") as vfs_log:
            vfsd = subprocess.Popen(virtiofsd_cmd(sock), stdin=subprocess.DEVNULL, stdout=vfs_log, stderr=vfs_log,
                                    start_new_session=True)
        for _ in range(100):
            if sock.exists() or vfsd.poll() is not None:
                break
            time.sleep(0.05)
        if not sock.exists():
            raise VMError(f"virtiofsd did not start: {(tmp / 'virtiofsd.log').read_text()[-800:]}")
        console, out, ctl = tmp / "console.log", tmp / "out.log", tmp / "ctl.log"
        append = "console=ttyS0 panic=-1 rdinit=/init loglevel=4 mitigations=off random.trust_cpu=on"
        qcmd = [
            qemu, "-accel", f"tcg,thread={tcg_thread}", "-cpu", "max", "-smp", str(smp), "-m", f"{mem}M",
            "-object", f"memory-backend-memfd,id=mem,size={mem}M,share=on", "-numa", "node,memdev=mem",
            "-chardev", f"socket,id=vfs,path={sock}", "-device", "vhost-user-fs-pci,chardev=vfs,tag=host",
            "-device", "virtio-rng-pci",
            "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", append,
            "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", f"file:{console}", "-serial", f"file:{out}", "-serial", f"file:{ctl}",
        ]
        log(f"booting {kernel.release or kernel.vmlinuz} (tcg {tcg_thread}-threaded, {smp} cpus, {mem} MiB); "
            f"command: {shlex.join(command)}")
        t_boot = time.monotonic()
        with open(tmp / "qemu.log", "wb") as qlog:
            vm = subprocess.Popen(qcmd, stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog, start_new_session=True)
        tails = {"con": _Tail(console), "out": _Tail(out), "ctl": _Tail(ctl)}
        ctl_buf = b""
        rc: int | None = None
        t_run = None
        failed = ""
        stdout = sys.stdout.buffer
        while True:
            done = vm.poll() is not None
            data = tails["out"].read()
            if data:
                stdout.write(data)
                stdout.flush()
            con = tails["con"].read()
            if con and verbose:
                sys.stderr.buffer.write(con)
                sys.stderr.flush()
            ctl_buf += tails["ctl"].read()
            while b"\n" in ctl_buf:
                line, ctl_buf = ctl_buf.split(b"\n", 1)
                words = line.decode(errors="replace").strip().split()
                if not words or words[0] != CTL:
                    continue
                now = time.monotonic()
                if words[1] == "BOOTED":
                    log(f"kernel up after {now - t_boot:.1f} s (guest uptime {words[-1]} s)")
                elif words[1] == "RUN":
                    t_run = now
                    log(f"guest ready after {now - t_boot:.1f} s; running the command")
                elif words[1] == "EXIT":
                    rc = int(words[2])
                    log(f"command exited {rc} after {now - (t_run or now):.1f} s "
                        f"(total {now - t_start:.1f} s)")
                elif words[1] == "FAIL":
                    failed = " ".join(words[2:-1])
            if done:
                break
            if time.monotonic() - t_start > timeout:
                log(f"timeout after {timeout:.0f} s: killing the VM")
                rc = 124
                break
            time.sleep(0.2)
        _stop(vm, grace=5.0 if rc is None else 2.0)
        if console_copy:
            shutil.copyfile(console, console_copy)
        if rc is None:
            con_tail = _console_excerpt(console.read_bytes()) if console.exists() else ""
            qerr = (tmp / "qemu.log").read_text(errors="replace")[-1500:]
            raise VMError(f"the VM stopped without the command's exit status{': ' + failed if failed else ''}\n"
                          f"--- qemu ---\n{qerr}\n--- console (tail) ---\n{con_tail}")
        return rc
    finally:
        _stop(vm)
        _stop(vfsd)
        shutil.rmtree(tmp, ignore_errors=True)


def _console_excerpt(con: bytes) -> str:
    """The part of a dead guest's console that says why: from a few lines before its first oops or panic line
    on, else its tail."""
    m = re.search(rb"BUG:|Oops|general protection|invalid opcode|Kernel panic|cut here", con)
    if not m:
        return con[-3000:].decode(errors="replace")
    before = con[:m.start()].splitlines(keepends=True)[-5:]
    start = m.start() - sum(len(x) for x in before)
    return con[start:start + 6000].decode(errors="replace")


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(prog="tools/vmtest.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kernel", help="6.1, 6.12, 5.10, newest, or a path to a vmlinuz or an extracted package")
    ap.add_argument("--modules", help="the lib/modules/<release> directory for a vmlinuz given by path")
    ap.add_argument("--load", action="append", default=[], metavar="MODULE",
                    help=f"load another module at boot (always: {', '.join(TEST_MODULES)})")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("PYBPF_VM_TIMEOUT", "1800")),
                    help="seconds before qemu is killed (exit 124); default 1800 or $PYBPF_VM_TIMEOUT")
    ap.add_argument("--smp", type=int, default=min(os.cpu_count() or 1, 4))
    ap.add_argument("--mem", type=int, default=2048, help="guest memory in MiB")
    ap.add_argument("--tcg-thread", choices=("single", "multi"), default=os.environ.get("PYBPF_VM_TCG", "single"),
                    help="qemu's TCG threading (default single, or $PYBPF_VM_TCG): with multi, guest kernel "
                         "text patching (kprobes, jump labels) once crashed a 6.12 guest; single runs the vCPUs "
                         "in turn on one host thread, so a code write is seen by every vCPU at once")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--refresh", action="store_true", help="look for a newer kernel build than the cached one")
    ap.add_argument("--fetch-only", action="store_true", help="download and extract, do not boot")
    ap.add_argument("--cwd", default=os.getcwd(), help="directory the command runs in (default: here)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set in the guest")
    ap.add_argument("--console", type=Path, help="save the guest's console log here")
    ap.add_argument("-v", "--verbose", action="store_true", help="copy the guest console to stderr")
    args = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    if not command:
        command = [sys.executable, str(ROOT / "tools" / "vm" / "probe.py")]
    pybin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{pybin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "TERM": "dumb",
        "PYBPF_IN_VM": "1", "PYBPF_VM_KERNEL": args.kernel, "PYTHONUNBUFFERED": "1",
    }
    for k, v in os.environ.items():
        if k.startswith("PYBPF_") and not k.startswith("PYBPF_VM"):
            env[k] = v
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    try:
        args.cache.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(args.cache / ".lock", "w") as lock:  # one fetch at a time per cache (parallel runs share it)
            fcntl.flock(lock, fcntl.LOCK_EX)
            kernel = resolve_kernel(args.kernel, args.cache.resolve(), args.refresh, args.modules)
            busybox = find_busybox(args.cache.resolve())
        if time.monotonic() - t0 > 1:
            log(f"kernel ready in {time.monotonic() - t0:.1f} s")
        if args.fetch_only:
            print(kernel.vmlinuz)
            return 0
        mods = BOOT_MODULES + TEST_MODULES + [m for x in args.load for m in x.split(",") if m]
        return run_vm(kernel, command, busybox=busybox, timeout=args.timeout, smp=args.smp,
                      mem=args.mem, modules=mods, env=env, cwd=args.cwd, verbose=args.verbose,
                      console_copy=args.console, tcg_thread=args.tcg_thread)
    except VMError as e:
        log(f"error: {e}")
        return 125
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
