#!/usr/bin/env bash
# The paper's MMLU-Pro experiment: Llama-3.1-8B-Instruct teacher -> Llama-3.2-1B / 3B-Instruct students.
# MMLU-Pro has no train split: its test set is split by category with a fixed seed and the split is written to
# the run folder (mmlu_pro_split.json), so the training questions never meet the evaluation questions.
# Hardware: one node of 8 x 80 GB GPUs (an 8B teacher samples on one GPU per engine).
# Time: teacher sampling ~1-2 h; per student and seed SFT ~20 min, student sampling ~30 min, RM ~20 min,
#   each PPO run ~3-5 h: about 2 days per student for 3 seeds and 3 schemes.
# Needs: pip install './openrlhf-distill[cluster]' from a clone (README "Install"); the models as local folders
#   under $MODELS; MMLU-Pro through `datasets` (or data.train / data.test pointing at local copies).
# Usage: MODELS=/models bash recipes/mmlu_pro_llama3.sh [--dry-run] [--dotted.overrides ...]
set -euo pipefail
MODELS=${MODELS:-/models}
STUDENT=${STUDENT:-Llama-3.2-1B-Instruct}
exec openrlhf-distill run --config "$(dirname "$0")/configs/mmlu_pro_llama3.yaml" \
  --teacher.model "$MODELS/Llama-3.1-8B-Instruct" --student.model "$MODELS/$STUDENT" \
  --run_dir "runs/mmlu_pro_llama3_${STUDENT}" "$@"
