#!/usr/bin/env bash
# Quickstart on a CPU: what `make demo` runs.
# Hardware: any x86-64 CPU, 2 cores, ~3 GB of memory. No GPU, no download.
# Time: about 2 minutes (the first run on a machine adds ~1-2 minutes while DeepSpeed builds its CPU ops).
#
# Until the toy world lands (issue 7) this is the smallest real end-to-end of the stack: OpenRLHF's own SFT and
# RM trainers run through the CPU adapter on a tiny model, then the results are measured on held-out rows and
# the SFT model is sampled with vLLM's CPU build. Each stage is skipped when its output already exists.
# Usage: bash recipes/quickstart_cpu.sh            (OUT=runs/quickstart_cpu by default)
set -euo pipefail
OUT=${OUT:-runs/quickstart_cpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}

# 1. A tiny random base model with a byte-level BPE tokenizer and a chat template.
[ -f "$OUT/base/config.json" ] || openrlhf-distill tiny-model "$OUT/base"

# 2. Toy data: arithmetic SFT rows and reward pairs, each with a held-out part.
[ -f "$OUT/pairs_heldout.jsonl" ] || python -m openrlhf_distill.toy.quickstart data "$OUT"

# 3. SFT warm-up with OpenRLHF's train_sft (all flags below are OpenRLHF's own).
[ -f "$OUT/sft/config.json" ] || openrlhf-distill sft --engine cpu --log "$OUT/sft.log" \
  --model.model_name_or_path "$OUT/base" --data.dataset "$OUT/sft.jsonl" \
  --data.input_key input --data.output_key output --data.apply_chat_template --data.max_len 64 \
  --train.batch_size 8 --train.micro_batch_size 4 --train.max_epochs 4 --adam.lr 2e-3 \
  --ds.zero_stage 2 --ds.param_dtype bf16 --ckpt.output_dir "$OUT/sft"

# 4. A reward model on top of the SFT checkpoint with OpenRLHF's train_rm.
[ -f "$OUT/rm/config.json" ] || openrlhf-distill train-rm --engine cpu --log "$OUT/rm.log" \
  --model.model_name_or_path "$OUT/sft" --data.dataset "$OUT/pairs.jsonl" \
  --data.prompt_key prompt --data.chosen_key chosen --data.rejected_key rejected \
  --data.apply_chat_template --data.max_len 64 \
  --train.batch_size 8 --train.micro_batch_size 4 --train.max_epochs 3 --adam.lr 2e-3 \
  --ds.zero_stage 2 --ds.param_dtype bf16 --ckpt.output_dir "$OUT/rm"

# 5. Measure on held-out rows and sample the SFT model with vLLM (CPU build).
python -m openrlhf_distill.toy.quickstart report "$OUT"
