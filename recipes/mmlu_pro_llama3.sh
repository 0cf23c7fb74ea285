#!/usr/bin/env bash
# The paper's MMLU-Pro experiment: Llama-3.1-8B-Instruct teacher -> Llama-3.2-1B / 3B-Instruct students.
# MMLU-Pro has no train split: its test set is split by category with a fixed seed and the split is written to
# the run folder (mmlu_pro_split.json), so the training questions never meet the evaluation questions.
# Hardware: one node of 8 x 80 GB GPUs. The 8B teacher and the student sample on 8 vLLM engines of 1 GPU; SFT and
#   RM train with deepspeed on all 8; PPO is OpenRLHF's hybrid engine, every model and 8 vLLM engines colocated on
#   the 8 GPUs (per-GPU memory: recipes/configs/mmlu_pro_llama3.yaml, docs/ppo.md; 3B student about 35 GB while
#   training, vLLM 40 GB while generating). `--dry_run` checks every stage's command and prints its GPUs.
# Time: teacher sampling ~1-2 h; per student and seed SFT ~20 min, student sampling ~30 min, RM ~20 min,
#   each PPO run ~3-5 h: about 2 days per student for 3 seeds and 3 schemes.
# Needs: pip install './openrlhf-distill[cluster]' from a clone (README "Install"); the models as local folders
#   under $MODELS; MMLU-Pro through `datasets` (or data.train / data.test pointing at local copies).
# Usage: MODELS=/models bash recipes/mmlu_pro_llama3.sh [--dry_run] [--dotted.overrides ...]
#   RUN_DIR (default $PWD/runs/mmlu_pro_llama3_$STUDENT, absolute) must be on storage every Ray node sees.
set -euo pipefail
MODELS=${MODELS:-/models}
STUDENT=${STUDENT:-Llama-3.2-1B-Instruct}
RUN_DIR=${RUN_DIR:-$PWD/runs/mmlu_pro_llama3_${STUDENT}}  # absolute: Ray nodes resolve it alike
exec openrlhf-distill run --config "$(dirname "$0")/configs/mmlu_pro_llama3.yaml" \
  --teacher.model "$MODELS/Llama-3.1-8B-Instruct" --student.model "$MODELS/$STUDENT" \
  --run_dir "$RUN_DIR" "$@"
