"""Stage 9, RL: ``openrlhf-distill ppo`` runs OpenRLHF's PPO loop (``train_ppo_ray``) with the reward scheme
chosen by ``--reward.scheme``. Every train_ppo_ray flag passes through unchanged; this module only adds what
the scheme needs:

- ``rm`` / ``judge``: OpenRLHF's learned-RM path, with ``--reward.normalize_enable`` so the RM's stored mean/std
  (from its training) normalise the reward;
- ``vote`` / ``gold`` and the controls ``random`` / ``style``: a generated reward-function file as
  ``--reward.remote_url``, reading the ``distill_label`` column the ``build`` stage writes (``--data.label_key``);
- ``hybrid``: the same file, calling a batching RM server we start on 127.0.0.1 for the run (or one given by
  ``--distill.rm_server.url``), since OpenRLHF takes a learned RM or a reward function, not both.

Two run-level options of ours: ``--distill.steps N`` (exactly N steps whatever the prompt set's size) and
``--distill.select.dev DEV`` (the actor saved every ``--ckpt.save_steps`` steps whose greedy answers agree most
with the dev pseudo-labels becomes the run's model: ``selection``). A vote or hybrid run is refused a prompt
without a pseudo-label (``check_inputs``).

The run's own files go to ``<--ckpt.output_dir>/distill_ppo/``: the reward file, ``command.txt``,
``metrics.jsonl`` (OpenRLHF's per-step log, parsed) and ``summary.json``. A killed run rerun with
``--ckpt.load_enable`` continues from OpenRLHF's last checkpoint (``--ckpt.save_steps``), and its metrics.jsonl
keeps the killed run's steps before that checkpoint.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .argtypes import int_at_least
from .compat import launch, ray_driver
from .compat.flags import TRAIN_PPO_RAY, flag_value, has_flag, parsed_value, with_flag_value
from .compat.gpu_plan import ClusterSettings
from .contract import Input, Output
from .processes import ends_with_this_process
from .records import REWARD_LABEL_FIELD, write_json_atomic
from .rewards.schemes import LABEL_SCHEMES, RM_SCHEMES, SCHEMES, RewardConfig
from .rewards.server import ServerSettings, advertised_address
from .selection import SelectSettings
from .settings import add_flags, from_args, setting

RUN_SUBDIR = "distill_ppo"
# How `ppo` starts a hybrid run's RM server unless told otherwise: the address by the run, a free port.
RUN_RM_SERVER_DEFAULTS = {"host": None, "port": 0}
RUN_RM_SERVER = ServerSettings(**RUN_RM_SERVER_DEFAULTS)
_STEP_LINE = re.compile(r"Global step (\d+): (\{.*\})\s*$")


@dataclass
class PPOOptions:
    """What `ppo` adds to OpenRLHF's flags: its own flags are made from these fields, and from the settings
    groups it holds (--distill.reward.*, --distill.rm_server.*, --distill.cluster.*, --distill.select.*)."""

    scheme: str = setting(
        "rm",
        "rm: the distilled RM (the paper); vote / gold: 1 if the answer equals the pseudo-label / gold answer; "
        "hybrid: alpha * RM + beta * vote; judge: an RM trained on judge labels; random / style: controls, 1 by a "
        "coin flip / for the style --distill.reward.style",
        choices=SCHEMES,
        flag_as="reward.scheme",
    )
    task: str | None = setting(None, "task of rows whose label does not name one (vote, gold, hybrid)")
    engine: str = setting("auto", "auto: gpu when CUDA is found", choices=("auto", "gpu", "cpu"))
    ray_address: str | None = setting(
        None,
        "join this Ray cluster (default: $RAY_ADDRESS, else local; on the CPU engine only this flag joins one, "
        "whose nodes must declare logical GPUs: ray start --num-gpus N)",
        flag_as="ray.address",
    )
    submit: bool = setting(
        False, "submit as a Ray job to --ray.address (the dashboard, http://HEAD:8265)", flag_as="ray.submit"
    )
    rm_server_url: str | None = setting(
        None,
        "hybrid: a running `openrlhf-distill serve-rm` (default: serve the RM for the run)",
        flag_as="distill.rm_server.url",
    )
    sync_check: bool = setting(
        False,
        "CPU engine: after training, compare the rollout engine's log-probs with the saved actor",
        flag_as="distill.sync_check",
    )
    steps: int | None = setting(
        None,
        "exactly N PPO steps whatever the prompt set's size: the prompts are cycled to N x --rollout.batch_size "
        "rows, one episode (runs on the labelled prompts and on every prompt then take equal steps)",
        check=int_at_least(1),
        flag_as="distill.steps",
    )
    # The groups, from their own flags: the reward function's weights and controls (scheme, task, URL and seed
    # come from the run); the RM server a hybrid run starts (host None: 127.0.0.1 for a local run, every
    # interface when joining a cluster; port 0: a free one); the declared cluster; the gold-free checkpoint choice.
    reward: RewardConfig = setting(RewardConfig("rm"), flag=False)
    rm_server: ServerSettings = setting(RUN_RM_SERVER, flag=False)
    cluster: ClusterSettings = setting(ClusterSettings(), flag=False)
    select: SelectSettings | None = setting(None, flag=False)


@dataclass
class PPOPlan:
    options: PPOOptions
    launch: launch.Launch
    openrlhf_argv: list
    run_dir: str
    reward_config: RewardConfig | None = None
    reward_file: str | None = None
    rm_server_model: str | None = None  # hybrid: the RM we serve for the run, on this address
    rm_server_host: str | None = None
    steps_source: str | None = None  # --distill.steps: the prompt file the run's fixed-length prompt file cycles
    keep_hf_checkpoints: bool = False  # the user asked for --ckpt.save_hf: selection leaves the step folders
    notes: list = field(default_factory=list)


def _without_flag(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


def ray_cluster_address(options: PPOOptions) -> str | None:
    """The Ray cluster the run's driver will join, found as ``ray.init()`` finds it: ``--ray.address``, else
    ``RAY_ADDRESS``, else the cluster ``ray start`` set up on this machine (its address file in Ray's temporary
    folder). None: the driver starts a Ray of its own here (always so on the CPU engine without --ray.address)."""
    if options.ray_address:
        return options.ray_address
    engine = launch.detect_engine() if options.engine == "auto" else options.engine
    if engine == "cpu":
        return None
    from ray._private.services import get_ray_address_from_environment

    return get_ray_address_from_environment(None, None)


def _scheme_argv(argv: list[str], options: PPOOptions, run_dir: str) -> tuple[list[str], dict]:
    """train_ppo_ray flags for the scheme, and what else the scheme needs (reward config, served RM)."""
    cli = TRAIN_PPO_RAY
    rm_path = flag_value(argv, cli["reward_model"])
    extra: dict = {}
    if options.scheme in RM_SCHEMES:
        if not rm_path:
            raise ValueError(f"--reward.scheme {options.scheme} needs {cli['reward_model']} (the distilled RM)")
        if has_flag(argv, cli["remote_reward"]):
            raise ValueError(f"--reward.scheme {options.scheme} uses the learned RM; drop {cli['remote_reward']}")
        if not has_flag(argv, cli["normalize_reward"]):
            argv = argv + [cli["normalize_reward"]]
        return argv, extra
    if has_flag(argv, cli["remote_reward"]):
        raise ValueError(
            f"--reward.scheme {options.scheme} writes its own reward function; drop {cli['remote_reward']}"
        )
    rm_url = None
    if options.scheme == "hybrid":
        if options.rm_server_url:
            rm_url = options.rm_server_url.rstrip("/")
        elif rm_path:
            port = options.rm_server.port or launch.free_port()
            # Rollout actors on other nodes call the server: when the driver joins a Ray cluster (however it finds
            # it) the server listens on every interface and the reward function calls this machine's address on
            # the route to the cluster, not 127.0.0.1 (which is each node itself).
            cluster = ray_cluster_address(options)
            host = options.rm_server.host or ("0.0.0.0" if cluster else "127.0.0.1")
            extra["rm_server"] = (rm_path, host, port)
            rm_url = f"http://{advertised_address(host, towards=cluster)}:{port}"
        else:
            raise ValueError(f"--reward.scheme hybrid needs the RM: {cli['reward_model']} or --distill.rm_server.url")
        argv = _without_flag(argv, cli["reward_model"])  # OpenRLHF would otherwise ignore it silently
    elif rm_path:
        raise ValueError(
            f"--reward.scheme {options.scheme} uses no learned RM; drop {cli['reward_model']} "
            "(or use --reward.scheme hybrid)"
        )
    config = dataclasses.replace(
        options.reward,
        scheme=options.scheme,
        task=options.task,
        rm_url=rm_url,
        seed=int(flag_value(argv, cli["seed"]) or 0),
    ).check()
    reward_file = os.path.join(run_dir, f"reward_func_{options.scheme}.py")
    argv = argv + [cli["remote_reward"], reward_file]
    if not has_flag(argv, cli["label_key"]):
        argv += [cli["label_key"], REWARD_LABEL_FIELD]
    extra.update(reward_config=config, reward_file=reward_file)
    return argv, extra


def _fixed_steps_argv(argv: list[str], options: PPOOptions, run_dir: str) -> tuple[list[str], str | None]:
    """--distill.steps N: the run reads a prompt file of exactly N x --rollout.batch_size rows (the given prompts
    cycled, written when the run starts) in one episode, so runs on prompt sets of different sizes (the labelled
    questions only, or every prompt) make the same number of PPO steps."""
    cli = TRAIN_PPO_RAY
    if options.steps is None:
        return argv, None
    batch = flag_value(argv, cli["rollout_batch_size"])
    if batch is None:
        raise ValueError(f"--distill.steps needs {cli['rollout_batch_size']} (the prompts of one step)")
    source = flag_value(argv, cli["prompt_dataset"])
    if not source or "," in source or not source.endswith(".jsonl"):
        raise ValueError(f"--distill.steps needs one local JSON Lines file as {cli['prompt_dataset']}, got {source!r}")
    rows = options.steps * int(batch)
    argv = with_flag_value(argv, cli["prompt_dataset"], os.path.join(run_dir, f"prompts_{options.steps}_steps.jsonl"))
    for flag, value in ((cli["max_samples"], rows), (cli["num_episodes"], 1)):
        argv = with_flag_value(argv, flag, str(value)) if has_flag(argv, flag) else argv + [flag, str(value)]
    return argv, source


def fixed_steps_prompts(source: str, rows: int, seed: int) -> list[dict]:
    """``rows`` prompt rows: every row of ``source`` in turn, each pass in its own seeded order."""
    import random

    from .records import ANY_OBJECT, read_all_records

    given, out, rng = read_all_records(source, ANY_OBJECT), [], random.Random(seed)
    while len(out) < rows:
        one_pass = list(given)
        rng.shuffle(one_pass)
        out += one_pass[: rows - len(out)]
    return out


def _selection_argv(argv: list[str], options: PPOOptions) -> list[str]:
    """--distill.select.dev: OpenRLHF must save the actor as an HF model at each checkpoint (``selection``)."""
    cli = TRAIN_PPO_RAY
    if options.select is None:
        return argv
    if options.select.task is None:
        raise ValueError("--distill.select.dev needs --task (it reads the actors' answers)")
    every = flag_value(argv, cli["save_steps"])
    if every is None or int(every) < 1:
        raise ValueError(
            f"--distill.select.dev chooses among the actors saved every {cli['save_steps']} N steps; give N >= 1"
        )
    return argv if has_flag(argv, cli["save_hf"]) else argv + [cli["save_hf"]]


# Flags whose values are files or folders (always local), and those that may name a local model folder or a Hub id.
PATH_FLAGS = ("output_dir", "ckpt_path")
MODEL_FLAGS = ("actor_model", "reward_model", "critic_model")


def absolute_path_flags(argv: list[str], ray_address: str | None = None) -> list[str]:
    """``argv`` with its local paths made absolute: the Ray workers that read them may be on other nodes, with
    other working folders (`cluster_paths`). The prompt data set may be a comma-separated list."""
    from .cluster_paths import absolute

    cli = TRAIN_PPO_RAY
    paths = {cli[key]: flag_value(argv, cli[key]) for key in PATH_FLAGS}
    models = {cli[key]: flag_value(argv, cli[key]) for key in MODEL_FLAGS}
    datasets = (flag_value(argv, cli["prompt_dataset"]) or "").split(",")
    models |= {f"{cli['prompt_dataset']} ({name})": name for name in datasets if name}  # local files, or Hub ids
    resolved = absolute(paths, models, ray_address)
    for key in (*PATH_FLAGS, *MODEL_FLAGS):
        if resolved[cli[key]] is not None:
            argv = with_flag_value(argv, cli[key], resolved[cli[key]])
    if any(datasets):
        joined = ",".join(resolved[f"{cli['prompt_dataset']} ({name})"] if name else name for name in datasets)
        argv = with_flag_value(argv, cli["prompt_dataset"], joined)
    return argv


def plan(argv: list[str], options: PPOOptions) -> PPOPlan:
    """Everything a PPO run is: the command, its environment, the reward settings. Writes nothing."""
    if options.scheme not in SCHEMES:
        raise ValueError(f"--reward.scheme: unknown scheme {options.scheme!r}; choose one of {', '.join(SCHEMES)}")
    if not flag_value(argv, TRAIN_PPO_RAY["actor_model"]):
        raise ValueError(f"{TRAIN_PPO_RAY['actor_model']} is required (the SFT-warmed student)")
    argv = absolute_path_flags(argv, options.ray_address)
    output_dir = os.path.abspath(flag_value(argv, TRAIN_PPO_RAY["output_dir"]) or "./ckpt")  # OpenRLHF's default
    run_dir = os.path.join(output_dir, RUN_SUBDIR)
    openrlhf_argv, extra = _scheme_argv(list(argv), options, run_dir)
    openrlhf_argv, steps_source = _fixed_steps_argv(openrlhf_argv, options, run_dir)
    keep_hf = has_flag(openrlhf_argv, TRAIN_PPO_RAY["save_hf"])
    openrlhf_argv = _selection_argv(openrlhf_argv, options)
    planned = launch.plan_ppo(
        openrlhf_argv,
        engine=options.engine,
        ray_address=options.ray_address,
        submit=options.submit,
        autoscaling=options.cluster.autoscaling,
    )
    if options.sync_check:
        if planned.engine != "cpu":
            raise ValueError("--distill.sync_check runs on the CPU engine only")
        planned.env[ray_driver.ENV_ENGINE_PROBE] = os.path.join(run_dir, "engine_probe.json")
    rm_server = extra.get("rm_server")
    return PPOPlan(
        options=options,
        launch=planned,
        openrlhf_argv=openrlhf_argv,
        run_dir=run_dir,
        reward_config=extra.get("reward_config"),
        reward_file=extra.get("reward_file"),
        rm_server_model=rm_server[0] if rm_server else None,
        rm_server_host=rm_server[1] if rm_server else None,
        steps_source=steps_source,
        keep_hf_checkpoints=keep_hf,
    )


def validate(ppo_plan: PPOPlan):
    """OpenRLHF's own parser and checks, run on the exact flags the driver will pass; returns its namespace."""
    command = ppo_plan.launch.command
    return ray_driver.validate(command[command.index(ray_driver.__name__) + 1 :])


def check_inputs(ppo_plan: PPOPlan, namespace) -> None:
    """What OpenRLHF's own checks (``validate``) leave to the start of training, checked before any resources
    are asked for: the model folders, the prompt files and the columns the run will read.
    ``namespace``: what ``validate`` returned, so OpenRLHF's defaults are the ones checked."""
    from .model_folders import check_model_folder, check_reward_model, looks_local
    from .records import ANY_OBJECT, RecordError, read_records

    cli = TRAIN_PPO_RAY
    check_model_folder(parsed_value(namespace, "actor.model_name_or_path"), cli["actor_model"])
    rm_path = parsed_value(namespace, "reward.model_name_or_path")
    if ppo_plan.options.scheme in RM_SCHEMES and rm_path and looks_local(rm_path):
        check_reward_model(rm_path)
    if ppo_plan.rm_server_model and looks_local(ppo_plan.rm_server_model):
        check_reward_model(ppo_plan.rm_server_model)
    critic = parsed_value(namespace, "critic.model_name_or_path")
    if critic and parsed_value(namespace, "algo.advantage.estimator") == "gae":  # the other estimators use no critic
        check_model_folder(critic, cli["critic_model"])
    # Local JSON Lines prompt files: every row must hold the columns the run reads (a Hub data set, or another
    # format, is OpenRLHF's to read).
    columns = [parsed_value(namespace, "data.input_key")] + [parsed_value(namespace, "data.label_key")] * bool(
        parsed_value(namespace, "data.label_key")
    )
    datasets = ppo_plan.steps_source or str(parsed_value(namespace, "data.prompt_dataset") or "")
    needs_label = ppo_plan.options.scheme in LABEL_SCHEMES
    for name in datasets.split(","):
        if not name or not looks_local(name) or os.path.isdir(name) or not name.endswith(".jsonl"):
            if name and looks_local(name) and not os.path.exists(name):
                raise RecordError(name, None, None, f"{cli['prompt_dataset']}: no such file")
            continue
        rows = 0
        for line, row in read_records(name, ANY_OBJECT):
            rows += 1
            for column in columns:
                if column not in row:
                    raise RecordError(
                        name,
                        line,
                        column,
                        f"missing (the run reads it: {cli['input_key']}"
                        f"{', ' + cli['label_key'] if len(columns) > 1 else ''})",
                    )
            if needs_label:
                _check_has_pseudo_label(row, parsed_value(namespace, "data.label_key"), name, line)
        if rows == 0:
            raise RecordError(name, None, None, f"{cli['prompt_dataset']}: no prompts in it")


def check_sampling(namespace) -> None:
    """The rollout's sampling settings, which OpenRLHF's parser takes as any float."""
    temperature, top_p = parsed_value(namespace, "rollout.temperature"), parsed_value(namespace, "rollout.top_p")
    if temperature is not None and not 0 <= temperature <= 2:
        raise ValueError(f"--rollout.temperature: must be a number in [0, 2], got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"--rollout.top_p: must be a number in (0, 1], got {top_p}")


def _check_has_pseudo_label(row: dict, label_key: str, path: str, line: int) -> None:
    """A vote or hybrid reward reads each prompt's pseudo-label: a prompt the teacher never labelled (an
    unlabelled RL prompt, ``build --rl.unlabelled``) has none and must not reach such a run."""
    from .records import RecordError, decode_reward_label

    try:
        label = decode_reward_label(row[label_key]).label
    except ValueError as error:
        raise RecordError(path, line, label_key, str(error)) from None
    if label is None:
        raise RecordError(
            path,
            line,
            label_key,
            "no pseudo-label: this prompt was never labelled by the teacher's vote, and the vote and hybrid rewards "
            "read one (use the labelled prompts, rl_prompts.jsonl)",
        )


def describe(ppo_plan: PPOPlan) -> str:
    """The command as a shell line, with the environment it needs."""
    import shlex

    keys = (
        "PYTHONPATH",
        "RAY_ADDRESS",
        ray_driver.ENV_LOGICAL_GPUS,
        ray_driver.ENV_SHIP_PACKAGE,
        ray_driver.ENV_AUTOSCALING,
        "VLLM_CPU_KVCACHE_SPACE",
        ray_driver.ENV_ENGINE_PROBE,
    )
    env = " ".join(f"{k}={shlex.quote(ppo_plan.launch.env[k])}" for k in keys if ppo_plan.launch.env.get(k))
    return (env + " " if env else "") + shlex.join(ppo_plan.launch.command)


def parse_step_line(line: str) -> dict | None:
    """One of OpenRLHF's ``Global step N: {...}`` log lines as a dict with ``step``; None for other lines."""
    match = _STEP_LINE.search(line)
    if not match:
        return None
    text = re.sub(r"\b(nan|inf)\b", lambda m: f"'{m.group(1)}'", match.group(2))
    try:
        values = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    clean = {k: (float(v) if v in ("nan", "inf") else v) for k, v in values.items()}
    return {"step": int(match.group(1)), **clean}


def _write_files(ppo_plan: PPOPlan) -> None:
    from .rewards.function import write_reward_file

    os.makedirs(ppo_plan.run_dir, exist_ok=True)
    if ppo_plan.steps_source:
        from .records import write_jsonl_atomic

        cli, argv = TRAIN_PPO_RAY, ppo_plan.openrlhf_argv
        rows = fixed_steps_prompts(
            ppo_plan.steps_source, int(flag_value(argv, cli["max_samples"])), int(flag_value(argv, cli["seed"]) or 0)
        )
        write_jsonl_atomic(flag_value(argv, cli["prompt_dataset"]), rows)
    if ppo_plan.reward_file:
        write_reward_file(ppo_plan.reward_file, ppo_plan.reward_config)
    with open(os.path.join(ppo_plan.run_dir, "command.txt"), "w") as f:
        f.write(describe(ppo_plan) + "\n")


def _earlier_steps(ppo_plan: PPOPlan, metrics_path: str) -> list[dict]:
    """The steps a killed run logged before, when this run continues it from OpenRLHF's checkpoint."""
    if not has_flag(ppo_plan.openrlhf_argv, TRAIN_PPO_RAY["load_checkpoint"]) or not os.path.exists(metrics_path):
        return []
    with open(metrics_path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _stream(ppo_plan: PPOPlan, log_path: str | None) -> tuple[int, list[dict], list[str]]:
    """Runs the loop, echoing its output and writing each logged step to metrics.jsonl as it comes. A run that
    continues from a checkpoint keeps the earlier run's steps up to the step it restarts from (the steps after
    the checkpoint are run, and logged, again)."""
    metrics_path = os.path.join(ppo_plan.run_dir, "metrics.jsonl")
    steps, tail, earlier = [], [], _earlier_steps(ppo_plan, metrics_path)
    tmp = f"{metrics_path}.tmp-{os.getpid()}"
    with open(tmp, "w") as metrics, open(log_path or os.devnull, "w") as log:
        for step in earlier:  # until the first new step says where the checkpoint was
            metrics.write(json.dumps(step) + "\n")
        metrics.flush()
        os.replace(tmp, metrics_path)
        proc = subprocess.Popen(
            ppo_plan.launch.command,
            env=ppo_plan.launch.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            errors="replace",
            preexec_fn=ends_with_this_process(),
        )
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            tail = (tail + [line])[-60:]
            step = parse_step_line(line)
            if step is None:
                continue
            if not steps and earlier:
                steps = [s for s in earlier if s["step"] < step["step"]]
                metrics.seek(0)
                metrics.truncate()
                metrics.writelines(json.dumps(s) + "\n" for s in steps)
            steps.append(step)
            metrics.write(json.dumps(step) + "\n")
            metrics.flush()
        return proc.wait(), steps or earlier, tail


def run_plan(ppo_plan: PPOPlan, *, log_path: str | None = None) -> dict:
    """Runs the PPO loop to completion (with the RM server of a hybrid run around it); returns the summary."""
    _write_files(ppo_plan)
    started = time.time()
    server = None
    if ppo_plan.rm_server_model:
        from .rewards.server import RewardModelServer

        port = int(ppo_plan.reward_config.rm_url.rsplit(":", 1)[1])
        o = ppo_plan.options
        settings = dataclasses.replace(o.rm_server, host=ppo_plan.rm_server_host, port=port)
        server = RewardModelServer(ppo_plan.rm_server_model, **dataclasses.asdict(settings)).start()
    try:
        code, steps, tail = _stream(ppo_plan, log_path)
    finally:
        server_stats = server.stats() if server else None
        if server:
            server.stop()
    if code != 0:
        where = f" (full log: {log_path})" if log_path else ""
        raise launch.OpenRLHFRunError(
            f"{TRAIN_PPO_RAY.module} exited with code {code}{where}\n"
            f"command: {describe(ppo_plan)}\nlast lines:\n{''.join(tail)}"
        )
    summary = {
        "scheme": ppo_plan.options.scheme,
        "engine": ppo_plan.launch.engine,
        "steps": len(steps),
        "wall_seconds": round(time.time() - started, 1),
        "reward_mean_first": steps[0].get("rollout/reward_mean") if steps else None,
        "reward_mean_last": steps[-1].get("rollout/reward_mean") if steps else None,
        "rm_server": server_stats,
        "command": describe(ppo_plan),
    }
    probe = ppo_plan.launch.env.get(ray_driver.ENV_ENGINE_PROBE)
    if probe:  # the engine holds the last actor: compared before a checkpoint choice replaces it
        summary["sync_check"] = sync_check(probe, flag_value(ppo_plan.openrlhf_argv, TRAIN_PPO_RAY["output_dir"]))
    if ppo_plan.options.select:
        summary["selection"] = _select(ppo_plan, steps[-1]["step"] if steps else 0)  # the last step's number
    write_json_atomic(os.path.join(ppo_plan.run_dir, "summary.json"), summary)
    return summary


def _select(ppo_plan: PPOPlan, last_step: int) -> dict:
    """Scores the actors the run saved on the dev pseudo-labels and makes the best the run's model."""
    from .selection import select_ppo_checkpoint

    argv, cli = ppo_plan.openrlhf_argv, TRAIN_PPO_RAY
    settings = dataclasses.replace(ppo_plan.options.select, work_dir=ppo_plan.run_dir)
    output_dir = flag_value(argv, cli["output_dir"])
    selection = select_ppo_checkpoint(
        settings,
        initial_model=flag_value(argv, cli["actor_model"]),
        ckpt_path=flag_value(argv, cli["ckpt_path"]) or "./ckpt/checkpoints_ppo_ray",  # OpenRLHF's default
        output_dir=output_dir,
        steps=last_step,
        keep_hf=ppo_plan.keep_hf_checkpoints,
    )
    print(
        "checkpoint choice by dev agreement: "
        + ", ".join(f"step {c['step']} {100 * c['dev_agreement']:.1f}%" for c in selection["candidates"])
        + f"; the run's model is step {selection['chosen_step']}"
    )
    return {key: selection[key] for key in ("chosen_step", "last_step")}


def model_logprobs(model_dir: str, token_ids: list[int]) -> list[float]:
    """log p(token_i | tokens before it) for i >= 1, from a saved HF causal LM, in float32."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([token_ids])
    with torch.no_grad():
        logits = model(ids).logits.float().log_softmax(-1)
    return logits[0, :-1].gather(-1, ids[0, 1:, None])[:, 0].tolist()


def sync_check(probe_path: str, actor_dir: str) -> dict:
    """How far the rollout engine's log-probs (after training) are from the saved actor's.

    A working weight sync gives differences at bf16 precision; a broken one leaves the engine at the initial
    weights, far from a trained actor.
    """
    with open(probe_path) as f:
        probe = json.load(f)
    actor = model_logprobs(actor_dir, probe["token_ids"])
    engine = probe["engine_logprobs"]
    diffs = [abs(a - b) for a, b in zip(actor, engine, strict=True)]
    return {
        "tokens": len(diffs),
        "max_abs_diff_vs_saved_actor": max(diffs),
        "mean_abs_diff_vs_saved_actor": math.fsum(diffs) / len(diffs),
    }


# --- `openrlhf-distill ppo` --------------------------------------------------------------------------------------


PATHS = (
    *(Input(TRAIN_PPO_RAY[name][2:], "model", openrlhf=True) for name in ("actor_model", "reward_model")),
    Input(TRAIN_PPO_RAY["prompt_dataset"][2:], "either", openrlhf=True),
    Input("distill.select.dev", "file", flagless=True),
    # OpenRLHF fills it as it trains (checkpoints under it by default), and the run's own files in distill_ppo/
    Output(TRAIN_PPO_RAY["output_dir"][2:], "folder", openrlhf=True, openrlhf_default="./ckpt", resumable=("*",)),
)


def add_arguments(p) -> None:
    add_flags(p, PPOOptions)
    add_flags(p, RewardConfig, "distill.reward")
    # hybrid: the RM server the run starts (as `serve-rm` takes them; the address chosen by the run, a free port)
    add_flags(p, ServerSettings, "distill.rm_server", defaults=RUN_RM_SERVER_DEFAULTS)
    add_flags(p, ClusterSettings, "distill.cluster")
    # --distill.select.dev DEV: the actor is saved every --ckpt.save_steps steps, and the one whose greedy answers
    # agree most with DEV's pseudo-labels becomes the run's model (`selection`); the rest decode as `select` does
    add_flags(p, SelectSettings, "distill.select", exclude=("task",), optional=True)
    p.add_argument("--log", default=None, help="also write the run's output to this file")
    p.add_argument(
        "--dry_run",
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="print the command and check it with OpenRLHF's own parser; start nothing",
    )


def options_from(args) -> PPOOptions:
    options = from_args(
        args,
        PPOOptions,
        rm_server=from_args(args, ServerSettings, "distill.rm_server"),
        cluster=from_args(args, ClusterSettings, "distill.cluster"),
    )
    select = from_args(args, SelectSettings, "distill.select", task=options.task, work_dir=".")
    return dataclasses.replace(
        options,
        reward=from_args(args, RewardConfig, "distill.reward", scheme=options.scheme),
        select=select if select.dev else None,  # no dev questions: no choice, the last actor is the model
    )


def placements(ppo_plan: PPOPlan, namespace) -> list:
    """The run's GPU plan: OpenRLHF's groups, and a hybrid run's RM server when it scores on a GPU (it runs on
    this machine, outside Ray: the cluster must have a GPU for it beside the groups)."""
    from .compat import gpu_plan

    planned = gpu_plan.plan(namespace)
    device = ppo_plan.options.rm_server.device
    if ppo_plan.rm_server_model and ppo_plan.launch.engine == "gpu" and not (device or "").startswith("cpu"):
        planned.append(gpu_plan.Placement(("RM server (hybrid, this machine, outside Ray)",), 1, 1))
    return planned


def check(args, openrlhf_argv: list[str]) -> tuple[PPOPlan, object, list]:
    """Everything checkable before the inputs exist: the plan, OpenRLHF's parser, post-parse checks and layout
    asserts (`validate`), and the GPU plan against --distill.cluster.*. Returns the plan, OpenRLHF's parsed
    arguments and the placements."""
    from .compat import gpu_plan

    ppo_plan = plan(openrlhf_argv, options_from(args))
    namespace = validate(ppo_plan)
    check_sampling(namespace)
    planned = placements(ppo_plan, namespace)
    nodes, per_node = ppo_plan.options.cluster.nodes, ppo_plan.options.cluster.gpus_per_node
    if (nodes is None) != (per_node is None):
        raise ValueError("--distill.cluster.nodes and --distill.cluster.gpus_per_node go together")
    # A local CPU Ray declares as many logical GPUs as the run needs; a cluster has what its nodes declared.
    if nodes and (ppo_plan.launch.engine == "gpu" or ppo_plan.options.ray_address):
        gpu_plan.check_fits(planned, nodes, per_node)
    return ppo_plan, namespace, planned


def run(args, openrlhf_argv: list[str], checked: tuple | None = None) -> int:
    """`openrlhf-distill ppo`: plans, checks (OpenRLHF's parser, the inputs, the GPU plan), then runs."""
    from .compat import gpu_plan

    ppo_plan, namespace, planned = checked or check(args, openrlhf_argv)
    check_inputs(ppo_plan, namespace)
    if args.dry_run:
        print(describe(ppo_plan))
        print(gpu_plan.describe(planned), file=sys.stderr)
        if ppo_plan.rm_server_model:
            where = ppo_plan.options.rm_server.device or "a GPU of this machine if it has one, else its CPU"
            print(
                f"# hybrid RM server: on this machine ({where}), listening on {ppo_plan.rm_server_host}; "
                f"rollouts call {ppo_plan.reward_config.rm_url}",
                file=sys.stderr,
            )
        print(f"# accepted by {TRAIN_PPO_RAY.module}'s argument parser and checks", file=sys.stderr)
        return 0
    summary = run_plan(ppo_plan, log_path=args.log)
    print(
        f"{summary['steps']} PPO steps ({summary['scheme']}, {summary['engine']}), reward mean "
        f"{summary['reward_mean_first']} -> {summary['reward_mean_last']} in {summary['wall_seconds']} s; "
        f"files in {ppo_plan.run_dir}"
    )
    return 0
