#!/usr/bin/env bash
# Open-ended instructions (AlpacaEval-style), the revised paper's setting: no answer to vote on, so the teacher
# acts as a judge (1-10 scores against a rubric, label = score / 10) on its own and the student's responses.
# SFT on the teacher's top-scored responses, an RM on the judge labels, PPO with --reward.scheme judge.
# Hardware: one node of 8 x 80 GB GPUs (Llama-3.1-70B-Instruct teacher and judge, vLLM tensor parallel 8).
# Time: for 5,000 instructions, sampling + judging ~4-6 h, SFT ~30 min, student sampling ~1 h, judging the
#   student ~3 h, RM ~30 min, PPO ~4-6 h.
# Needs: pip install 'openrlhf-distill[cluster]'; PROMPTS, a prompt-record file with `task: open`; models under
#   $MODELS.
# Usage: MODELS=/models PROMPTS=instructions.jsonl bash recipes/open_ended_judge.sh [--dry-run]
#   --dry-run prints every command, and checks the PPO command with OpenRLHF's own parser.
set -euo pipefail
MODELS=${MODELS:-/models}
PROMPTS=${PROMPTS:-data/instructions.jsonl}
OUT=${OUT:-runs/open_ended_judge}
TEACHER="$MODELS/Llama-3.1-70B-Instruct"
STUDENT="$MODELS/${STUDENT:-Llama-3.2-1B-Instruct}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
step() {  # run a stage unless its output exists; under --dry-run only print it
  local out=$1; shift
  if [ "$DRY" = 1 ]; then echo "$*"; elif [ ! -e "$out" ]; then "$@"; fi
}
TP="--vllm.tensor_parallel_size 8"
step "$OUT/teacher_samples/summary.json" openrlhf-distill generate --model "$TEACHER" --role teacher \
  --prompts "$PROMPTS" --out "$OUT/teacher_samples" --task open --temperatures 0.7 --n-per-temperature 4 \
  --max-new-tokens 1024 --backend vllm $TP
step "$OUT/teacher_labels" openrlhf-distill judge --model "$TEACHER" --prompts "$PROMPTS" \
  --teacher-samples "$OUT/teacher_samples" --out "$OUT/teacher_labels" --backend vllm $TP
step "$OUT/sft_data" openrlhf-distill build --prompts "$PROMPTS" --labels "$OUT/teacher_labels" \
  --out "$OUT/sft_data" --task open --sft.min_label 0.9
step "$OUT/student_sft/config.json" openrlhf-distill sft --engine gpu --model.model_name_or_path "$STUDENT" \
  --data.dataset "$OUT/sft_data/sft.jsonl" --data.input_key input --data.output_key output \
  --data.apply_chat_template --data.max_len 2048 --train.batch_size 128 --train.micro_batch_size 4 \
  --train.max_epochs 2 --adam.lr 5e-6 --ckpt.output_dir "$OUT/student_sft"
step "$OUT/student_samples/summary.json" openrlhf-distill generate --model "$OUT/student_sft" --role student \
  --prompts "$PROMPTS" --out "$OUT/student_samples" --task open --temperatures 1.0 --n-per-temperature 8 \
  --max-new-tokens 1024 --backend vllm
step "$OUT/labels" openrlhf-distill judge --model "$TEACHER" --prompts "$PROMPTS" \
  --teacher-samples "$OUT/teacher_samples" --student-samples "$OUT/student_samples" --out "$OUT/labels" \
  --backend vllm $TP
step "$OUT/data" openrlhf-distill build --prompts "$PROMPTS" --labels "$OUT/labels" --out "$OUT/data" \
  --task open --rm.pair_margin 0.3
step "$OUT/rm/config.json" openrlhf-distill train-rm --engine gpu --model.model_name_or_path "$OUT/student_sft" \
  --data.dataset "$OUT/data/rm_pairs.jsonl" --data.prompt_key prompt --data.chosen_key chosen \
  --data.rejected_key rejected --data.apply_chat_template --data.max_len 2048 \
  --distill.rm.points "$OUT/data/rm_points.jsonl" --train.batch_size 128 --train.micro_batch_size 4 \
  --adam.lr 5e-6 --ckpt.output_dir "$OUT/rm"
PPO=(openrlhf-distill ppo --reward.scheme judge --engine gpu --actor.model_name_or_path "$OUT/student_sft"
  --reward.model_name_or_path "$OUT/rm" --data.prompt_dataset "$OUT/data/rl_prompts.jsonl" --data.input_key input
  --data.apply_chat_template --actor.num_gpus_per_node 4 --ref.num_gpus_per_node 2 --reward.num_gpus_per_node 2
  --critic.num_gpus_per_node 2 --vllm.num_engines 2 --algo.advantage.estimator gae --rollout.batch_size 128
  --rollout.n_samples_per_prompt 4 --train.batch_size 128 --actor.adam.lr 5e-7 --data.max_len 2048
  --rollout.max_new_tokens 1024 --ckpt.output_dir "$OUT/student_rl_judge")
if [ "$DRY" = 1 ]; then "${PPO[@]}" --dry-run; else step "$OUT/student_rl_judge/config.json" "${PPO[@]}"; fi
