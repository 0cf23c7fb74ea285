"""The toy world: an offline task and tiny models, so the whole pipeline runs on a CPU with no download."""
