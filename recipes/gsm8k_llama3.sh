#!/usr/bin/env bash
# The paper's GSM8K experiment: Llama-3.1-70B-Instruct teacher -> Llama-3.2-1B / 3B-Instruct and
# Llama-3.1-8B-Instruct students, 12 teacher samples (3 temperatures x 4) and 30 student samples per question,
# SFT warm-up, distilled RM (+ the teacher-only RM ablation), PPO with the rm, vote and gold rewards, 3 seeds.
# Hardware: one node of 8 x 80 GB GPUs for the 1B and 3B students (the 70B teacher samples with vLLM tensor
#   parallel 8; PPO: actor + ref on 4 GPUs, critic + reward on 2, 2 vLLM engines; the config has the memory
#   estimate). The 8B student needs two such nodes (a Ray cluster; RAY_ADDRESS): actor + ref on 8 GPUs, critic +
#   reward on 4, 4 vLLM engines, gradient checkpointing. Per GPU (bf16, ZeRO-2): actor 16 GB weights + 2 GB
#   gradients + 12 GB Adam states and master weights + the 16 GB ref, about 46 GB before activations; critic
#   16 + 4 + 24 + the 16 GB RM, about 60 GB. On one node the critic alone would need 16 + 8 + 48 = 72 GB on each
#   of 2 GPUs, with the RM beside it more than 80. `--dry-run` prints each PPO run's GPU plan, and a plan that
#   does not fit `cluster` is refused before Ray starts.
# Time: teacher sampling of the 7,473 training questions ~3-4 h; per student and seed SFT ~20 min, student
#   sampling ~30 min, RM ~20 min, each PPO run ~3-5 h: about 2-3 days per student for 3 seeds and 3 schemes.
# Needs: pip install './openrlhf-distill[cluster]' from a clone (README "Install"); the models as local folders
#   under $MODELS; GSM8K through `datasets` (or data.train / data.test pointing at local copies).
# Usage: MODELS=/models bash recipes/gsm8k_llama3.sh [--dry-run] [--dotted.overrides ...]
#   STUDENT=Llama-3.2-3B-Instruct (default Llama-3.2-1B-Instruct) picks the student; RAY_ADDRESS joins a cluster.
set -euo pipefail
MODELS=${MODELS:-/models}
STUDENT=${STUDENT:-Llama-3.2-1B-Instruct}
LAYOUT=()
if [[ $STUDENT == *8B* ]]; then  # two nodes of 8 GPUs (see the header)
  LAYOUT=(--cluster.nodes 2 --ppo.actor.num_gpus_per_node 8 --ppo.ref.num_gpus_per_node 8
          --ppo.critic.num_gpus_per_node 4 --ppo.reward.num_gpus_per_node 4 --ppo.vllm.num_engines 4
          --ppo.actor.gradient_checkpointing_enable)  # OpenRLHF's critic reads the actor's flag too
fi
exec openrlhf-distill run --config "$(dirname "$0")/configs/gsm8k_llama3.yaml" \
  --teacher.model "$MODELS/Llama-3.1-70B-Instruct" --student.model "$MODELS/$STUDENT" \
  --run_dir "runs/gsm8k_llama3_${STUDENT}" "${LAYOUT[@]}" "$@"
