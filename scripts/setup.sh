#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian machine with Python 3.11
# (run as root, or with sudo available for apt-get): Debian packages for Horovod,
# a project virtualenv .venv with the pinned stack, and Horovod 0.28.1 built from its
# source distribution, patched by scripts/horovod-0.28.1.patch, with TensorFlow + MPI +
# Gloo.  Safe to run again: what is installed is kept.
#
#   --gpu (or EMERGING_GPU=1): for NVIDIA GPUs.  Checks first for the driver (nvidia-smi
#       listing a GPU, driver 525 or newer) and a CUDA 12 toolkit (HOROVOD_CUDA_HOME, CUDA_HOME,
#       /usr/local/cuda, /usr/local/cuda-12*, or the nvcc on PATH), installs TensorFlow with its
#       CUDA wheels (tensorflow[and-cuda] at the version of requirements.txt), finds NCCL
#       (NCCL_HOME or HOROVOD_NCCL_HOME, else the nvidia-nccl-cu12 wheel, else a system NCCL
#       in /usr) and builds Horovod with NCCL as well.
#   --dry-run (or EMERGING_SETUP_DRY_RUN=1): runs the checks and prints every install and build
#       command instead of running it; nothing is created, installed or built.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
fail() { echo "setup.sh: ERROR: $*" >&2; exit 1; }
log() { echo "setup.sh: $*"; }

GPU=${EMERGING_GPU:-0}
DRY_RUN=${EMERGING_SETUP_DRY_RUN:-0}
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --dry-run) DRY_RUN=1 ;;
    *) fail "unknown argument $arg (known: --gpu, --dry-run)" ;;
  esac
done

# A dry run prints each command, quoted to be pasted into a shell, on the original stdout (fd 3),
# so that the output redirections of a command do not hide it.
exec 3>&1
run() {
  if [ "$DRY_RUN" != 1 ]; then
    "$@"
    return
  fi
  local word line="setup.sh: would run:"
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then line+=" $word"; else line+=" '${word//\'/\'\\\'\'}'"; fi
  done
  echo "$line" >&3
}

exists_any() {
  local path
  for path in "$@"; do [ -e "$path" ] && return 0; done
  return 1
}

# 0. GPU mode: the NVIDIA driver and the CUDA 12 toolkit, before anything is installed.
check_driver() {
  command -v nvidia-smi >/dev/null \
    || fail "no NVIDIA driver: nvidia-smi not found (install the NVIDIA driver, 525 or newer)"
  local gpus version
  gpus=$(nvidia-smi -L 2>&1) || fail "no NVIDIA driver: nvidia-smi -L fails: $gpus"
  grep -q '^GPU [0-9]' <<< "$gpus" || fail "no NVIDIA driver: nvidia-smi lists no GPU ($gpus)"
  version=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
  # TensorFlow 2.21's CUDA 12 wheels run on drivers from 525.60.13 on (CUDA minor-version compatibility)
  [ "${version%%.*}" -ge 525 ] 2>/dev/null \
    || fail "NVIDIA driver ${version:-of unknown version} is too old: TensorFlow's CUDA 12 wheels need 525 or newer"
  log "NVIDIA driver $version: $(grep -c '^GPU [0-9]' <<< "$gpus") GPU(s)"
  grep '^GPU [0-9]' <<< "$gpus" | sed 's/^/setup.sh:   /'
}

# Horovod's NCCL build compiles CUDA kernels with nvcc and links the static CUDA runtime; TensorFlow's
# wheels are CUDA 12, so the toolkit must be CUDA 12 too.  Sets CUDA_HOME.
find_cuda() {
  local candidates home nvcc_path release rejected=""
  if [ -n "${HOROVOD_CUDA_HOME:-}" ]; then
    candidates=$HOROVOD_CUDA_HOME
  else
    nvcc_path=$(command -v nvcc || true)
    candidates="${CUDA_HOME:-} /usr/local/cuda $(compgen -G '/usr/local/cuda-12*' || true)"
    [ -z "$nvcc_path" ] || candidates+=" $(dirname "$(dirname "$(readlink -f "$nvcc_path")")")"
  fi
  for home in $candidates; do
    [ -x "$home/bin/nvcc" ] || continue
    release=$("$home/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
    if [ "${release%%.*}" != 12 ]; then
      rejected+="; $home is CUDA ${release:-of unknown version}"
    elif ! exists_any "$home"/include/cuda_runtime.h "$home"/targets/*/include/cuda_runtime.h; then
      rejected+="; $home has no include/cuda_runtime.h"
    elif ! exists_any "$home"/lib64/libcudart_static.a "$home"/lib/libcudart_static.a \
        "$home"/targets/*/lib/libcudart_static.a; then
      rejected+="; $home has no libcudart_static.a"
    else
      CUDA_HOME=$home
      log "CUDA toolkit $release: $CUDA_HOME"
      return
    fi
  done
  if [ -z "$rejected" ]; then
    candidates=$(echo $candidates)
    rejected="; no bin/nvcc in ${candidates// /, }"
  fi
  fail "no CUDA 12 toolkit (nvcc, cuda_runtime.h, libcudart_static.a), which Horovod needs to build its GPU" \
    "kernels: ${rejected#; }. Install one (e.g. NVIDIA's cuda-toolkit-12-5) and set HOROVOD_CUDA_HOME to it"
}

if [ "$GPU" = 1 ]; then
  check_driver
  find_cuda
  TF_VERSION=$(sed -n 's/^tensorflow==\([^ ;#]*\).*/\1/p' requirements.txt)
  [ -n "$TF_VERSION" ] || fail "requirements.txt pins no tensorflow==VERSION"
fi

# 1. Debian packages Horovod's build and mpiexec need.
DEB_PACKAGES="cmake g++ patch openmpi-bin libopenmpi-dev libhighwayhash-dev libfarmhash-dev"
missing=""
for pkg in $DEB_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages:$missing"
  run $SUDO apt-get update -qq || fail "apt-get update failed"
  run env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null \
    || fail "apt-get install of$missing failed"
fi
if [ "$DRY_RUN" != 1 ]; then
  for tool in mpiexec cmake g++ patch; do
    command -v "$tool" >/dev/null || fail "$tool is missing after installing $DEB_PACKAGES"
  done
fi

# 2. Python 3.11 virtualenv with the pinned stack (in GPU mode with TensorFlow's CUDA wheels).
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
[ -n "$PYTHON" ] || fail "no python3.11 found"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' \
  || fail "Python 3.11 is required, $PYTHON is $("$PYTHON" --version 2>&1)"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  run "$PYTHON" -m venv "$VENV" || fail "could not create the virtualenv (is python3.11-venv installed?)"
fi
PIP="$VENV/bin/python -m pip"
# uv installs the pinned stack: the same wheels as pip, downloaded, unpacked and byte-compiled in parallel (a fresh
# requirements.txt install on 2 cores: 69 s instead of pip's 134 s).  --compile-bytecode as pip does: without .pyc
# files every process would compile TensorFlow's Python anew.  --native-tls: the system's certificates, as pip.
UV_VERSION=0.13.10
UV_INSTALL=("$VENV/bin/uv" pip install -q --native-tls --compile-bytecode --python "$VENV/bin/python")
STAMP="$VENV/.requirements.sha"
if [ "$GPU" = 1 ]; then
  want=$(cat requirements.txt setup.py <(echo 'tensorflow[and-cuda]') | sha256sum | cut -d' ' -f1)
else
  want=$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1)
fi
installing_stack=0
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  installing_stack=1
  log "installing the pinned Python stack (requirements.txt)"
  # setuptools below 81: Horovod's build below uses it (--no-build-isolation) and is measured with 80
  run $PIP install -q --upgrade pip wheel 'setuptools<81' "uv==$UV_VERSION"
  run "${UV_INSTALL[@]}" -r requirements.txt || fail "uv pip install -r requirements.txt failed"
  if [ "$GPU" = 1 ]; then
    log "installing TensorFlow $TF_VERSION's CUDA libraries (tensorflow[and-cuda])"
    run "${UV_INSTALL[@]}" "tensorflow[and-cuda]==$TF_VERSION" || fail "uv pip install tensorflow[and-cuda] failed"
  fi
  run $PIP install -q --no-deps -e . || fail "pip install -e . failed"
  [ "$DRY_RUN" = 1 ] || echo "$want" > "$STAMP"
fi

# 3. GPU mode: the NCCL Horovod's GPU operations are built with.  TensorFlow's nvidia-nccl-cu12 wheel is
# preferred, so that Horovod and TensorFlow use one NCCL; it has only libnccl.so.2, and Horovod's build
# looks for libnccl.so.  Sets NCCL_BUILD_ENV.
has_nccl_library() { exists_any "$1/libnccl.so" "$1/libnccl_static.a"; }
find_nccl() {
  local home=${HOROVOD_NCCL_HOME:-${NCCL_HOME:-}} wheel="$VENV/lib/python3.11/site-packages/nvidia/nccl" lib
  local wheel_found=0
  if [ -f "$wheel/include/nccl.h" ] && [ -e "$wheel/lib/libnccl.so.2" ]; then
    wheel_found=1
  elif [ "$DRY_RUN" = 1 ] && [ "$installing_stack" = 1 ]; then
    wheel_found=1  # the tensorflow[and-cuda] install above, which this dry run only printed, brings it
  fi
  if [ -n "$home" ]; then
    [ -f "$home/include/nccl.h" ] || fail "no NCCL: $home/include/nccl.h not found (NCCL_HOME / HOROVOD_NCCL_HOME)"
    has_nccl_library "$home/lib" || fail "no NCCL: $home/lib has no libnccl.so or libnccl_static.a"
    log "NCCL: $home (${HOROVOD_NCCL_HOME:+HOROVOD_}NCCL_HOME)"
    NCCL_BUILD_ENV=("HOROVOD_NCCL_HOME=$home")
  elif [ "$wheel_found" = 1 ]; then
    log "NCCL: the nvidia-nccl-cu12 wheel of tensorflow[and-cuda] ($wheel)"
    [ -e "$wheel/lib/libnccl.so" ] || run ln -s libnccl.so.2 "$wheel/lib/libnccl.so" \
      || fail "could not link libnccl.so to libnccl.so.2 in $wheel/lib"
    NCCL_BUILD_ENV=("HOROVOD_NCCL_INCLUDE=$wheel/include" "HOROVOD_NCCL_LIB=$wheel/lib" HOROVOD_NCCL_LINK=SHARED)
  else
    for lib in /usr/lib/*-linux-gnu /usr/lib64 /usr/lib; do
      if [ -f /usr/include/nccl.h ] && has_nccl_library "$lib"; then
        log "NCCL: the system's (/usr/include, $lib)"
        NCCL_BUILD_ENV=(HOROVOD_NCCL_INCLUDE=/usr/include "HOROVOD_NCCL_LIB=$lib")
        return
      fi
    done
    fail "no NCCL: not in the virtualenv (the nvidia-nccl-cu12 wheel of tensorflow[and-cuda], $wheel) nor in" \
      "the system (/usr/include/nccl.h with libnccl.so or libnccl_static.a in /usr/lib*); install libnccl-dev" \
      "or set NCCL_HOME to an NCCL with include/nccl.h and lib/libnccl.so"
  fi
}
REQUIRED_BUILD="TensorFlow MPI Gloo"
GPU_BUILD_ENV=()
if [ "$GPU" = 1 ]; then
  find_nccl
  REQUIRED_BUILD+=" NCCL"
  # nvcc from the checked toolkit first on PATH: Horovod asks the nvcc on PATH which GPU architectures to build for
  GPU_BUILD_ENV=(HOROVOD_GPU_OPERATIONS=NCCL "HOROVOD_CUDA_HOME=$CUDA_HOME" "PATH=$CUDA_HOME/bin:$PATH"
                 "${NCCL_BUILD_ENV[@]}")
fi

# 4. Horovod built from source against the installed TensorFlow, with MPI and Gloo (and NCCL in GPU mode).
check_horovod() {
  [ -x "$VENV/bin/horovodrun" ] || return 1
  "$VENV/bin/horovodrun" --check-build 2>/dev/null > "$VENV/.horovod_check" || return 1
  local part
  for part in $REQUIRED_BUILD; do
    grep -q "\[X\] $part" "$VENV/.horovod_check" || return 1
  done
}
# Its source distribution with the project's patch (scripts/horovod-0.28.1.patch says what and why), built in
# .venv/horovod-build, which is removed after the build.
HOROVOD_BUILD="$VENV/horovod-build"
HOROVOD_SOURCE="$HOROVOD_BUILD/horovod-0.28.1"
if ! check_horovod; then
  log "building Horovod 0.28.1 with ${REQUIRED_BUILD// /, } (a few minutes)"
  run $PIP install -q psutil pyyaml packaging cloudpickle cffi
  run rm -rf "$HOROVOD_BUILD"
  run mkdir -p "$HOROVOD_BUILD"
  run $PIP download -q --no-deps --no-binary :all: --no-build-isolation -d "$HOROVOD_BUILD" horovod==0.28.1 \
    || fail "could not download Horovod 0.28.1's source distribution"
  run tar xzf "$HOROVOD_SOURCE.tar.gz" -C "$HOROVOD_BUILD" || fail "could not unpack $HOROVOD_SOURCE.tar.gz"
  run patch -s -p1 -d "$HOROVOD_SOURCE" -i "$ROOT/scripts/horovod-0.28.1.patch" \
    || fail "scripts/horovod-0.28.1.patch does not apply to Horovod 0.28.1's source distribution"
  run env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" "${GPU_BUILD_ENV[@]}" \
    $PIP install -q --no-cache-dir --no-build-isolation --force-reinstall --no-deps "$HOROVOD_SOURCE" \
    || fail "building horovod 0.28.1 failed (see the pip output above)"
  run rm -rf "$HOROVOD_BUILD"
  [ "$DRY_RUN" = 1 ] || check_horovod \
    || { cat "$VENV/.horovod_check" >&2; fail "horovodrun --check-build does not show ${REQUIRED_BUILD// /, }"; }
fi
if [ "$DRY_RUN" = 1 ]; then
  log "dry run: nothing was installed or built"
  exit 0
fi
log "Horovod: $(grep -E '\[X\]' "$VENV/.horovod_check" | tr -s ' ' | tr '\n' ' ')"
[ "$GPU" != 1 ] || cat "$VENV/.horovod_check"

$PIP check >/dev/null || { $PIP check; fail "pip check reports broken requirements"; }
log "ready: $VENV (activate with: source .venv/bin/activate)"
