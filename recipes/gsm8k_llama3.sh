#!/usr/bin/env bash
# The paper's GSM8K experiment: Llama-3.1-70B-Instruct teacher -> Llama-3.2-1B / 3B-Instruct and
# Llama-3.1-8B-Instruct students, 12 teacher samples (3 temperatures x 4) and 30 student samples per question,
# SFT warm-up, distilled RM (+ the teacher-only RM ablation), PPO with the rm, vote and gold rewards, 3 seeds.
# Hardware: one node of 8 x 80 GB GPUs (the 70B teacher samples with vLLM tensor parallel 8; PPO places actor 4,
#   ref 2, critic 2, reward 2 and 2 vLLM engines: with fewer GPUs lower the ppo.* num_gpus_per_node overrides).
# Time: teacher sampling of the 7,473 training questions ~3-4 h; per student and seed SFT ~20 min, student
#   sampling ~30 min, RM ~20 min, each PPO run ~3-5 h: about 2-3 days per student for 3 seeds and 3 schemes.
# Needs: pip install 'openrlhf-distill[cluster]'; the models as local folders under $MODELS; GSM8K through
#   `datasets` (or data.train / data.test pointing at local copies).
# Usage: MODELS=/models bash recipes/gsm8k_llama3.sh [--dry-run] [--dotted.overrides ...]
#   STUDENT=Llama-3.2-3B-Instruct (default Llama-3.2-1B-Instruct) picks the student; RAY_ADDRESS joins a cluster.
set -euo pipefail
MODELS=${MODELS:-/models}
STUDENT=${STUDENT:-Llama-3.2-1B-Instruct}
exec openrlhf-distill run --config "$(dirname "$0")/configs/gsm8k_llama3.yaml" \
  --teacher.model "$MODELS/Llama-3.1-70B-Instruct" --student.model "$MODELS/$STUDENT" \
  --run_dir "runs/gsm8k_llama3_${STUDENT}" "$@"
