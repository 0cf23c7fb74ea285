"""Settings declared once (`openrlhf_distill/settings.py`): a command's settings dataclass makes its flags and
the run config's section, so a setting's name, default, range and help live in one place."""

import argparse
import ast
import dataclasses
import importlib
import os

import pytest

from openrlhf_distill import cli, settings
from openrlhf_distill.pipeline import config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Where leaving a flag out means something other than the field's default: toy-world's flags take the chosen
# --preset's values.
def _flag_defaults(name: str, cls) -> dict:
    return {f.name: None for f in dataclasses.fields(cls)} if name == "toy-world" else {}


def _as_list(value):
    """Tuples as lists: a repeatable flag collects a list, and YAML has lists."""
    return list(value) if isinstance(value, tuple) else value


def _with_settings():
    for name, command in cli.COMMANDS.items():
        if command.settings:
            module = importlib.import_module(f"openrlhf_distill.{command.module}")
            yield name, command, getattr(module, command.settings)


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def test_every_command_declares_its_settings_in_a_dataclass():
    declared = {name for name, _, _ in _with_settings()}
    assert declared == set(cli.COMMANDS), set(cli.COMMANDS) - declared


@pytest.mark.parametrize("name", [name for name, command in cli.COMMANDS.items() if command.settings])
def test_each_field_is_a_flag_and_a_run_setting_with_one_default(name):
    command = cli.COMMANDS[name]
    cls = getattr(importlib.import_module(f"openrlhf_distill.{command.module}"), command.settings)
    actions = {a.dest: a for a in _subparser(name)._actions if a.help != argparse.SUPPRESS}
    for field in dataclasses.fields(cls):
        if not field.metadata.get("flag", True):
            continue  # set by the command itself
        flag = actions[settings.dest(field, command.settings_group)]
        assert flag.option_strings == [settings.flag_name(field, command.settings_group)]  # one spelling, OpenRLHF's
        default = _flag_defaults(name, cls).get(field.name, settings.default_of(field))
        assert _as_list(flag.default) == _as_list(default), field.name
        assert flag.required == (field.default is dataclasses.MISSING), field.name
        assert flag.help == field.metadata["help"], field.name
    # the flags parse back into the dataclass with its own defaults
    required = {
        "eval": ["--model", "m", "--task", "gsm8k", "--out", "o.json"],
        "select": ["--candidates", "a,b", "--out", "o", "--dev", "dev.jsonl", "--task", "gsm8k"],
        "label": ["--prompts", "p.jsonl", "--teacher-samples", "t", "--out", "o"],
        "serve-rm": ["--model", "rm"],
        "generate": ["--model", "m", "--prompts", "p.jsonl", "--out", "o", "--role", "teacher"],
        "build": ["--prompts", "p.jsonl", "--labels", "l", "--out", "o"],
        "judge": ["--prompts", "p.jsonl", "--out", "o", "--model", "m"],
        "ppo": [],
        "split": ["--prompts", "p.jsonl", "--labelled", "5", "--out", "o"],
        "doctor": [],
        "report": ["run_dir"],
        "eval-rm": ["--model", "rm"],
        "tiny-model": ["out_dir"],
        "prepare-data": ["--task", "gsm8k", "--split", "test", "--out", "o.jsonl"],
        "sft": [],
        "train-rm": [],
        "run": [],
        "toy-world": ["out_dir"],
    }[name]
    args, _ = cli.build_parser().parse_known_args([name, *required])
    required_fields = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    given = {name: getattr(args, name) for name in required_fields}  # no default to compare with
    if name == "toy-world":  # every flag left out: the default preset's world
        from openrlhf_distill.toy import world

        assert world.settings_from_args(args) == world.PRESETS[world.DEFAULT_PRESET]
    else:
        assert settings.from_args(args, cls, command.settings_group) == cls(**given)
    if command.config_section:
        section = config.DEFAULTS[command.config_section]
        flagged = {f.name for f in dataclasses.fields(cls) if f.metadata.get("flag", True)}
        named = {k: v for k, v in section.items() if k in flagged}
        assert named and all(
            _as_list(settings.default_of(f)) == named[f.name] for f in dataclasses.fields(cls) if f.name in named
        )
        assert {f"{command.config_section}.{k}" for k in named} <= set(config.SETTINGS)


def test_a_value_out_of_range_is_refused_alike_as_a_flag_and_as_a_run_setting(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["eval", "--model", "m", "--task", "gsm8k", "--out", "o", "--k", "0"])
    assert "argument --k: must be an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(config.ConfigError, match=r"eval\.k: must be an integer >= 1, got 0"):
        config.check(config.apply_overrides(config.DEFAULTS, ["--eval.k", "0", "--data.source", "toy"]))


def test_an_earlier_flag_spelling_still_works_but_is_not_shown():
    args, _ = cli.build_parser().parse_known_args(
        ["eval", "--model", "m", "--task", "gsm8k", "--out", "o", "--max-new-tokens", "7", "--n-samples", "3"]
    )
    assert (args.max_new_tokens, args.n_samples) == (7, 3)
    assert "--max-new-tokens" not in _subparser("eval").format_help()
    args, _ = cli.build_parser().parse_known_args(["run", "--dry-run", "--from-stage", "rm", "--until-stage", "ppo"])
    assert (args.dry_run, args.from_stage, args.until_stage) == (True, "rm", "ppo")
    for command in ("sft", "train-rm", "ppo"):
        assert cli.build_parser().parse_known_args([command, "--dry-run"])[0].dry_run
    args, _ = cli.build_parser().parse_known_args(["toy-world", "w", "--n-train", "9", "--teacher-shape", "layers=1"])
    assert (args.n_train, args.teacher_shape) == (9, "layers=1")


def _getattr_args_by_string() -> list[str]:
    found = []
    for root, _, names in os.walk(os.path.join(REPO, "openrlhf_distill")):
        for name in (n for n in names if n.endswith(".py")):
            path = os.path.join(root, name)
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "getattr"
                    and isinstance(node.args[0], ast.Name)
                    and node.args[0].id == "args"
                    and isinstance(node.args[1], ast.Constant)
                ):
                    found.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    return found


def test_no_module_reads_a_flag_by_its_string_name():
    """`getattr(args, "x.y")` is how a hand-declared dotted flag was read; a settings dataclass reads its flags by
    field (`settings.from_args`), so a renamed setting cannot leave a reader behind."""
    assert _getattr_args_by_string() == []


def _groups():
    from openrlhf_distill import ppo
    from openrlhf_distill.compat.gpu_plan import ClusterSettings
    from openrlhf_distill.rewards.schemes import RewardConfig
    from openrlhf_distill.rewards.server import ServerSettings
    from openrlhf_distill.selection import SelectSettings

    return {
        "distill.select": (SelectSettings, ("task",), {}, set()),
        "distill.reward": (RewardConfig, (), {}, set()),
        # ppo's own: the URL of a server already running instead of one it starts
        "distill.rm_server": (ServerSettings, (), ppo.RUN_RM_SERVER_DEFAULTS, {"url"}),
        "distill.cluster": (ClusterSettings, (), {}, set()),  # also the run config's `cluster` section
    }


@pytest.mark.parametrize("group", ["distill.select", "distill.reward", "distill.rm_server", "distill.cluster"])
def test_a_settings_group_inside_ppo_is_the_same_fields_as_the_command_they_come_from(group):
    """ppo's --distill.select.* are `select`'s, --distill.rm_server.* `serve-rm`'s (ppo choosing the address and
    a free port itself), --distill.reward.* the reward function's: one declaration each."""
    cls, excluded, other_defaults, ppos_own = _groups()[group]
    flags = {a.dest: a for a in _subparser("ppo")._actions if a.dest.startswith(group + ".")}
    flagged = [f for f in dataclasses.fields(cls) if f.metadata.get("flag", True) and f.name not in excluded]
    assert set(flags) == {f"{group}.{name}" for name in [f.name for f in flagged] + sorted(ppos_own)}
    for field in flagged:
        flag = flags[f"{group}.{field.name}"]
        assert flag.default == other_defaults.get(field.name, settings.default_of(field)) and not flag.required
        assert flag.help == field.metadata["help"]
    if group == "distill.cluster":
        assert config.DEFAULTS["cluster"] == settings.section_defaults(cls)
        assert {f"cluster.{f.name}" for f in flagged} <= set(config.SETTINGS)


@pytest.mark.parametrize("command", ["generate", "judge", "eval"])
def test_the_backend_flags_of_every_sampling_command_are_the_backends_settings(command):
    from openrlhf_distill.generation import options

    flags = {a.dest: a for a in _subparser(command)._actions if a.help != argparse.SUPPRESS}
    for group, cls in options._BACKEND_SETTINGS.items():
        for field in dataclasses.fields(cls):
            flag = flags[f"{group}.{field.name}"]
            assert flag.option_strings == [f"--{group}.{field.name}"] and flag.help == field.metadata["help"]
            assert flag.default == settings.default_of(field)


def test_adaptive_sampling_flags_and_run_settings_are_its_configs_fields_off_by_default():
    from openrlhf_distill.generation.rounds import ADAPTIVE_OFF, AdaptiveConfig

    flags = {a.dest: a for a in _subparser("generate")._actions if a.dest.startswith("adaptive.")}
    flagged = [f for f in dataclasses.fields(AdaptiveConfig) if f.metadata.get("flag", True)]
    assert set(flags) == {f"adaptive.{f.name}" for f in flagged}
    section = config.DEFAULTS["teacher"]["adaptive"]
    for field in flagged:
        default = ADAPTIVE_OFF.get(field.name, settings.default_of(field))
        assert flags[f"adaptive.{field.name}"].default == default == section[field.name]
    assert {f"teacher.adaptive.{f.name}" for f in flagged} <= set(config.SETTINGS)


def test_the_toy_worlds_arithmetic_flags_are_its_specs_fields_defaulting_to_the_presets():
    from openrlhf_distill.toy import world

    flags = {a.dest: a for a in _subparser("toy-world")._actions if a.help != argparse.SUPPRESS}
    flagged = [f for f in dataclasses.fields(world.ArithmeticSpec) if f.metadata.get("flag", True)]
    assert flagged and all(flags[f.name].default is None and flags[f.name].help == f.metadata["help"] for f in flagged)
    args, _ = cli.build_parser().parse_known_args(["toy-world", "out", "--preset", "chains", "--halve-prob", "0.25"])
    assert world.settings_from_args(args).arithmetic == dataclasses.replace(
        world.PRESETS["chains"].arithmetic, halve_prob=0.25
    )
