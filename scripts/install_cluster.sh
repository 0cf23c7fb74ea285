#!/usr/bin/env bash
# Installs openrlhf-distill with OpenRLHF's GPU stack (the `cluster` extra) into the current Python
# (${PYTHON:-python3}), in the order a fresh GPU machine needs. A plain `pip install '.[cluster]'` fails there:
# OpenRLHF pins flash-attn, which PyPI has only as source, and whose setup.py imports torch while pip is still
# collecting build requirements, before anything is installed. So torch comes first (from the PyTorch index, for
# this machine's CUDA), then the helpers flash-attn's build imports, then flash-attn built against that torch,
# then the package with a constraint that keeps that torch, then `openrlhf-distill doctor`.
# The pins live in requirements/cluster.txt. Options: --dry-run, --cuda cuXYZ, --help.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PINS="$ROOT/requirements/cluster.txt"
PY=${PYTHON:-python3}
INDEX_BASE=https://download.pytorch.org/whl
STEPS=5

usage() {
  cat <<EOF
usage: bash scripts/install_cluster.sh [--dry-run] [--cuda cuXYZ]

Installs openrlhf-distill[cluster] (OpenRLHF with vLLM) into \${PYTHON:-python3} ($PY), in five steps:
  1. torch and torchvision at the versions vLLM pins, from $INDEX_BASE/<cuda build>
  2. the helpers flash-attn's setup.py imports (packaging, psutil, ninja, wheel, setuptools)
  3. flash-attn with --no-build-isolation, so that its build sees the torch of step 1
  4. this repository with its cluster extra, the installed torch held by a constraints file
  5. openrlhf-distill doctor
Pins: requirements/cluster.txt.

  --dry-run      print each step and its exact command; install nothing
  --cuda cuXYZ   the PyTorch CUDA build (e.g. cu130) instead of the one detected with nvidia-smi / nvcc
  -h, --help     this text
EOF
}

fail() {  # one line on stderr: what is wrong and what to do
  echo "install_cluster.sh: $*" >&2
  exit 2
}

dry_run=0
cuda=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --cuda)
      [ $# -ge 2 ] || fail "--cuda needs a PyTorch CUDA build such as cu130"
      cuda=$2
      shift
      ;;
    --cuda=*) cuda=${1#--cuda=} ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) fail "unknown option '$1' (see --help)" ;;
  esac
  shift
done
if [ -n "$cuda" ] && ! [[ $cuda =~ ^cu[0-9]{3,}$ ]]; then
  fail "--cuda takes a PyTorch CUDA build such as cu130 (CUDA 13.0), not '$cuda'"
fi

note() { echo "[install-cluster] $*"; }
step() { echo "[install-cluster $1/$STEPS] $2"; }
run() {  # prints the command as a shell would read it, then runs it unless this is a dry run
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "$dry_run" = 0 ]; then "$@"; fi
}

pin() {  # NAME -> the version written after NAME== in requirements/cluster.txt
  local version
  version=$(sed -n "s/^$1==\([^[:space:]#;]*\).*/\1/p" "$PINS" | head -n 1)
  [ -n "$version" ] || { echo "install_cluster.sh: $PINS has no '$1==' line" >&2; exit 1; }
  echo "$version"
}
torch_pin=$(pin torch)
TORCH=${torch_pin%%+*}
DEFAULT_BUILD=${torch_pin#*+}
[[ $torch_pin == *+cu* ]] || { echo "install_cluster.sh: the torch pin in $PINS needs a +cuXYZ label" >&2; exit 1; }
torchvision_pin=$(pin torchvision)
TORCHVISION=${torchvision_pin%%+*}
FLASH_ATTN=$(pin flash-attn)

cuda_of() {  # cu130 -> 13.0, cu128 -> 12.8 (the last digit is the minor version)
  local digits=${1#cu}
  echo "${digits:0:${#digits}-1}.${digits: -1}"
}
at_least() {  # X.Y >= A.B, compared as versions rather than as text or decimals (12.10 > 12.9)
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

# The driver decides which CUDA builds can run: nvidia-smi's header names the newest CUDA it supports. nvcc is
# looked up where torch's extension builder will look for it (CUDA_HOME or CUDA_PATH, else PATH, else
# /usr/local/cuda), because it is what compiles flash-attn when no prebuilt wheel matches.
x_y='\([0-9][0-9]*\.[0-9][0-9]*\)'  # a CUDA version such as 13.0, captured by sed
driver_cuda=""
if command -v nvidia-smi >/dev/null 2>&1; then
  driver_cuda=$(nvidia-smi 2>/dev/null | sed -n "s/.*CUDA Version: *$x_y.*/\1/p" | head -n 1) || driver_cuda=""
fi
if [ -n "${CUDA_HOME:-${CUDA_PATH:-}}" ]; then
  nvcc="${CUDA_HOME:-$CUDA_PATH}/bin/nvcc"
elif command -v nvcc >/dev/null 2>&1; then
  nvcc=$(command -v nvcc)
else
  nvcc=/usr/local/cuda/bin/nvcc
fi
nvcc_cuda=""
if [ -x "$nvcc" ]; then
  nvcc_cuda=$("$nvcc" --version 2>/dev/null | sed -n "s/.*release $x_y.*/\1/p" | head -n 1) || nvcc_cuda=""
fi
note "CUDA detected: driver ${driver_cuda:-none} (nvidia-smi), nvcc ${nvcc_cuda:-none} ($nvcc)"

default_cuda=$(cuda_of "$DEFAULT_BUILD")
problem=""
if [ -n "$cuda" ]; then
  build=$cuda
  note "torch build $build, from --cuda"
elif [ -z "$driver_cuda$nvcc_cuda" ]; then
  problem="detection found no CUDA (no driver for nvidia-smi, no nvcc): pass the PyTorch CUDA build, e.g. --cuda"
  problem+=" $DEFAULT_BUILD"
else
  machine_cuda=${driver_cuda:-$nvcc_cuda}
  if at_least "$machine_cuda" "$default_cuda"; then
    # A driver runs every CUDA up to the one it reports, and vLLM's PyPI wheel is compiled against this build.
    build=$DEFAULT_BUILD
    note "torch build $build: CUDA $machine_cuda runs it, and vllm's PyPI wheel is compiled against it"
  else
    problem="this machine has CUDA $machine_cuda, older than $default_cuda, the CUDA of torch $TORCH's default build"
    problem+=" $DEFAULT_BUILD that vllm's PyPI wheel needs: update the NVIDIA driver, or pass --cuda cuXYZ to install"
    problem+=" another build anyway"
  fi
fi
if [ -n "$problem" ]; then
  [ "$dry_run" = 1 ] || fail "$problem"
  note "dry run: $problem"
  build=cuXYZ
  note "dry run: cuXYZ below stands for the CUDA build that --cuda names (default: $DEFAULT_BUILD)"
elif [ "$build" != "$DEFAULT_BUILD" ]; then
  note "warning: $build is not $DEFAULT_BUILD, the CUDA build vllm's PyPI wheel is compiled against; vLLM's kernels"
  note "  may not load beside it (vLLM publishes wheels for other CUDA versions separately)"
fi

# flash-attn compiles when no prebuilt wheel matches, and torch refuses an nvcc of another CUDA major version.
if [ "$build" != cuXYZ ]; then
  build_major=$(cuda_of "$build")
  build_major=${build_major%%.*}
  if [ -z "$nvcc_cuda" ]; then
    note "warning: no nvcc ($nvcc): flash-attn installs only if a prebuilt wheel matches; to compile it, install a"
    note "  CUDA $build_major.x toolkit and set CUDA_HOME to it"
  elif [ "${nvcc_cuda%%.*}" != "$build_major" ]; then
    note "warning: nvcc $nvcc_cuda is not CUDA $build_major.x like torch's $build build: torch will refuse to compile"
    note "  flash-attn with it; set CUDA_HOME to a CUDA $build_major.x toolkit"
  fi
fi

if [ "$dry_run" = 1 ]; then
  note "dry run: each step and its command below; nothing is installed"
fi
scripts_dir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null) || scripts_dir=""
if [ -z "$scripts_dir" ]; then
  [ "$dry_run" = 1 ] || { echo "install_cluster.sh: cannot run $PY (set PYTHON to the interpreter)" >&2; exit 1; }
else
  # The ninja of step 2 lands here; torch's extension builder looks for it on PATH and, without it, compiles
  # flash-attn's kernels one at a time (hours).
  export PATH="$scripts_dir:$PATH"
  note "installing into $PY ($scripts_dir first on PATH)"
fi

index="$INDEX_BASE/$build"
step 1 "torch==$TORCH for $build from $index (torchvision==$TORCHVISION from the same CUDA build)"
run "$PY" -m pip install "torch==$TORCH+$build" "torchvision==$TORCHVISION+$build" --index-url "$index"

step 2 "build helpers for flash-attn's setup.py: packaging, psutil, ninja (its setup_requires), wheel, setuptools"
run "$PY" -m pip install packaging psutil ninja wheel setuptools

step 3 "flash-attn==$FLASH_ATTN with --no-build-isolation, so that its setup.py imports the torch of step 1"
note "flash-attn downloads a prebuilt wheel matching torch ${TORCH%.*}, its CUDA and this Python when its release has"
note "  one; else it compiles with nvcc (an hour or more; MAX_JOBS=N caps the parallel jobs, about 9 GB RAM each)"
run "$PY" -m pip install "flash-attn==$FLASH_ATTN" --no-build-isolation

if [ "$dry_run" = 1 ]; then
  constraints="<constraints-file>"
  note "the constraints file will hold the installed torch==$TORCH+$build and torchvision==$TORCHVISION+$build"
else
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  installed=$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"), m.version("torchvision"))')
  read -r torch_installed torchvision_installed <<<"$installed"
  printf 'torch==%s\ntorchvision==%s\n' "$torch_installed" "$torchvision_installed" >"$constraints"
  note "held by a constraints file: torch==$torch_installed torchvision==$torchvision_installed"
fi
step 4 "openrlhf-distill[cluster] from $ROOT (OpenRLHF with vLLM), the installed torch kept by a constraints file"
run "$PY" -m pip install -c "$constraints" "${ROOT}[cluster]"

step 5 "openrlhf-distill doctor: versions, CUDA, and the OpenRLHF version check"
run "$PY" -m openrlhf_distill.cli doctor
if [ "$dry_run" = 1 ]; then note "dry run: done, nothing installed"; else note "done"; fi
