#!/usr/bin/env bash
# The paper's GSM8K experiment: Llama-3.1-70B-Instruct teacher -> Llama-3.2-1B / 3B-Instruct and
# Llama-3.1-8B-Instruct students, 12 teacher samples (3 temperatures x 4) and 30 student samples per question,
# SFT warm-up, distilled RM (+ the teacher-only RM ablation), PPO with the rm, vote and gold rewards, 3 seeds.
# Hardware: one node of 8 x 80 GB GPUs for every student (1B, 3B and 8B). The 70B teacher samples with vLLM
#   tensor parallel 8; student sampling and evaluations run 8 vLLM engines of 1 GPU; SFT and RM train with
#   deepspeed on all 8; PPO is OpenRLHF's hybrid engine: actor, ref, critic, reward and 8 vLLM engines colocated
#   on the 8 GPUs, each side asleep while the other works. Per GPU (bf16), 8B student, ZeRO-3 over 8 GPUs:
#   training holds the actor (2 bytes weights + 2 gradients + 12 Adam and master) x 8B / 8 = 16 GB, the critic
#   16 GB, ref and RM 2 GB each, about 36 GB before activations (gradient checkpointing on); generation holds
#   vLLM's 0.5 x 80 = 40 GB (16 GB of weights, the rest KV cache) while DeepSpeed's states sleep in host memory
#   (about 260 GB of host RAM for actor + critic). 1B / 3B: ZeRO-2, about 35 GB (3B). `--dry_run` checks every
#   stage's command (OpenRLHF's parsers, its layout asserts, the GPU plan against `cluster`) and prints the GPUs
#   each stage uses.
# Time: teacher sampling of the 7,473 training questions ~3-4 h; per student and seed SFT ~20 min, student
#   sampling ~30 min, RM ~20 min, each PPO run ~3-5 h: about 2-3 days per student for 3 seeds and 3 schemes.
# Needs: pip install './openrlhf-distill[cluster]' from a clone (README "Install"); the models as local folders
#   under $MODELS; GSM8K through `datasets` (or data.train / data.test pointing at local copies).
# Usage: MODELS=/models bash recipes/gsm8k_llama3.sh [--dry_run] [--dotted.overrides ...]
#   STUDENT=Llama-3.1-8B-Instruct (default Llama-3.2-1B-Instruct) picks the student; RAY_ADDRESS joins a cluster;
#   RUN_DIR (default $PWD/runs/gsm8k_llama3_$STUDENT, absolute) must be on storage every Ray node sees.
set -euo pipefail
MODELS=${MODELS:-/models}
STUDENT=${STUDENT:-Llama-3.2-1B-Instruct}
RUN_DIR=${RUN_DIR:-$PWD/runs/gsm8k_llama3_${STUDENT}}
LAYOUT=()
if [[ $STUDENT == *8B* ]]; then  # the same 8 GPUs: model states sharded (ZeRO-3), activations recomputed
  LAYOUT=(--ppo.ds.zero_stage 3 --ppo.actor.gradient_checkpointing_enable)  # the critic reads the actor's flag
fi
exec openrlhf-distill run --config "$(dirname "$0")/configs/gsm8k_llama3.yaml" \
  --teacher.model "$MODELS/Llama-3.1-70B-Instruct" --student.model "$MODELS/$STUDENT" \
  --run_dir "$RUN_DIR" "${LAYOUT[@]}" "$@"
