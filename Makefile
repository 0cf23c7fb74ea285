# `make test` and `make demo` set everything up on a fresh machine: the virtual environment is (re)built
# whenever it is missing or any file that decides its contents has changed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.sha256
VENV_INPUTS := $(wildcard requirements/*.txt) scripts/bootstrap_venv.sh pyproject.toml
# Offline and quiet: no hub downloads, no wandb, a small vLLM KV cache for CPU runs.
export HF_HUB_OFFLINE := 1
export WANDB_MODE := disabled
export VLLM_CPU_KVCACHE_SPACE ?= 1
export TOKENIZERS_PARALLELISM := false
export DS_BUILD_OPS := 0

.PHONY: venv lint test test-fast demo study clean

venv:
	@want=$$(cat $(VENV_INPUTS) | sha256sum | cut -d' ' -f1); \
	if [ "$$want" != "$$(cat $(STAMP) 2>/dev/null)" ]; then \
	  echo "virtual environment $(VENV) missing or stale: building it (about 2-4 minutes)"; \
	  bash scripts/bootstrap_venv.sh $(VENV) && echo "$$want" > $(STAMP); \
	fi

lint: venv
	$(VENV)/bin/ruff check openrlhf_distill tests benchmarks
	$(VENV)/bin/ruff format --check openrlhf_distill tests benchmarks
	$(PY) -m compileall -q openrlhf_distill tests benchmarks
	@for f in scripts/*.sh recipes/*.sh .ci/run; do bash -n "$$f" || exit 1; done; echo "bash -n: ok"

test: lint
	$(PY) -m pytest

# The in-process tests only: no OpenRLHF trainer or vLLM engine (slow), no test that starts a process (subprocess).
test-fast: lint
	$(PY) -m pytest -m "not slow and not subprocess"

demo: venv
	PATH=$(abspath $(VENV))/bin:$$PATH bash recipes/quickstart_cpu.sh

# The demo plus the gold (upper bound) and vote rewards, the random-reward and style-only controls and the
# teacher-only RM ablation, in the same run folder and report (the demo's finished stages are reused).
study: venv
	PATH=$(abspath $(VENV))/bin:$$PATH bash recipes/quickstart_cpu.sh --ppo.schemes rm,gold,vote,random,style \
	  --rm.ablations teacher_only

clean:
	rm -rf $(VENV) runs/quickstart runs/quickstart_cpu
