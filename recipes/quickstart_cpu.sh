#!/usr/bin/env bash
# The toy world on a CPU: what `make demo` runs. `make study` adds --ppo.schemes rm,gold,vote,random,style
# --rm.ablations teacher_only (the same run folder: the demo's finished stages are reused).
# Hardware: any x86-64 CPU with 2 cores and ~6 GB of free memory. No GPU, no download.
# Time: see README "The toy world" for the measured times (demo: the main comparison over 3 seeds).
#
# Every stage of the method runs for real: a teacher and a smaller student pretrained from scratch on
# multi-step arithmetic, teacher sampling, majority vote, SFT with OpenRLHF's train_sft, student sampling, the
# distilled RM with OpenRLHF's train_rm, PPO with OpenRLHF's train_ppo_ray (Ray + vLLM on the CPU adapter),
# evaluation and the report. Sampling and evaluation use transformers (`backend: hf`): for models this small it
# is faster than starting a vLLM engine per stage. Gold answers are used only to measure. Rerunning skips what is
# done; a killed run continues where it stopped.
# Usage: bash recipes/quickstart_cpu.sh [--dotted.overrides ...]     (CONFIG=... to use another config)
set -euo pipefail
CONFIG=${CONFIG:-$(dirname "$0")/configs/quickstart_cpu.yaml}
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
openrlhf-distill run --config "$CONFIG" "$@"
