#!/usr/bin/env bash
# Fills scripts/gpu_check/wheelhouse/ with every wheel of wheels.txt, for a Linux x86-64 CPython machine without
# network; wheels over $SPLIT_MB go to wheelhouse-large/ beside it. Run it on a machine with network, from anywhere.
#   PYTHON          the interpreter whose pip downloads and builds (default: the repository's .venv, else python3)
#   GPU_PYTHON      the GPU machine's Python version (default 3.11)
#   SPLIT_MB        wheels larger than this go to wheelhouse-large/ (default 32): the device tool carries at most
#                   64 MiB a call, and the whole set is about 100 MB (pyarrow alone 55), so it travels in two calls
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WHEELHOUSE=$HERE/wheelhouse
LARGE=$HERE/wheelhouse-large
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
GPU_PYTHON=${GPU_PYTHON:-3.11}
SPLIT_MB=${SPLIT_MB:-32}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip.conf on some machines names local indexes that do not exist: drop those warnings, keep the rest.
pip_quiet() { "$PY" -m pip "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }

# The GPU machine's interpreter, not this one's: pip then picks the wheels that install there. manylinux tags up
# to 2.28 (glibc 2.28: RHEL 8, Ubuntu 20.04 and later); pip does not widen a manylinux_2_X tag to older ones.
TARGET=(--only-binary=:all: --implementation cp --python-version "$GPU_PYTHON" --abi "cp${GPU_PYTHON/./}")
for tag in manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28; do
    TARGET+=(--platform "${tag}_x86_64")
done

# Requirement lines of wheels.txt: comments and blank lines dropped.
pins=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HERE/wheels.txt" | grep -v '^$')
own=$(grep -E '^openrlhf-distill==' <<<"$pins")
deepspeed=$(grep -E '^deepspeed==' <<<"$pins")
others=$(grep -vE '^(openrlhf-distill|deepspeed)==' <<<"$pins")

# A stale wheel of another version would still be copied to the GPU machine (and count against what it carries).
mkdir -p "$WHEELHOUSE" "$LARGE"
rm -f "$WHEELHOUSE"/*.whl "$LARGE"/*.whl

echo "[wheelhouse] this package (${own#*==}) from $ROOT"
# pyproject's version is what wheels.txt pins: a bump there must be a bump here, or the install finds no wheel.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
if [ "$version" != "${own#*==}" ]; then
    echo "wheels.txt pins $own but pyproject.toml says version $version" >&2
    exit 1
fi
# setuptools builds in the checkout: the build/ folder it leaves is removed unless it was there before.
[ -e "$ROOT/build" ] && had_build=1 || had_build=0
pip_quiet wheel --quiet --no-deps --wheel-dir "$WHEELHOUSE" "$ROOT"
[ "$had_build" = 1 ] || rm -rf "$ROOT/build"

# deepspeed publishes an sdist only. DS_BUILD_OPS=0: no op is compiled here (this machine has no CUDA); the wheel
# is pure Python and the GPU machine JIT-builds the ops it uses (FusedAdam) on first use.
echo "[wheelhouse] $deepspeed (sdist -> wheel, DS_BUILD_OPS=0)"
DS_BUILD_OPS=0 pip_quiet wheel --quiet --no-deps --no-binary deepspeed --wheel-dir "$WHEELHOUSE" "$deepspeed"

echo "[wheelhouse] $(wc -l <<<"$others") wheels for CPython $GPU_PYTHON, manylinux x86-64"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
printf '%s\n' "$others" >"$list"
# --no-deps: wheels.txt is the closed list (run.py installs it with --no-deps too); anything else pulled in here
# would be torch or the CUDA libraries.
pip_quiet download --quiet --no-deps "${TARGET[@]}" --dest "$WHEELHOUSE" -r "$list"

# run.py installs from both folders (pip --find-links twice).
find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' -size +"${SPLIT_MB}"M -exec mv {} "$LARGE"/ \;
for folder in "$WHEELHOUSE" "$LARGE"; do
    count=$(find "$folder" -maxdepth 1 -name '*.whl' | wc -l)
    echo "[wheelhouse] $count wheels, $(du -sh "$folder" | cut -f1) in $folder"
done
