#!/usr/bin/env bash
# What tools/vmtest.py needs on a Debian bookworm host: qemu (with /usr/lib/qemu/virtiofsd from
# qemu-system-common) and a static busybox for the guest's initramfs.  ~18 MB download, ~10 s.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /usr/lib/qemu/virtiofsd ] || [ -x /usr/libexec/virtiofsd ] || need+=(qemu-system-common)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
