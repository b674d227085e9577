#!/usr/bin/env bash
# Install what pybpf's test suite needs on a fresh Debian bookworm machine, then pybpf itself (editable).
# Test-only tools come from apt: llvm-19 (llvm-mc/llvm-objdump oracles), clang-19 + libbpf-dev (building
# objects in tests), clang-14 + clang-16 (the corpus built by bookworm's other clangs:
# tests/kernel/test_oracle_compilers.py), bpftool (libbpf's loader as the oracle), iproute2/iputils-ping
# (network tests), python3 (Debian's /usr/bin/python3.11 carries the USDT probes tests/kernel/test_link_usdt.py
# attaches to), and through tools/vm/install_deps.sh qemu + busybox-static (the kernel-matrix VMs).
# Already installed packages are not looked at again (no apt-get update then).
# None of them is needed to install or run pybpf.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(llvm-19 clang-19 clang-14 clang-16 libbpf-dev bpftool iproute2 iputils-ping busybox-static python3)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

tools/vm/install_deps.sh  # qemu and busybox-static for the kernel-matrix VMs

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# coverage-guided fuzzing (tools/fuzz.py); its smoke test skips, saying so, where atheris cannot install
python3 -m pip install -q --disable-pip-version-check -e '.[fuzz]' || echo "atheris not installed: fuzz smoke test will skip"
