"""The pipeline's settings: a YAML file (recipes/configs/NAME.yaml) over the defaults below, then dotted overrides
from the command line (``--teacher.temperatures 0.3,0.7 --ppo.actor.adam.lr 1e-6``).

Sections ``sft``, ``rm`` and ``ppo`` each hold a ``flags`` mapping of OpenRLHF flags (dotted names without the
leading ``--``) passed to that stage's OpenRLHF entry point unchanged; an override ``--ppo.X V`` whose X is not
one of the section's own keys goes there, so any OpenRLHF flag can be set per stage.
"""

from __future__ import annotations

import copy
import dataclasses
import os

import yaml

from ..argtypes import int_at_least
from ..build import BuildConfig
from ..compat.gpu_plan import ClusterSettings
from ..evaluation import EvalSettings
from ..generation.generate import SamplingConfig
from ..generation.rounds import ADAPTIVE_OFF, AdaptiveConfig
from ..settings import section_checks, section_defaults
from ..trainers import TrainerLaunch
from ..voting import VoteRule, VotingSamples

# The evaluation settings a run sets for every `eval` stage (the others keep EvalSettings' defaults).
EVAL_SECTION = ("k", "temperature", "max_new_tokens")
# The training-set settings a run sets (rm_sources and unlabelled follow from the stage; seed is the build's own).
BUILD_SECTION = ("sft_max_per_question", "sft_min_label", "pairs_per_question", "pair_margin", "dev_questions")
# The sampling settings a run sets for the teacher's and the student's `generate` stages.
SAMPLING_SECTION = ("temperatures", "n_per_temperature", "max_new_tokens", "shard_size")

DEFAULTS: dict = {
    "run_dir": "runs/run",
    "task": "gsm8k",
    "seeds": [0],
    "engine": "auto",  # auto | gpu | cpu: OpenRLHF trainers; generation uses `backend`
    "backend": "auto",  # sampling / evaluation backend: auto | hf | vllm | openai
    "data": {
        "source": "files",  # files | hf | toy
        "train": None,  # prompt records (files), or a local copy of the HF split (hf)
        "test": None,
        "limit_train": None,
        "limit_test": None,
        # The teacher's budget: it answers the first N training questions; the rest are RL prompts without a
        # pseudo-label, for the rewards that need none (rm, gold, the controls). null: it answers them all.
        "labelled_questions": None,
        # preset: the toy world (`openrlhf-distill toy-world --preset`); flags: more toy-world flags, e.g.
        # {"teacher-steps": 2000}
        "toy": {"preset": "styles", "n_train": 300, "n_test": 200, "flags": {}},
    },
    # backend_flags: the sampling backend's own flags for this model, e.g. {"vllm.tensor_parallel_size": 8}
    "teacher": {
        "model": None,
        **section_defaults(SamplingConfig, SAMPLING_SECTION),
        "backend_flags": {},
        # adaptive.rule: sample in rounds, a question stopping once its vote is settled (exact: the full budget's
        # labels) or its leader likely to stay ahead (beta); null: the whole budget (`generate --adaptive.*`)
        "adaptive": section_defaults(AdaptiveConfig, **ADAPTIVE_OFF),
    },
    "student": {
        "model": None,
        # the paper's student: 30 samples per question at one temperature
        **section_defaults(SamplingConfig, SAMPLING_SECTION, temperatures=(1.0,), n_per_temperature=30),
        "backend_flags": {},
    },
    # How samples get their labels: "vote" (the majority over the teacher's answers; verifiable tasks) or "judge"
    # (the teacher scores each response 1-10 against a rubric, label = score / 10; open-ended tasks).
    "labeller": "vote",
    # `label --vote.*`; max_temperature: only the teacher's samples at or below it vote (null: all)
    "vote": {**section_defaults(VoteRule), **section_defaults(VotingSamples)},
    # judge.model: the judge (null: the teacher); flags: `openrlhf-distill judge` flags, e.g. judge.rubric_file.
    "judge": {"model": None, "flags": {}},
    # sft_min_label: least label of an SFT response (vote labels are 0/1; judge labels score/10, e.g. 0.9).
    # dev_questions: voted questions held out of SFT, RM and RL data; models are chosen by agreement with their
    # pseudo-labels (sft.sweep, ppo.select_every), never by gold.
    "build": section_defaults(BuildConfig, BUILD_SECTION),
    # launcher: deepspeed launcher flags for a multi-node GPU run, e.g. ["hostfile=/job/hosts", "num_nodes=2"]
    # sweep: OpenRLHF flags -> lists of values, e.g. {"adam.lr": [3e-5, 1e-4]}: one SFT run per combination, the
    # one whose greedy answers agree most with the dev pseudo-labels kept (needs build.dev_questions)
    "sft": {"flags": {}, **section_defaults(TrainerLaunch, ("launcher",)), "sweep": {}},
    "rm": {
        "flags": {},
        "ablations": [],
        **section_defaults(TrainerLaunch, ("launcher",)),
    },  # ablations: ["teacher_only"] (RM data: teacher only)
    # select_every N: the actor saved every N steps, the one agreeing most with the dev pseudo-labels kept as the
    # run's model (needs build.dev_questions); steps: exactly this many PPO steps whatever the prompt set's size
    "ppo": {"schemes": ["rm"], "flags": {}, "select_every": 0, "steps": None},
    # The GPU cluster the run is for: each PPO stage's GPU plan (OpenRLHF's placement of its groups) is checked
    # against nodes x gpus_per_node when the stage starts (`ppo --distill.cluster.*`). null: not checked.
    # autoscaling: the Ray cluster adds nodes on demand, so the driver does not also check the nodes it has now.
    "cluster": section_defaults(ClusterSettings),
    # A trainer stage that finished keeps its final model; its DeepSpeed checkpoints (optimizer states, ~8x the
    # model for a PPO run's actor and critic) are deleted unless this is true (needed only to train further).
    "keep_checkpoints": False,
    # enabled: false for tasks without gold answers (open-ended): no evaluation stages, the report has no table.
    "eval": {"enabled": True, **section_defaults(EvalSettings, EVAL_SECTION), "models": ["teacher", "student_base"]},
}

# Sections whose unknown keys are OpenRLHF flags for that stage.
FLAG_SECTIONS = ("sft", "rm", "ppo")
# Keys that hold a mapping of command-line flags (merged key by key, not checked against defaults).
FLAG_MAPPINGS = ("flags", "backend_flags", "sweep")


class ConfigError(ValueError):
    """A setting that does not exist or has the wrong shape; the message names it."""


def _merge(base: dict, update: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{where}.{key}" if where else key
        if key not in out:
            raise ConfigError(f"unknown setting {path!r}; known here: {', '.join(sorted(out))}")
        if isinstance(out[key], dict) and key not in FLAG_MAPPINGS:
            if not isinstance(value, dict):
                raise ConfigError(f"setting {path!r} must be a mapping, got {value!r}")
            out[key] = _merge(out[key], value, path)
        elif key in FLAG_MAPPINGS:
            if not isinstance(value, dict):
                raise ConfigError(f"setting {path!r} must be a mapping of OpenRLHF flags, got {value!r}")
            out[key] = {**out[key], **{str(k).lstrip("-"): v for k, v in value.items()}}
        else:
            out[key] = value
    return out


def _parse_value(text: str, current, where: str = ""):
    """A command-line value in the type of the setting it replaces (lists from commas, YAML scalars)."""
    try:
        if isinstance(current, list):  # "a,b" or YAML's own "[a, b]"
            if text.strip().startswith("["):
                return yaml.safe_load(text)
            return [yaml.safe_load(part) for part in text.split(",") if part.strip()]
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(
            f"--{where}: {text!r} is not a value (a number, a word, or a comma-separated list)"
        ) from None


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``["--teacher.temperatures", "0.3,0.7", "--ppo.actor.adam.lr", "1e-6", "--sft.ds.zero_stage=3"]``."""
    config = copy.deepcopy(config)
    items, i = [], 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--"):
            raise ConfigError(f"expected a --dotted.setting, got {arg!r}")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
        elif i + 1 < len(overrides) and not overrides[i + 1].startswith("--"):
            key, value = arg[2:], overrides[i + 1]
            i += 1
        else:
            key, value = arg[2:], None  # a bare flag, e.g. an OpenRLHF store_true option
        items.append((key, value))
        i += 1
    for key, value in items:
        parts = key.split(".")
        section = parts[0]
        if section in FLAG_SECTIONS and len(parts) > 1 and parts[1] not in config[section]:
            # Passed to OpenRLHF verbatim (its parser converts), a bare flag or `true` as a switch on, `false` as
            # a switch off (a switch the config turned on is turned off by leaving its flag out).
            switch = {"true": True, "false": False}.get(value.lower()) if value is not None else True
            config[section]["flags"][".".join(parts[1:])] = value if switch is None else switch
            continue
        if value is None:
            value = "true"
        node = config
        for depth, part in enumerate(parts):
            where = ".".join(parts[: depth + 1])
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "(none)"
                raise ConfigError(f"unknown setting {where!r}; known here: {known}")
            if depth == len(parts) - 1:
                node[part] = _parse_value(value, node[part], where)
            elif part in FLAG_MAPPINGS:  # --sft.sweep.adam.lr 3e-5,1e-4: the rest of the name is one flag's
                node[part][".".join(parts[depth + 1 :])] = _parse_value(value, [] if part == "sweep" else None, key)
                break
            else:
                node = node[part]
    return config


def load_config(path: str | None, overrides: list[str] | None = None) -> dict:
    config = copy.deepcopy(DEFAULTS)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text (byte {error.start + 1} of the file)") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a folder, not a YAML file") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
        try:
            config = _merge(config, loaded, "")
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    config = apply_overrides(config, overrides or [])
    check(config)
    return config


# What each of the pipeline's own settings accepts: a check returning what is wrong, or None. Checked when the
# run (or its dry run) starts, so that a typo fails before hours of sampling, not at the stage that reads it.
def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}"


def _optional(check):
    return lambda v: None if v is None else check(v)


def _string(v):
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _bool(v):
    return None if isinstance(v, bool) else "must be true or false"


def _list_of(check, non_empty: bool = True):
    def check_list(v):
        if not isinstance(v, list) or (non_empty and not v):
            return f"must be a {'non-empty ' if non_empty else ''}list"
        problems = [check(item) for item in v]
        return next((f"each item {p}" for p in problems if p), None)

    return check_list


def _sampling(role: str) -> dict:
    return {f"{role}.model": _optional(_string), **section_checks(SamplingConfig, role, SAMPLING_SECTION)}


SETTINGS = {
    "run_dir": _string,
    "seeds": _list_of(int_at_least(0)),
    "engine": _one_of("auto", "gpu", "cpu"),
    "backend": _one_of("auto", "hf", "vllm", "openai"),
    "data.source": _one_of("files", "hf", "toy"),
    "data.train": _optional(_string),
    "data.test": _optional(_string),
    "data.limit_train": _optional(int_at_least(1)),
    "data.limit_test": _optional(int_at_least(1)),
    "data.labelled_questions": _optional(int_at_least(1)),
    "data.toy.preset": _string,
    "data.toy.n_train": int_at_least(1),
    "data.toy.n_test": int_at_least(1),
    **_sampling("teacher"),
    **_sampling("student"),
    **section_checks(AdaptiveConfig, "teacher.adaptive"),
    "labeller": _one_of("vote", "judge"),
    **section_checks(VoteRule, "vote"),
    **section_checks(VotingSamples, "vote"),
    "judge.model": _optional(_string),
    **section_checks(BuildConfig, "build", BUILD_SECTION),
    "ppo.select_every": int_at_least(0),
    "ppo.steps": _optional(int_at_least(1)),
    "rm.ablations": _list_of(_string, non_empty=False),
    **section_checks(TrainerLaunch, "sft", ("launcher",)),
    **section_checks(TrainerLaunch, "rm", ("launcher",)),
    "ppo.schemes": _list_of(_string),
    **section_checks(ClusterSettings, "cluster"),
    "keep_checkpoints": _bool,
    "eval.enabled": _bool,
    **section_checks(EvalSettings, "eval", EVAL_SECTION),
    "eval.models": _list_of(_one_of("teacher", "student_base"), non_empty=False),  # the models before training
}


_ABSENT = object()  # a setting the config does not hold


def _check_settings(config: dict) -> None:
    from ..tasks import TASK_NAMES  # here, not at the top: importing the tasks is slow and not always needed

    for key, check in {"task": _one_of(*TASK_NAMES), **SETTINGS}.items():
        node = config
        for part in key.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT and (problem := check(node)):
            raise ConfigError(f"{key}: {problem}, got {node!r}")


def check(config: dict) -> None:
    _check_settings(config)
    source = config["data"]["source"]
    if source == "files" and not (
        config["data"]["train"] and (config["data"]["test"] or not config["eval"]["enabled"])
    ):
        raise ConfigError(
            "data.source files needs data.train and data.test (prompt record files; no data.test "
            "when eval.enabled is false)"
        )
    if config["teacher"]["adaptive"]["rule"] and config["labeller"] != "vote":
        raise ConfigError(
            "teacher.adaptive.rule stops a question on the teacher's vote; labeller "
            f"{config['labeller']!r} does not vote: set teacher.adaptive.rule to null"
        )
    if source != "toy" and not (config["teacher"]["model"] and config["student"]["model"]):
        raise ConfigError("teacher.model and student.model are required (the toy world builds its own)")
    from ..rewards.schemes import SCHEMES

    for scheme in config["ppo"]["schemes"]:
        if scheme not in SCHEMES:
            raise ConfigError(f"ppo.schemes: unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    if config["eval"]["enabled"] and config["task"] == "open":
        raise ConfigError("task open has no gold answers to evaluate against: set eval.enabled false")
    if (config["cluster"]["nodes"] is None) != (config["cluster"]["gpus_per_node"] is None):
        raise ConfigError("cluster.nodes and cluster.gpus_per_node go together (both, or neither)")
    for flag, values in config["sft"]["sweep"].items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sft.sweep.{flag}: must be a non-empty list of values, got {values!r}")
    choosers = [
        name
        for name, on in (("sft.sweep", config["sft"]["sweep"]), ("ppo.select_every", config["ppo"]["select_every"]))
        if on
    ]
    if choosers and not config["build"]["dev_questions"]:
        raise ConfigError(
            f"{' and '.join(choosers)} choose models by dev agreement: set build.dev_questions (e.g. 40)"
        )
    if config["build"]["dev_questions"] and config["labeller"] != "vote":
        raise ConfigError("build.dev_questions holds out questions with vote pseudo-labels: labeller must be vote")
    for ablation in config["rm"]["ablations"]:
        if ablation != "teacher_only":
            raise ConfigError(f"rm.ablations: unknown ablation {ablation!r}; known: teacher_only")


def check_inputs(config: dict) -> None:
    """The files and model folders the run will read that exist before it starts (the user's prompt files and
    models; not what earlier stages will write), checked when the run starts, dry run included: a missing or
    empty prompt file, or a model path that is no model folder, fails now, not at the stage that reads it."""
    from ..evaluation import read_eval_records
    from ..model_folders import check_model_folder, looks_local
    from ..questions import load_questions
    from ..tasks import get_task

    data = config["data"]
    for split in ("train", "test"):
        path = data[split]
        if path is None or (data["source"] == "hf" and not os.path.exists(path)):
            continue  # the hf source downloads what has no local copy
        # every record read as the stages that take it will read it (FILE:LINE field): the training questions as
        # sampling does, each formatted into its prompt; the test questions as evaluation does, gold and all
        if split == "train":
            style = {f.name: f.default for f in dataclasses.fields(SamplingConfig)}["prompt_style"]  # the stages'
            for question in load_questions(path, config["task"]).values():
                question.task.format_prompt(question.record, style=style)
        elif config["eval"]["enabled"]:
            read_eval_records(path, get_task(config["task"]))
    if config["backend"] == "openai":
        return  # models are names served by the endpoint, not folders
    for role in ("teacher", "student", "judge"):
        model = config[role]["model"]
        if model and looks_local(model):
            check_model_folder(model, f"{role}.model", weights=False)  # its stages check the weights


def with_absolute_paths(config: dict) -> tuple[dict, dict[str, str]]:
    """``config`` with the run folder, the prompt files and local model folders as absolute paths, which every
    node and a ``ray job submit`` job resolve alike (`cluster_paths`; a relative one is an error where the run
    joins a cluster on other machines), and {absolute path: as the config wrote it} for the stages'
    fingerprints (`runner.fingerprints`)."""
    from ..cluster_paths import absolute

    data = config["data"]
    paths = {"run_dir": config["run_dir"], "data.train": data["train"], "data.test": data["test"]}
    models = (
        {}
        if config["backend"] == "openai"
        else {f"{role}.model": config[role]["model"] for role in ("teacher", "student", "judge")}
    )
    try:
        resolved = absolute(paths, models)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    out = copy.deepcopy(config)
    written = {}
    for name, path in resolved.items():
        node = out
        *parents, key = name.split(".")
        for part in parents:
            node = node[part]
        if path != node[key]:
            written[path] = node[key]
            node[key] = path
    return out, written
