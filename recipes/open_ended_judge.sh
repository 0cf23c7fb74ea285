#!/usr/bin/env bash
# Open-ended instructions (AlpacaEval-style), the revised paper's setting: no answer to vote on, so the teacher
# acts as a judge (1-10 scores against a rubric, label = score / 10) of its own and the student's responses.
# SFT on the teacher's top-scored responses, an RM on the judge labels, PPO with --reward.scheme judge
# (recipes/configs/open_ended_judge.yaml: labeller judge, no accuracy evaluation).
# Hardware: one node of 8 x 80 GB GPUs: the 70B teacher and judge on vLLM tensor parallel 8, the student on 8
#   engines of 1 GPU, PPO as OpenRLHF's hybrid engine on all 8 (memory: recipes/configs/open_ended_judge.yaml).
# Time: for 5,000 instructions, sampling + judging ~4-6 h, SFT ~30 min, student sampling ~1 h, judging the
#   student ~3 h, RM ~30 min, PPO ~4-6 h.
# Needs: pip install './openrlhf-distill[cluster]' from a clone (README "Install"); PROMPTS, a prompt-record file
#   with `task: open`; models under $MODELS.
# Usage: MODELS=/models PROMPTS=instructions.jsonl bash recipes/open_ended_judge.sh [--dry_run] [--dotted.overrides]
#   --dry_run checks and prints every command and its GPUs; STUDENT=Llama-3.2-3B-Instruct picks another student;
#   RUN_DIR (default $PWD/runs/open_ended_judge_$STUDENT, absolute) must be on storage every Ray node sees.
set -euo pipefail
MODELS=${MODELS:-/models}
PROMPTS=${PROMPTS:-data/instructions.jsonl}
STUDENT=${STUDENT:-Llama-3.2-1B-Instruct}
RUN_DIR=${RUN_DIR:-$PWD/runs/open_ended_judge_${STUDENT}}  # absolute: Ray nodes resolve it alike
exec openrlhf-distill run --config "$(dirname "$0")/configs/open_ended_judge.yaml" \
  --teacher.model "$MODELS/Llama-3.1-70B-Instruct" --student.model "$MODELS/$STUDENT" \
  --data.train "$PROMPTS" --run_dir "$RUN_DIR" "$@"
