#!/usr/bin/env bash
# aarch64 proof without a Pi: build an arm64 Debian bookworm root with debootstrap, run it under
# qemu-user-static (binfmt_misc), install the device extra (edge-pdm[agent]) in a venv there, run
# `edge-agent check-model` on every bundle in models/, then replay the same recordings through
# every bundle on the host (x86-64) and in the root (arm64) and compare the raw outputs against
# each bundle's golden tolerance (bench/aarch64/outputs.py). Run on demand, as root, on a Debian
# or Ubuntu x86-64 host; not part of .ci/run (it takes minutes and needs debootstrap and binfmt).
#
#   sudo bench/aarch64/run.sh [--root DIR] [--out DIR] [--keep] [--cpu NAME] [--windows N]
#                             [--cmapss FILE] [--unpinned] [--mirror URL]
#
#   --root DIR     the arm64 root (default /var/tmp/edge-arm64-root); reused if a previous
#                  --keep run completed it
#   --keep         keep the root (and its venv) afterwards; without it the root is deleted on exit
#   --out DIR      results, logs and the wheel (default /var/tmp/edge-arm64-results)
#   --cpu NAME     the CPU qemu emulates, which decides the instructions LiteRT/XNNPACK find and
#                  so the kernels they run: cortex-a72 (default: Raspberry Pi 4), cortex-a76
#                  (Pi 5), max (every feature qemu has); `qemu-aarch64-static -cpu help` lists all
#   --windows N    replay windows per bundle (default 50)
#   --cmapss FILE  C-MAPSS test_FD001.txt for the RUL bundle (default ../shared/data/cmapss/
#                  beside the repository, if present; otherwise seeded random rows)
#   --unpinned     let pip pick the newest dependency versions in the root instead of the
#                  host's versions (the default pins them so that only the architecture differs)
#   --mirror URL   Debian mirror (default http://deb.debian.org/debian)
#
# Exit status: 0 all bundles within tolerance, 1 a step failed or a bundle is out of tolerance.
# A failed step prints one line naming it and the log to read, then the end of that log.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROOT=/var/tmp/edge-arm64-root
OUT=/var/tmp/edge-arm64-results
KEEP=0
WINDOWS=50
CMAPSS=""
[ -f "$REPO/../shared/data/cmapss/test_FD001.txt" ] && CMAPSS="$REPO/../shared/data/cmapss/test_FD001.txt"
PINNED=1
CPU=cortex-a72
MIRROR=http://deb.debian.org/debian
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
VENV=/opt/edge-venv            # inside the root
MARKER=.edge-arm64-root        # in the root: this script made it (so it may delete it)
DONE_MARKER=.edge-arm64-root-complete

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --cpu) CPU=${2:?--cpu needs a qemu CPU name}; shift 2 ;;
        --windows) WINDOWS=${2:?--windows needs a number}; shift 2 ;;
        --cmapss) CMAPSS=${2:?--cmapss needs a file}; shift 2 ;;
        --unpinned) PINNED=0; shift ;;
        --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# ---------------------------------------------------------------- step bookkeeping and cleanup

STEP=""          # the step in progress: named in the one-line failure message
LOG=/dev/null    # its log
STEP_T0=0
T_START=$EPOCHREALTIME
TIMINGS=()       # "step|seconds"
MOUNTED_BINFMT=0

fail() {  # one readable line, then exit (the EXIT trap cleans up)
    echo "run.sh: $*" >&2
    STEP=""
    exit 1
}

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

begin() {  # begin "human name" log-name
    STEP=$1
    LOG="$OUT/logs/$2.log"
    : >"$LOG"
    STEP_T0=$EPOCHREALTIME
    echo "== $STEP"
}

end() {
    local took
    took=$(seconds_since "$STEP_T0")
    TIMINGS+=("$STEP|$took")
    echo "   ($took s)"
    STEP=""
}

mounts_under_root() {  # mount points inside the root, deepest first
    awk -v root="$ROOT" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r
}

unmount_all() {
    local point
    for point in $(mounts_under_root); do
        umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null ||
            echo "run.sh: could not unmount $point" >&2
    done
}

on_exit() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ] && [ -n "$STEP" ]; then
        echo "run.sh: FAILED at step '$STEP' (exit $rc); log: $LOG" >&2
        [ -s "$LOG" ] && tail -n 12 "$LOG" | sed 's/^/    /' >&2
    fi
    unmount_all
    if [ -n "$(mounts_under_root)" ]; then
        echo "run.sh: mounts remain under $ROOT; not deleting it" >&2
    elif [ "$KEEP" -eq 0 ] && [ -f "$ROOT/$MARKER" ]; then
        echo "== removing $ROOT (--keep keeps it for the next run)"
        rm -rf --one-file-system "$ROOT"
    fi
    [ "$MOUNTED_BINFMT" -eq 1 ] && echo "   (binfmt_misc stays mounted, qemu-aarch64 registered)"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Commands in the root: clean environment, the venv first on PATH, QEMU_CPU for qemu (through
# binfmt_misc it reads its options from the environment). The host's CA bundle goes along as
# pip's trust store, so a host behind a TLS-intercepting proxy (its CA is only in the host's
# store) reaches PyPI from the root too; proxy variables are passed through.
in_root() {
    local env=(HOME=/root LANG=C.UTF-8 PATH="$VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        QEMU_CPU="$CPU" PIP_CERT=/etc/ssl/edge-host-ca.pem PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=2)
    local name
    for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [ -n "${!name:-}" ] && env+=("$name=${!name}")
    done
    chroot "$ROOT" /usr/bin/env -i "${env[@]}" "$@"
}

# ------------------------------------------------------------------------------------ checks

[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap, chroot and mount need it)"
ROOT=$(realpath -m "$ROOT")
OUT=$(realpath -m "$OUT")
if [ "$ROOT" = / ] || [ "$ROOT" = "$OUT" ]; then
    fail "--root must be a directory of its own, not / or --out"
fi
case "$ROOT$OUT" in *[[:space:]]*) fail "--root and --out must not contain whitespace" ;; esac
[[ "$WINDOWS" =~ ^[1-9][0-9]*$ ]] || fail "--windows must be a positive integer, got '$WINDOWS'"
[ -z "$CMAPSS" ] || [ -f "$CMAPSS" ] || fail "--cmapss $CMAPSS: file not found"
mkdir -p "$OUT/logs"

begin "check tools" 00-tools
missing=()
for tool in debootstrap chroot mount umount update-binfmts git tar; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-aarch64-static)
[ ${#missing[@]} -eq 0 ] || fail "missing ${missing[*]}: install with" \
    "apt-get update && apt-get install -y debootstrap qemu-user-static binfmt-support"
# The host side runs the repository's own edge_agent with the host's interpreter and numpy.
PYTHONPATH="$REPO" python3 -c 'import edge_agent.runtime, numpy, ai_edge_litert' >>"$LOG" 2>&1 ||
    fail "host python3 cannot import edge_agent's device dependencies: pip install -e '${REPO}[agent]'"
end

# qemu-user-static registers its handlers with binfmt_misc; in a container the filesystem may
# not be mounted and the handler may be disabled, so mount and enable them here.
begin "register qemu-aarch64 with binfmt_misc" 01-binfmt
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc >>"$LOG" 2>&1 ||
        fail "cannot mount binfmt_misc (a container without CAP_SYS_ADMIN cannot run this proof)"
    MOUNTED_BINFMT=1
fi
HANDLER=/proc/sys/fs/binfmt_misc/qemu-aarch64
if ! head -n 1 "$HANDLER" 2>/dev/null | grep -qx enabled; then
    update-binfmts --enable qemu-aarch64 >>"$LOG" 2>&1 || true
fi
head -n 1 "$HANDLER" 2>/dev/null | grep -qx enabled ||
    fail "no enabled qemu-aarch64 handler in binfmt_misc (update-binfmts --enable qemu-aarch64 failed)"
QEMU_INTERPRETER=$(awk '$1 == "interpreter" { print $2 }' "$HANDLER")
QEMU_FLAGS=$(awk '$1 == "flags:" { print $2 }' "$HANDLER")
cat "$HANDLER" >>"$LOG"
echo "   handler: $QEMU_INTERPRETER, flags ${QEMU_FLAGS:-none}"
end

# Without the F flag the kernel looks the interpreter up inside the root at exec time.
install_qemu_in_root() {
    if [[ "$QEMU_FLAGS" != *F* ]]; then
        mkdir -p "$ROOT$(dirname "$QEMU_INTERPRETER")"
        cp /usr/bin/qemu-aarch64-static "$ROOT$QEMU_INTERPRETER"
    fi
}

# ---------------------------------------------------------------------------- the arm64 root

if [ -f "$ROOT/$DONE_MARKER" ]; then
    echo "== reusing the arm64 root in $ROOT"
    install_qemu_in_root
else
    if [ -e "$ROOT" ] && [ ! -f "$ROOT/$MARKER" ] && [ -n "$(ls -A "$ROOT")" ]; then
        fail "$ROOT exists and was not made by this script: remove it or give another --root"
    fi
    [ -n "$(mounts_under_root)" ] && fail "$ROOT has mounts inside it: unmount them first"
    rm -rf --one-file-system "$ROOT"   # a partial root of an interrupted run, or nothing
    mkdir -p "$ROOT"
    touch "$ROOT/$MARKER"
    # Two stages: the first unpacks on the host; the second configures the packages by running
    # arm64 dpkg and maintainer scripts in the root, through qemu.
    begin "debootstrap arm64 $SUITE, first stage (download, unpack)" 10-debootstrap-1
    debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" --foreign \
        "$SUITE" "$ROOT" "$MIRROR" >>"$LOG" 2>&1
    end
    install_qemu_in_root
    begin "debootstrap second stage (configure, under qemu)" 11-debootstrap-2
    chroot "$ROOT" /debootstrap/debootstrap --second-stage >>"$LOG" 2>&1
    end
    touch "$ROOT/$DONE_MARKER"
fi

# Not /sys: it would describe the x86-64 host's processors, and XNNPACK's cpuinfo (in LiteRT)
# then crashes the arm64 process under qemu (measured: SIGSEGV in check-model with every -cpu).
# Without /sys it logs "Error in cpuinfo: failed to parse ... /sys/devices/system/cpu/possible"
# and goes on, taking the instruction set from the auxiliary vector that qemu fills in.
begin "mount /proc, /dev, the repository (read-only) and the results directory" 20-mounts
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
mkdir -p "$ROOT/repo" "$ROOT/results"
mount --bind "$REPO" "$ROOT/repo"
if ! mount -o remount,bind,ro "$ROOT/repo" >>"$LOG" 2>&1; then
    echo "   (the repository could not be remounted read-only; it stays writable)"
fi
mount --bind "$OUT" "$ROOT/results"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/edge-host-ca.pem"
in_root /bin/true >>"$LOG" 2>&1 ||
    fail "cannot execute arm64 binaries in $ROOT as CPU '$CPU' (binfmt/qemu, see $LOG)"
end

# ------------------------------------------------------------------ edge-pdm[agent] in a venv

# The wheel is built on the host from the working tree's files (in a git checkout: tracked and
# untracked, not ignored), copied first so the build leaves nothing in the repository; no
# setuptools build runs under emulation. edge-pdm is pure Python: one wheel fits both machines.
begin "build the edge-pdm wheel on the host" 30-wheel
rm -rf "$OUT/wheels"
mkdir -p "$OUT/wheels"
SRC=$(mktemp -d)
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$REPO" ls-files -z -co --exclude-standard |
        tar -C "$REPO" --null --ignore-failed-read -T - -cf - | tar -C "$SRC" -xf -
    changed=$(git -C "$REPO" status --porcelain | wc -l)
    echo "   source: commit $(git -C "$REPO" rev-parse --short HEAD)," \
        "$changed uncommitted change(s) in the working tree"
else
    tar -C "$REPO" --exclude=./.git --exclude=./build --exclude='*.egg-info' -cf - . |
        tar -C "$SRC" -xf -
    echo "   source: $REPO (not a git checkout)"
fi
python3 -m pip wheel --no-deps -w "$OUT/wheels" "$SRC" >>"$LOG" 2>&1
rm -rf "$SRC"
WHEEL=$(cd "$OUT/wheels" && ls edge_pdm-*.whl)
: >"$OUT/wheels/constraints.txt"
if [ "$PINNED" -eq 1 ]; then
    # Pin the root to the host's versions of everything it will install (numpy, ai-edge-litert,
    # pydantic, ...): the comparison then differs in the architecture only.
    python3 -m pip freeze --all 2>>"$LOG" |
        grep -E '^[A-Za-z0-9._-]+==[A-Za-z0-9._!]+$' >"$OUT/wheels/constraints.txt" || true
fi
echo "   $WHEEL, $(wc -l <"$OUT/wheels/constraints.txt") host version pins"
end

begin "create the venv and pip install edge-pdm[agent] in the root (under qemu)" 31-pip
[ -x "$ROOT$VENV/bin/python" ] || in_root python3 -m venv "$VENV" >>"$LOG" 2>&1
# Binary wheels only: nothing compiles under emulation, and a missing arm64 wheel fails clearly.
in_root pip install --only-binary=:all: -c /results/wheels/constraints.txt \
    "/results/wheels/${WHEEL}[agent]" >>"$LOG" 2>&1
# A kept root may hold an older build of the same version: replace it with this one.
in_root pip install --no-deps --force-reinstall "/results/wheels/$WHEEL" >>"$LOG" 2>&1
in_root python -c '
import importlib.metadata as m, os, platform
cpu = os.environ["QEMU_CPU"]
names = ("edge-pdm", "ai-edge-litert", "numpy", "pydantic", "orjson", "paho-mqtt")
print(f"{platform.machine()} (qemu -cpu {cpu}) | Python {platform.python_version()} | "
      + " | ".join(f"{n} {m.version(n)}" for n in names))' | tee "$OUT/versions-arm64.txt"
end

# -------------------------------------------------------------------------- check and replay

begin "edge-agent check-model on every bundle (arm64)" 40-check-model
: >"$OUT/check-model-arm64.txt"
for manifest in "$REPO"/models/*/manifest.json; do
    bundle=models/$(basename "$(dirname "$manifest")")
    echo "\$ edge-agent check-model $bundle" >>"$OUT/check-model-arm64.txt"
    in_root /bin/sh -c "cd /repo && exec edge-agent check-model $bundle" \
        >>"$OUT/check-model-arm64.txt" 2>>"$LOG" || fail "edge-agent check-model $bundle failed" \
        "in the arm64 root (see $LOG)"
done
grep -E '^\$|verified on' "$OUT/check-model-arm64.txt" | sed 's/^/   /'
end

OUTPUTS=bench/aarch64/outputs.py
begin "record the replay inputs on the host ($WINDOWS windows per bundle)" 50-record
rm -rf "$OUT/recordings"
PYTHONPATH="$REPO" python3 "$REPO/$OUTPUTS" --record "$OUT/recordings" --windows "$WINDOWS" \
    ${CMAPSS:+--cmapss "$CMAPSS"} 2>>"$LOG" | sed 's/^/   /'
end

begin "replay on the host (x86-64)" 51-replay-x86_64
PYTHONPATH="$REPO" python3 "$REPO/$OUTPUTS" --replay "$OUT/recordings" \
    --out "$OUT/x86_64.json" 2>>"$LOG" | sed 's/^/   /'
end

begin "replay in the root (arm64, under qemu)" 52-replay-arm64
in_root python "/repo/$OUTPUTS" --models /repo/models --replay /results/recordings \
    --out /results/aarch64.json 2>>"$LOG" | sed 's/^/   /'
end

begin "compare the outputs" 60-compare
echo
compared=0
PYTHONPATH="$REPO" python3 "$REPO/$OUTPUTS" --compare "$OUT/x86_64.json" "$OUT/aarch64.json" \
    2>>"$LOG" | tee "$OUT/comparison.md" || compared=$?
echo
[ "$compared" -ne 1 ] ||
    fail "a bundle is outside its golden tolerance on arm64 (table above, $OUT/comparison.md)"
[ "$compared" -eq 0 ] || fail "the comparison failed (see $LOG)"
end

# ------------------------------------------------------------------------------------ summary

{
    echo "| step | seconds |"
    echo "|---|---|"
    for entry in "${TIMINGS[@]}"; do echo "| ${entry%|*} | ${entry##*|} |"; done
    echo "| total (wall) | $(seconds_since "$T_START") |"
} | tee "$OUT/timings.md"
echo "results: $OUT (comparison.md, check-model-arm64.txt, versions-arm64.txt, logs/)"
