#!/usr/bin/env bash
# Build prebuilt/src/*.bpf.c into prebuilt/NAME.bpf.o (the committed objects); see prebuilt/README.md.
#
#   tools/build_objs.sh [--check [--no-build] [--all]] [OUTDIR] [NAME...]
#   tools/build_objs.sh --regen-vmlinux
#   tools/build_objs.sh --toolchain
#
#   OUTDIR        where NAME.bpf.o go (default: prebuilt/); the first argument that is not a source name.
#                 NAME restricts the build to prebuilt/src/NAME.bpf.c.
#   --check       after building, load every object with `bpftool prog loadall` into a unique bpffs directory
#                 (removed afterwards) and print a table: object, loads here (yes / no: why). Exit 1 if an
#                 object that should load does not.
#   --no-build    with --check: check the objects already in OUTDIR (e.g. inside a VM:
#                 tools/vmtest.py 6.12 -- tools/build_objs.sh --check --no-build --all prebuilt NAME...)
#   --all         with --check: also try the objects marked `pybpf-check: skip` (for other kernels)
#   --regen-vmlinux  rewrite prebuilt/src/vmlinux.h from $BTF (default /sys/kernel/btf/vmlinux) with bpftool.
#   --toolchain   print the fingerprint of this machine's toolchain (sha256 of the compiler, llvm-strip, the LLVM
#                 libraries they run and the libbpf headers); a full build into prebuilt/ writes it to
#                 prebuilt/src/toolchain.sha256, and byte-identity tests compare against that file.
#
# Environment:
#   CLANG=clang-19       compiler (CLANG=clang-14 tools/build_objs.sh /tmp/o14 builds with clang-14; never
#                        commit such builds: the committed objects are clang-19 -O2)
#   OPT=-O2              optimisation level (OPT=-O1 for the code-generation tests)
#   EXTRA_CFLAGS=        appended to the compile line (e.g. -mcpu=v3)
#   VMLINUX_H=FILE       use this vmlinux.h instead of the committed prebuilt/src/vmlinux.h
#   BTF=FILE             generate vmlinux.h from this BTF file (bpftool btf dump ... format c) and use it
#   LLVM_STRIP=          strip tool (default: llvm-strip-19, else llvm-strip)
#   JOBS=$(nproc)        sources compiled in parallel
#
# Reproducibility: the committed objects are a function of the sources, prebuilt/src/vmlinux.h, clang-19
# (Debian 1:19.1.7-3~deb12u1), the libbpf-dev headers (1:1.1.2-0+deb12u1) and llvm-strip. Sources are compiled
# from a copy in the fixed directory /tmp/pybpf-build-objs/src (locked while a build runs) with relative file
# names and -fdebug-compilation-dir=. so the checkout's path neither reaches the object nor shifts clang's
# output; DWARF is stripped (`llvm-strip -g`; .BTF/.BTF.ext and the symbol table stay).
# Building twice gives byte-identical objects (tests/unit/test_prebuilt_corpus.py checks this).
#
# Per-source directives (in the source's top comment):
#   pybpf-build: no-btf           compile without -g: no .BTF/.BTF.ext (deliberately BTF-less objects)
#   pybpf-build: cflags FLAGS     add FLAGS to the compile line (e.g. the multiarch include directory for
#                                 <asm/errno.h>, which <bpf/usdt.bpf.h> includes through <linux/errno.h>)
#   pybpf-check: type TYPE        bpftool needs `type TYPE` to load it (section names newer than bpftool's libbpf)
#   pybpf-check: variant FLAGS    bpftool cannot load the object itself (legacy SEC("maps"), programs that need a
#                                 target): load a variant compiled with FLAGS instead, which only swaps the map
#                                 definitions or leaves those programs out
#   pybpf-check: skip REASON      cannot be loaded on this kernel; REASON goes into the table
#   pybpf-check: unpin NAME...    maps pinned by name (LIBBPF_PIN_BY_NAME) under /sys/fs/bpf to remove afterwards
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$ROOT/prebuilt/src
CLANG=${CLANG:-clang-19}
OPT=${OPT:--O2}
EXTRA_CFLAGS=${EXTRA_CFLAGS:-}

die() { echo "build_objs.sh: $*" >&2; exit 2; }

check=0
regen=0
fingerprint=0
build=1
force_all=0
outdir=
names=()
for arg in "$@"; do
    case $arg in
        --check) check=1 ;;
        --no-build) build=0 ;;
        --all) force_all=1 ;;
        --regen-vmlinux) regen=1 ;;
        --toolchain) fingerprint=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $arg" ;;
        *) if [[ -z $outdir && ( $arg == */* || -d $arg || ! -e $SRC/$arg.bpf.c ) ]]; then outdir=$arg
           else names+=("${arg%.bpf.c}"); fi ;;
    esac
done

if (( regen )); then
    command -v bpftool >/dev/null || die "bpftool not found (apt install bpftool)"
    btf=${BTF:-/sys/kernel/btf/vmlinux}
    bpftool btf dump file "$btf" format c > "$SRC/vmlinux.h.tmp"
    mv "$SRC/vmlinux.h.tmp" "$SRC/vmlinux.h"
    echo "regenerated $SRC/vmlinux.h from $btf (sha256 $(sha256sum < "$btf" | cut -d' ' -f1));"
    echo "update the provenance line in prebuilt/README.md"
    exit 0
fi

if [[ -n ${LLVM_STRIP:-} ]]; then strip_tool=$LLVM_STRIP
elif command -v llvm-strip-19 >/dev/null; then strip_tool=llvm-strip-19
elif command -v llvm-strip >/dev/null; then strip_tool=llvm-strip
else strip_tool=; fi

toolchain() {  # the files that decide the object bytes besides prebuilt/src: "sha256  path" lines
    local tools=() f
    for f in "$CLANG" "$strip_tool"; do
        f=$(command -v "$f") || die "$f not found (apt install clang-19 llvm-19)"
        tools+=("$(readlink -f "$f")")
    done
    # the LLVM and clang libraries they load, then the BPF headers the sources include
    for f in $(ldd "${tools[@]}" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\(LLVM\|clang\)[^ ]*\) .*/\1/p' | sort -u); do
        tools+=("$(readlink -f "$f")")
    done
    sha256sum "${tools[@]}" /usr/include/bpf/*.h
}

if (( fingerprint )); then toolchain; exit 0; fi

default_out=0
[[ -z $outdir ]] && default_out=1
outdir=${outdir:-$ROOT/prebuilt}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

(( build || check )) || die "--no-build without --check does nothing"
if (( build )); then
    command -v "$CLANG" >/dev/null || die "$CLANG not found (apt install ${CLANG})"
    [[ -r /usr/include/bpf/bpf_helpers.h ]] || die "libbpf headers not found (apt install libbpf-dev)"
fi
[[ -z $strip_tool ]] && (( build )) && die "llvm-strip not found (apt install llvm-19)"

tmp=$(mktemp -d)

# clang's BTF output can depend on its working directory, most likely through the compiler's memory layout
# (execsnoop's .BTF listed three types in another order when built from another checkout). So every build
# compiles in one fixed directory holding a copy of the sources, with fixed output names; a lock keeps
# concurrent builds out of each other's way.
STAGE=/tmp/pybpf-build-objs
build_dir=$STAGE/src
exec 9>"$STAGE.lock"
flock 9 || die "cannot lock $STAGE.lock"
trap 'rm -rf "$tmp" "$build_dir"' EXIT
rm -rf "$build_dir"
mkdir -p "$build_dir"
cp "$SRC"/*.c "$SRC"/*.h "$build_dir"/
if [[ -n ${BTF:-} ]]; then
    bpftool btf dump file "$BTF" format c > "$build_dir/vmlinux.h"
elif [[ -n ${VMLINUX_H:-} ]]; then
    cp "$VMLINUX_H" "$build_dir/vmlinux.h"
fi

if (( ${#names[@]} == 0 )); then
    for f in "$SRC"/*.bpf.c; do b=${f##*/}; names+=("${b%.bpf.c}"); done
fi

directive() {  # directive NAME KIND -> the rest of the "pybpf-KIND:" lines of NAME's source
    sed -n "s/.*pybpf-$2: *\(.*[^ ]\) *\$/\1/p" "$SRC/$1.bpf.c"
}

compile() {  # compile NAME OUT [EXTRA FLAGS...]
    local name=$1 out=$2; shift 2
    local g=-g
    directive "$name" build | grep -qx 'no-btf' && g=
    local cflags
    cflags=$(directive "$name" build | sed -n 's/^cflags //p')
    # (explicit `|| return`: set -e does not apply inside a function called from a && list)
    # shellcheck disable=SC2086
    (cd "$build_dir" && "$CLANG" $g "$OPT" -target bpf -D__TARGET_ARCH_x86 \
        -Wall -Wno-unused-function -Wno-unused-variable -Wno-compare-distinct-pointer-types \
        -fdebug-compilation-dir=. $cflags $EXTRA_CFLAGS "$@" \
        -c "$name.bpf.c" -o "$name.bpf.o.unstripped") || { echo "  FAILED  $name.bpf.c" >&2; return 1; }
    "$strip_tool" -g "$build_dir/$name.bpf.o.unstripped" -o "$out" || return 1
    rm -f "$build_dir/$name.bpf.o.unstripped"
}

for name in "${names[@]}"; do
    [[ -f $SRC/$name.bpf.c ]] || die "no source prebuilt/src/$name.bpf.c"
done
if (( build )); then
# Compile JOBS sources at a time; the result does not depend on the order.
jobs_max=${JOBS:-$(nproc 2>/dev/null || echo 1)}
build_failed=0
running=0
for name in "${names[@]}"; do
    if (( running >= jobs_max )); then
        wait -n || build_failed=1
        running=$((running - 1))
    fi
    ( compile "$name" "$outdir/$name.bpf.o" && echo "  BPF  $name.bpf.o" ) &
    running=$((running + 1))
done
while (( running > 0 )); do
    wait -n || build_failed=1
    running=$((running - 1))
done
(( build_failed == 0 )) || die "build failed"
# The committed objects record what built them (a build of every source with the default flags)
if (( default_out )) && (( ${#names[@]} == $(ls "$SRC"/*.bpf.c | wc -l) )) && [[ $CLANG == clang-19 && $OPT == -O2 \
      && -z $EXTRA_CFLAGS && -z ${BTF:-} && -z ${VMLINUX_H:-} ]]; then
    toolchain > "$SRC/toolchain.sha256"
fi
fi

(( check )) || exit 0

# ---- --check: load each object with bpftool (libbpf) on this kernel ------------------------------------
command -v bpftool >/dev/null || die "bpftool not found (apt install bpftool)"
[[ $(id -u) == 0 ]] || die "--check needs root"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
failed=0
printf '%-22s %s\n' object "loads here"
for name in "${names[@]}"; do
    obj=$outdir/$name.bpf.o
    skip=$(directive "$name" check | sed -n 's/^skip //p')
    if [[ -n $skip ]] && (( ! force_all )); then printf '%-22s no: %s\n' "$name" "$skip"; continue; fi
    variant=$(directive "$name" check | sed -n 's/^variant //p')
    if [[ -n $variant ]] && ! command -v "$CLANG" >/dev/null; then
        printf '%-22s not checked: needs %s to build its BTF-maps variant\n' "$name" "$CLANG"; continue
    fi
    type=$(directive "$name" check | sed -n 's/^type //p')
    unpin=$(directive "$name" check | sed -n 's/^unpin //p')
    note=
    if [[ -n $variant ]]; then
        # shellcheck disable=SC2086
        if ! compile "$name" "$tmp/$name.variant.o" $variant; then
            printf '%-22s FAILED (variant %s does not build)\n' "$name" "$variant"; failed=1; continue
        fi
        obj=$tmp/$name.variant.o
        note=" (as its variant $variant: see the source's pybpf-check line)"
    fi
    pre_existing=
    for p in $unpin; do [[ -e /sys/fs/bpf/$p ]] && pre_existing+=" $p"; done
    pin=/sys/fs/bpf/pybpf_check_$$_$name
    args=()
    [[ -n $type ]] && { args=(type "$type"); note+=" (bpftool: type $type)"; }
    if out=$(bpftool prog loadall "$obj" "$pin" "${args[@]}" 2>&1); then
        printf '%-22s yes%s\n' "$name" "$note"
    else
        printf '%-22s FAILED%s\n' "$name" "$note"
        echo "$out" | grep -v '^Warning\|^If it used\|^$' | tail -n 15 | sed 's/^/    /'
        failed=1
    fi
    rm -rf "$pin"
    for p in $unpin; do [[ " $pre_existing " == *" $p "* ]] || rm -f "/sys/fs/bpf/$p"; done
done
exit $failed
