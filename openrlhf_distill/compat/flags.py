"""OpenRLHF's command-line flag names: the only place in this package that spells them.

OpenRLHF's flags are dotted since 0.10.2. ``tests/test_openrlhf_flags.py`` reads every ``add_argument`` of
the installed OpenRLHF CLIs and fails if a name here no longer exists there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpenRLHFCli:
    module: str  # run as `python -m MODULE` (CPU) or `deepspeed --module MODULE` (GPU)
    flags: dict  # our name -> OpenRLHF flag
    needs_eval_set: bool = False  # train_rm: its eval split gives the mean/std stored for normalisation

    def __getitem__(self, name: str) -> str:
        return self.flags[name]


_TRAINER_FLAGS = {
    "model": "--model.model_name_or_path",
    "dataset": "--data.dataset",
    "dataset_split": "--data.dataset_split",
    "eval_dataset": "--eval.dataset",
    "eval_split": "--eval.split",
    "max_len": "--data.max_len",
    "max_samples": "--data.max_samples",
    "apply_chat_template": "--data.apply_chat_template",
    "attn_implementation": "--ds.attn_implementation",
    "zero_stage": "--ds.zero_stage",
    "param_dtype": "--ds.param_dtype",
    "packing_samples": "--ds.packing_samples",
    "output_dir": "--ckpt.output_dir",
    "ckpt_path": "--ckpt.path",
    "load_checkpoint": "--ckpt.load_enable",  # continue from the latest checkpoint in ckpt_path, if any
    "batch_size": "--train.batch_size",
    "micro_batch_size": "--train.micro_batch_size",
    "max_epochs": "--train.max_epochs",
    "seed": "--train.seed",
    "lr": "--adam.lr",
    "local_rank": "--local_rank",
}

TRAIN_SFT = OpenRLHFCli(
    "openrlhf.cli.train_sft",
    {**_TRAINER_FLAGS, "input_key": "--data.input_key", "output_key": "--data.output_key"},
)

TRAIN_RM = OpenRLHFCli(
    "openrlhf.cli.train_rm",
    {
        **_TRAINER_FLAGS,
        "chosen_key": "--data.chosen_key",
        "rejected_key": "--data.rejected_key",
        "prompt_key": "--data.prompt_key",
        "value_head_prefix": "--ds.value_head_prefix",
    },
    needs_eval_set=True,
)

# OpenRLHF's train_rm with the distilled trainer (pairs + points); takes every train_rm flag plus --distill.rm.*.
TRAIN_DISTILL_RM = OpenRLHFCli(
    "openrlhf_distill.reward_model.train",
    {**TRAIN_RM.flags, "points": "--distill.rm.points"},  # ours (reward_model/trainer.py), passed the same way
    needs_eval_set=True,
)


# OpenRLHF's PPO loop on Ray (rollouts in vLLM). Run by our Ray driver (compat/ray_driver.py), which passes
# every flag through to it.
TRAIN_PPO_RAY = OpenRLHFCli(
    "openrlhf.cli.train_ppo_ray",
    {
        "actor_model": "--actor.model_name_or_path",
        "reward_model": "--reward.model_name_or_path",
        "critic_model": "--critic.model_name_or_path",
        "remote_reward": "--reward.remote_url",
        "normalize_reward": "--reward.normalize_enable",
        "value_head_prefix": "--ds.value_head_prefix",
        "prompt_dataset": "--data.prompt_dataset",
        "input_key": "--data.input_key",
        "label_key": "--data.label_key",
        "apply_chat_template": "--data.apply_chat_template",
        "estimator": "--algo.advantage.estimator",
        "attn_implementation": "--ds.attn_implementation",
        "packing_samples": "--ds.packing_samples",
        "param_dtype": "--ds.param_dtype",
        "zero_stage": "--ds.zero_stage",
        "output_dir": "--ckpt.output_dir",
        "ckpt_path": "--ckpt.path",
        "load_checkpoint": "--ckpt.load_enable",
        "save_steps": "--ckpt.save_steps",
        "save_hf": "--ckpt.save_hf",  # also an HF model folder ``<ckpt.path>/global_step<N>_hf`` at each save
        "max_samples": "--data.max_samples",
        "num_episodes": "--train.num_episodes",
        "rollout_batch_size": "--rollout.batch_size",
        "seed": "--train.seed",
        "colocate_all": "--train.colocate_all",
        "async_enable": "--train.async_enable",
        "vllm_engines": "--vllm.num_engines",
        "vllm_tensor_parallel": "--vllm.tensor_parallel_size",
        "vllm_enforce_eager": "--vllm.enforce_eager",
        "vllm_sync_with_ray": "--vllm.sync_with_ray",
        # Ray resource groups: each asks for num_nodes * num_gpus_per_node GPUs (default 1 * 8).
        **{
            f"{group}_{what}": f"--{group}.{what}"
            for group in ("actor", "ref", "critic", "reward")
            for what in ("num_nodes", "num_gpus_per_node")
        },
    },
)


def parsed_value(namespace, dotted: str):
    """The value of a dotted setting (``actor.model_name_or_path``) in the nested namespace OpenRLHF's parser
    returns (what ``ray_driver.validate`` gives back), with OpenRLHF's defaults filled in; None when absent."""
    for part in dotted.split("."):
        namespace = getattr(namespace, part, None)
    return namespace


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value given to ``flag`` in an argv list (``--f v`` or ``--f=v``), the last one winning; else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def has_flag(argv: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def with_flag_value(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with every value given to ``flag`` (``--f v`` or ``--f=v``) replaced by ``value``."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == flag and i + 1 < len(out):
            out[i + 1] = value
        elif arg.startswith(flag + "="):
            out[i] = f"{flag}={value}"
    return out
