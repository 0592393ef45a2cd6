#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian machine with Python 3.11
# (run as root, or with sudo available for apt-get): Debian packages for Horovod,
# a project virtualenv .venv with the pinned stack, and Horovod 0.28.1 built from
# source with TensorFlow + MPI + Gloo.  Safe to run again: what is installed is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
fail() { echo "setup.sh: ERROR: $*" >&2; exit 1; }
log() { echo "setup.sh: $*"; }

# 1. Debian packages Horovod's build and mpiexec need.
DEB_PACKAGES="cmake g++ openmpi-bin libopenmpi-dev libhighwayhash-dev libfarmhash-dev"
missing=""
for pkg in $DEB_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages:$missing"
  $SUDO apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null \
    || fail "apt-get install of$missing failed"
fi
for tool in mpiexec cmake g++; do
  command -v "$tool" >/dev/null || fail "$tool is missing after installing $DEB_PACKAGES"
done

# 2. Python 3.11 virtualenv with the pinned stack.
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
[ -n "$PYTHON" ] || fail "no python3.11 found"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' \
  || fail "Python 3.11 is required, $PYTHON is $("$PYTHON" --version 2>&1)"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV" || fail "could not create the virtualenv (is python3.11-venv installed?)"
fi
PIP="$VENV/bin/python -m pip"
STAMP="$VENV/.requirements.sha"
want=$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  log "installing the pinned Python stack (requirements.txt)"
  $PIP install -q --upgrade pip wheel setuptools
  $PIP install -q -r requirements.txt || fail "pip install -r requirements.txt failed"
  $PIP install -q --no-deps -e . || fail "pip install -e . failed"
  echo "$want" > "$STAMP"
fi

# 3. Horovod built from source against the installed TensorFlow, with MPI and Gloo.
check_horovod() {
  "$VENV/bin/horovodrun" --check-build 2>/dev/null > "$VENV/.horovod_check" || return 1
  grep -q '\[X\] TensorFlow' "$VENV/.horovod_check" && grep -q '\[X\] MPI' "$VENV/.horovod_check" \
    && grep -q '\[X\] Gloo' "$VENV/.horovod_check"
}
if ! check_horovod; then
  log "building Horovod 0.28.1 with TensorFlow, MPI and Gloo (a few minutes)"
  $PIP install -q psutil pyyaml packaging cloudpickle cffi
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1 \
  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
    $PIP install -q --no-cache-dir --no-build-isolation --force-reinstall --no-deps horovod==0.28.1 \
    || fail "building horovod 0.28.1 failed (see the pip output above)"
  check_horovod || { cat "$VENV/.horovod_check" >&2; fail "horovodrun --check-build does not show TensorFlow, MPI and Gloo"; }
fi
log "Horovod: $(grep -E '\[X\]' "$VENV/.horovod_check" | tr -s ' ' | tr '\n' ' ')"

$PIP check >/dev/null || { $PIP check; fail "pip check reports broken requirements"; }
log "ready: $VENV (activate with: source .venv/bin/activate)"
