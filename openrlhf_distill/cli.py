"""`openrlhf-distill`: one subcommand per pipeline stage, plus set-up helpers.

Stage subcommands take OpenRLHF's own flags unchanged (dotted, e.g. `--model.model_name_or_path`) and pass
them to OpenRLHF's trainer; our own flags are few and listed by `--help`.
"""

from __future__ import annotations

import argparse
import sys

from .argtypes import non_negative_float, positive_int, unit_interval
from .compat.flags import TRAIN_DISTILL_RM, TRAIN_SFT
from .generation.options import add_backend_arguments, backend_from_args


def _add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="report installed components, the OpenRLHF version check and the engine")
    p.add_argument("--json", action="store_true", help="machine-readable output")


# subcommand -> (OpenRLHF CLI it runs, help). Each passes every flag it does not own to OpenRLHF unchanged.
TRAINER_COMMANDS = {
    "sft": (TRAIN_SFT, "SFT warm-up: OpenRLHF's train_sft"),
    "train-rm": (TRAIN_DISTILL_RM, "reward model: OpenRLHF's train_rm with the pairwise + pointwise loss"),
}


def _add_trainer(sub, command: str) -> None:
    cli, text = TRAINER_COMMANDS[command]
    p = sub.add_parser(
        command,
        help=f"{text} (deepspeed on GPUs, the CPU adapter elsewhere)",
        description=f"Every flag not listed here goes to {cli.module} unchanged, e.g. "
        "--model.model_name_or_path M --data.dataset data.jsonl --ckpt.output_dir out/.",
    )
    p.add_argument("--engine", choices=["auto", "gpu", "cpu"], default="auto", help="auto: gpu when CUDA is found")
    p.add_argument("--log", default=None, help="also write the trainer's output to this file")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("--launcher", action="append", default=[], metavar="FLAG[=VALUE]",
                   help="GPU engine: a flag for the deepspeed launcher, before --module (repeatable), e.g. "
                   "--launcher hostfile=/job/hostfile --launcher num_nodes=2 for a multi-node run")  # fmt: skip


def _add_judge(sub) -> None:
    from .judging import add_judge_arguments

    p = sub.add_parser("judge", help="teacher as judge: 1-10 scores for open-ended samples, labels = score / 10")
    add_judge_arguments(p)


def _add_eval_rm(sub) -> None:
    from .reward_model.evaluate import add_arguments

    p = sub.add_parser("eval-rm", help="reward model on held-out data: pseudo and gold pairs, AUC, ECE, best-of-N")
    add_arguments(p)


def _add_ppo(sub) -> None:
    from .rewards.schemes import SCHEMES

    p = sub.add_parser(
        "ppo",
        allow_abbrev=False,
        help="RL: OpenRLHF's train_ppo_ray with the reward scheme of --reward.scheme (Ray + vLLM; CPU adapter)",
        description="Every flag not listed here goes to openrlhf.cli.train_ppo_ray unchanged, e.g. "
        "--actor.model_name_or_path SFT_DIR --reward.model_name_or_path RM_DIR --data.prompt_dataset "
        "rl_prompts.jsonl --ckpt.output_dir out/.",
    )
    p.add_argument("--reward.scheme", choices=SCHEMES, default="rm",
                   help="rm: the distilled RM (the paper); vote / gold: 1 if the answer equals the pseudo-label / "
                   "gold answer; hybrid: alpha * RM + beta * vote; judge: an RM trained on judge labels; "
                   "random / style: controls, 1 by a coin flip / for the style --distill.reward.style")  # fmt: skip
    p.add_argument("--task", default=None, help="task of rows whose label does not name one (vote, gold, hybrid)")
    p.add_argument("--distill.reward.alpha", type=float, default=1.0, help="hybrid: weight of the normalised RM")
    p.add_argument("--distill.reward.beta", type=float, default=1.0, help="hybrid: weight of the vote reward")
    p.add_argument("--distill.reward.random_p", type=float, default=0.5, help="random: chance of reward 1")
    p.add_argument("--distill.reward.style", default="worked", help="style: the rewarded style (arithmetic: "
                   "worked or direct)")  # fmt: skip
    p.add_argument(
        "--distill.rm_server.url",
        default=None,
        help="hybrid: a running `openrlhf-distill serve-rm` (default: serve the RM for the run)",
    )
    p.add_argument(
        "--distill.rm_server.host",
        default=None,
        help="hybrid: address the run's RM server listens on (default: 127.0.0.1, or every interface when the "
        "run joins a Ray cluster, the reward function then calling this node's routable address)",
    )
    p.add_argument("--distill.rm_server.port", type=int, default=0, help="hybrid: its port (0: a free one)")
    p.add_argument("--distill.rm_server.max_batch_size", type=int, default=64)
    p.add_argument("--distill.rm_server.max_wait_ms", type=float, default=5.0)
    p.add_argument(
        "--distill.sync_check",
        action="store_true",
        help="CPU engine: after training, compare the rollout engine's log-probs with the saved actor",
    )
    p.add_argument("--distill.cluster.nodes", type=positive_int, default=None,
                   help="the GPU cluster the run is for: with --distill.cluster.gpus_per_node, a GPU plan "
                   "that does not fit is refused before Ray starts (OpenRLHF would wait for ever)")  # fmt: skip
    p.add_argument("--distill.cluster.gpus_per_node", type=positive_int, default=None)
    p.add_argument("--ray.address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS, else local)")
    p.add_argument("--ray.submit", action="store_true",
                   help="submit as a Ray job to --ray.address (the dashboard, http://HEAD:8265)")  # fmt: skip
    p.add_argument("--engine", choices=["auto", "gpu", "cpu"], default="auto", help="auto: gpu when CUDA is found")
    p.add_argument("--log", default=None, help="also write the run's output to this file")
    p.add_argument("--dry-run", action="store_true",
                   help="print the command and check it with OpenRLHF's own parser; start nothing")  # fmt: skip


def _add_prepare_data(sub) -> None:
    from .task_data import add_prepare_arguments

    p = sub.add_parser("prepare-data", help="GSM8K / MMLU-Pro (datasets, or a local copy) as prompt records")
    add_prepare_arguments(p)


def _add_eval(sub) -> None:
    from .evaluation import add_eval_arguments

    p = sub.add_parser("eval", help="greedy accuracy, maj@k and pass@k with 95%% intervals (one JSON per model)")
    add_eval_arguments(p)


def _add_report(sub) -> None:
    from .results import add_arguments

    add_arguments(sub.add_parser("report", help="results.json, report.md and plots/ of a run directory"))


def _add_run(sub) -> None:
    from .pipeline import add_arguments

    p = sub.add_parser(
        "run",
        allow_abbrev=False,
        help="the whole method: every stage in order, resumable, ending in results.json / report.md",
        description="Settings come from --config and then from dotted overrides (--teacher.temperatures 0.3,1.0; "
        "--ppo.actor.adam.lr 1e-6 sets an OpenRLHF flag of the ppo stage).",
    )
    add_arguments(p)


def _add_serve_rm(sub) -> None:
    from .rewards.server import add_arguments

    p = sub.add_parser("serve-rm", help="serve a reward model over HTTP, batching concurrent requests (hybrid)")
    add_arguments(p)


def _add_toy_world(sub) -> None:
    from .toy.world import add_arguments

    p = sub.add_parser("toy-world", help="the CPU toy world: arithmetic data, a teacher and a student pretrained here")
    add_arguments(p)


def _add_tiny_model(sub) -> None:
    p = sub.add_parser("tiny-model", help="build a tiny random causal LM + tokenizer offline (tests, toy runs)")
    p.add_argument("out_dir")
    p.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    p.add_argument("--seed", type=int, default=0)


def _add_label(sub) -> None:
    p = sub.add_parser("label", help="majority vote over teacher answers, 0/1 labels for teacher and student samples")
    p.add_argument("--prompts", required=True, help="prompt records (JSON Lines)")
    p.add_argument("--teacher-samples", required=True, help="teacher sample records: a .jsonl file or a folder")
    p.add_argument("--student-samples", default=None, help="student sample records: a .jsonl file or a folder")
    p.add_argument("--out", required=True, help="folder for votes.jsonl, teacher/student.jsonl, metrics.json")
    p.add_argument("--task", default=None, help="task of prompts that have no `task` field")
    add_vote_arguments(p)


def add_vote_arguments(p) -> None:
    """The vote's flags (`label`, and `generate --adaptive.rule exact`, which must stop on the same rule)."""
    from .voting import RATIO_OF, VoteRule

    vote = VoteRule()  # the defaults, in one place
    p.add_argument(
        "--vote.min_ratio",
        type=unit_interval,
        default=vote.min_ratio,
        help="winner's share of valid answers needed (of all answers with --vote.ratio_of all)",
    )
    p.add_argument(
        "--vote.min_valid", type=positive_int, default=vote.min_valid, help="readable answers a question needs to vote"
    )
    p.add_argument(
        "--vote.min_valid_share",
        type=unit_interval,
        default=vote.min_valid_share,
        help="... and as a share of its voting samples (0.5: one readable answer in ten is no label)",
    )
    p.add_argument(
        "--vote.ratio_of",
        choices=RATIO_OF,
        default=vote.ratio_of,
        help="divide the winner's count by the valid answers (default) or by every sample",
    )
    p.add_argument(
        "--vote.max_temperature",
        type=non_negative_float,
        default=None,
        help="only teacher samples at or below this temperature vote (default: all)",
    )


def vote_rule_from_args(args):
    import dataclasses

    from .voting import VoteRule

    return VoteRule(**{f.name: getattr(args, f"vote.{f.name}") for f in dataclasses.fields(VoteRule)})


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="SFT, RM-pair, RM-point and RL-prompt sets in OpenRLHF's formats")
    p.add_argument("--prompts", required=True, help="the prompt records the labels were made from")
    p.add_argument("--labels", required=True, help="the folder `openrlhf-distill label` wrote")
    p.add_argument("--out", required=True)
    p.add_argument("--task", default=None, help="task of prompts that have no `task` field")
    p.add_argument("--sft.max_per_question", type=positive_int, default=None, help="cap on SFT rows per question")
    p.add_argument("--sft.min_label", type=unit_interval, default=1.0,
                   help="least label of SFT responses (1: agree with the vote; judge: score/10)")  # fmt: skip
    p.add_argument("--rm.pairs_per_question", type=positive_int, default=16, help="cap on RM pairs per question")
    p.add_argument("--rm.pair_margin", type=unit_interval, default=0.3,
                   help="least label gap in a pair (judge: 0.3 = 3 points; vote pairs always pass)")  # fmt: skip
    p.add_argument("--rm.sources", default="teacher,student", help="samples RM data is built from")
    p.add_argument("--rm.no_balance_sources", action="store_true",
                   help="draw pairs from all source mixes pooled, not in turns")  # fmt: skip
    p.add_argument("--data.format", choices=["chat", "plain"], default="chat",
                   help="chat: messages for --data.apply_chat_template; plain: strings")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="sample the teacher or the student: several temperatures, resumable shards")
    p.add_argument("--model", required=True, help="model folder (hf, vllm) or served model name (openai)")
    p.add_argument("--role", choices=["teacher", "student"], required=True, help="the `source` of the samples")
    p.add_argument("--prompts", required=True, help="prompt records (JSON Lines)")
    p.add_argument("--out", required=True, help="folder for shard-*.jsonl, manifest.json, summary.json")
    p.add_argument("--task", default=None, help="task of prompts that have no `task` field")
    p.add_argument("--temperatures", default="0.3,0.7,1.0", help="comma-separated, in [0, 2]; 0 is greedy")
    p.add_argument(
        "--n-per-temperature", "--n_per_temperature", dest="n_per_temperature", type=positive_int, default=4
    )
    p.add_argument("--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=positive_int, default=512)
    p.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=1.0)
    p.add_argument("--stop", action="append", default=[], help="a string that ends a sample (repeatable)")
    p.add_argument("--prompt-style", "--prompt_style", dest="prompt_style", default="zero_shot_cot")
    p.add_argument("--shard-size", "--shard_size", dest="shard_size", type=int, default=64,
                   help="prompts per shard; a killed run loses at most one shard")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="discard samples made with other arguments")
    p.add_argument("--no-progress", action="store_true")
    from .generation.rounds import RULES, AdaptiveConfig

    adaptive = AdaptiveConfig()
    p.add_argument(
        "--adaptive.rule",
        choices=RULES,
        default=None,
        help="teacher: sample in rounds and stop a question once its vote is settled (exact: the labels of the "
        "full budget) or its leader likely to stay ahead (beta; see --adaptive.confidence). Default: off",
    )
    p.add_argument(
        "--adaptive.confidence",
        type=float,
        default=adaptive.confidence,
        help="beta: stop when P(leader stays ahead) reaches it",
    )
    p.add_argument(
        "--adaptive.round_size",
        type=positive_int,
        default=adaptive.round_size,
        help="samples per question a round, cycling through the temperatures (1: stop at the first that settles)",
    )
    add_vote_arguments(p)  # the exact rule stops on the vote the label stage will take
    add_backend_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openrlhf-distill",
        description="Distill not only data but also rewards (arXiv 2502.19557) on OpenRLHF.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In pipeline order (README "The whole method in one command"): sample, label (vote or judge), build sets, SFT,
    # RM, evaluate RM, RL.
    _add_doctor(sub)
    _add_prepare_data(sub)
    _add_generate(sub)
    _add_label(sub)
    _add_judge(sub)
    _add_build(sub)
    _add_trainer(sub, "sft")
    _add_trainer(sub, "train-rm")
    _add_eval_rm(sub)
    _add_ppo(sub)
    _add_serve_rm(sub)
    _add_eval(sub)
    _add_report(sub)
    _add_run(sub)
    _add_toy_world(sub)
    _add_tiny_model(sub)
    return parser


def _run_trainer(args, openrlhf_argv: list[str]) -> int:
    from .compat import launch
    from .compat.flags import flag_value
    from .model_folders import check_model_folder

    cli = TRAINER_COMMANDS[args.command][0]
    model = flag_value(openrlhf_argv, cli["model"])
    if model:  # at once, not after the trainer's imports
        check_model_folder(model, cli["model"])
    launcher = launch.launcher_argv(args.launcher)
    if args.dry_run:
        print(" ".join(launch.plan(cli, openrlhf_argv, engine=args.engine, launcher=launcher).command))
        return 0
    launch.run(cli, openrlhf_argv, engine=args.engine, log_path=args.log, launcher=launcher)
    return 0


def _run_ppo(args, openrlhf_argv: list[str]) -> int:
    from . import ppo
    from .compat import gpu_plan

    options = ppo.PPOOptions(
        scheme=getattr(args, "reward.scheme"),
        task=args.task,
        alpha=getattr(args, "distill.reward.alpha"),
        beta=getattr(args, "distill.reward.beta"),
        random_p=getattr(args, "distill.reward.random_p"),
        style=getattr(args, "distill.reward.style"),
        engine=args.engine,
        ray_address=getattr(args, "ray.address"),
        submit=getattr(args, "ray.submit"),
        rm_server_url=getattr(args, "distill.rm_server.url"),
        rm_server_host=getattr(args, "distill.rm_server.host"),
        rm_server_port=getattr(args, "distill.rm_server.port"),
        rm_server_max_batch_size=getattr(args, "distill.rm_server.max_batch_size"),
        rm_server_max_wait_ms=getattr(args, "distill.rm_server.max_wait_ms"),
        sync_check=getattr(args, "distill.sync_check"),
    )
    ppo_plan = ppo.plan(openrlhf_argv, options)
    # OpenRLHF's own parser and checks, then ours of what it reads and of the GPUs it asks for, before any
    # resources are asked for
    namespace = ppo.validate(ppo_plan)
    ppo.check_inputs(ppo_plan, namespace)
    placements = gpu_plan.plan(namespace)
    nodes, per_node = getattr(args, "distill.cluster.nodes"), getattr(args, "distill.cluster.gpus_per_node")
    if (nodes is None) != (per_node is None):
        raise ValueError("--distill.cluster.nodes and --distill.cluster.gpus_per_node go together")
    if nodes and ppo_plan.launch.engine == "gpu":  # the CPU engine declares as many logical GPUs as it needs
        gpu_plan.check_fits(placements, nodes, per_node)
    if args.dry_run:
        print(ppo.describe(ppo_plan))
        print(gpu_plan.describe(placements), file=sys.stderr)
        print(f"# accepted by {ppo.TRAIN_PPO_RAY.module}'s argument parser and checks", file=sys.stderr)
        return 0
    summary = ppo.run(ppo_plan, log_path=args.log)
    print(f"{summary['steps']} PPO steps ({summary['scheme']}, {summary['engine']}), reward mean "
          f"{summary['reward_mean_first']} -> {summary['reward_mean_last']} in {summary['wall_seconds']} s; "
          f"files in {ppo_plan.run_dir}")  # fmt: skip
    return 0


def _run_generate(args) -> int:
    from .generation.sampling import SamplingConfig, generate_samples

    try:
        temperatures = tuple(float(t) for t in args.temperatures.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--temperatures: expected comma-separated numbers, got {args.temperatures!r}") from None
    config = SamplingConfig(
        role=args.role,
        temperatures=temperatures,
        n_per_temperature=args.n_per_temperature,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        shard_size=args.shard_size,
        prompt_style=args.prompt_style,
        stop=tuple(args.stop),
        top_p=args.top_p,
        adaptive=_adaptive_from_args(args),
    )
    config.check()
    name, start = backend_from_args(args)
    summary = generate_samples(args.prompts, args.out, model=args.model, backend=name, config=config,
                               make_backend=start, default_task=args.task, overwrite=args.overwrite,
                               progress=not args.no_progress)  # fmt: skip
    rules = ", ".join(f"{k} {v}" for k, v in sorted(summary["extraction_rules"].items()))
    print(f"{summary['samples']} samples, {summary['tokens']} tokens, {summary['seconds_this_run']:.1f} s this run "
          f"-> {args.out}\nextraction rules: {rules}")  # fmt: skip
    if "adaptive" in summary:
        a = summary["adaptive"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(a["stop_reasons"].items()))
        print(f"adaptive ({config.adaptive.rule}): {a['samples_drawn']} of {a['samples_budget']} samples "
              f"({100 * a['share_of_budget']:.1f}% of the budget); stops: {reasons}")  # fmt: skip
    return 0


def _adaptive_from_args(args):
    from .generation.rounds import AdaptiveConfig

    if getattr(args, "adaptive.rule") is None:
        return None
    return AdaptiveConfig(
        rule=getattr(args, "adaptive.rule"),
        confidence=getattr(args, "adaptive.confidence"),
        round_size=getattr(args, "adaptive.round_size"),
        vote=vote_rule_from_args(args),
        max_temperature=getattr(args, "vote.max_temperature"),
    )


def _run_label(args) -> int:
    from .labelling import VoteConfig, label_samples
    from .reports import print_label_metrics

    config = VoteConfig(rule=vote_rule_from_args(args), max_temperature=getattr(args, "vote.max_temperature"))
    metrics = label_samples(args.prompts, args.teacher_samples, args.out, student=args.student_samples,
                            config=config, default_task=args.task)  # fmt: skip
    print_label_metrics(metrics)
    return 0


def _run_build(args) -> int:
    from .builders import BuildConfig, build_datasets

    config = BuildConfig(
        sft_max_per_question=getattr(args, "sft.max_per_question"),
        sft_min_label=getattr(args, "sft.min_label"),
        pairs_max_per_question=getattr(args, "rm.pairs_per_question"),
        pair_margin=getattr(args, "rm.pair_margin"),
        balance_sources=not getattr(args, "rm.no_balance_sources"),
        rm_sources=tuple(s for s in getattr(args, "rm.sources").split(",") if s),
        chat_format=getattr(args, "data.format") == "chat",
        seed=args.seed,
    )
    summary = build_datasets(args.prompts, args.labels, args.out, config, default_task=args.task)
    print(" ".join(f"{name}: {count} rows" for name, count in summary["rows"].items()) + f" -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .compat.quiet import quiet_harmless_warnings

    quiet_harmless_warnings()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if rest and args.command not in (*TRAINER_COMMANDS, "ppo", "run"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    from .compat.launch import OpenRLHFRunError
    from .compat.version import OpenRLHFNotSupported
    from .generation.backend import BackendError
    from .pipeline import StageFailed
    from .records import RecordError
    from .rewards.server import RewardServerError

    try:
        if args.command == "doctor":
            from .doctor import main as doctor

            return doctor(as_json=args.json)
        if args.command in TRAINER_COMMANDS:
            return _run_trainer(args, rest)
        if args.command == "ppo":
            return _run_ppo(args, rest)
        if args.command == "prepare-data":
            from .task_data import run_prepare

            return run_prepare(args)
        if args.command == "eval":
            from .evaluation import run_eval

            return run_eval(args)
        if args.command == "report":
            from .results import run as report

            return report(args)
        if args.command == "run":
            from .pipeline import run as run_pipeline

            return run_pipeline(args, rest)
        if args.command == "serve-rm":
            from .rewards.server import run as serve_rm

            return serve_rm(args)
        if args.command == "generate":
            return _run_generate(args)
        if args.command == "label":
            return _run_label(args)
        if args.command == "build":
            return _run_build(args)
        if args.command == "eval-rm":
            from .reward_model.evaluate import run

            return run(args)
        if args.command == "judge":
            from .judging import run_judge

            return run_judge(args)
        if args.command == "toy-world":
            from .toy.world import run as toy_world

            return toy_world(args)
        if args.command == "tiny-model":
            from .records import atomic_output_dir
            from .toy.tiny_models import TinyModelSpec, build_tiny_causal_lm

            # a folder that holds anything but an earlier tiny-model is refused, not overwritten
            with atomic_output_dir(args.out_dir, "tiny-model") as partial:
                build_tiny_causal_lm(partial, TinyModelSpec(arch=args.arch, seed=args.seed))
            print(args.out_dir)
            return 0
    except (OpenRLHFNotSupported, OpenRLHFRunError, RecordError, BackendError, RewardServerError, StageFailed,
            ValueError) as error:  # fmt: skip
        print(f"openrlhf-distill {args.command}: error: {error}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
