"""Every OpenRLHF flag this package spells exists in the installed OpenRLHF, read from its CLI sources."""

import ast
import importlib.util

import pytest

from openrlhf_distill.compat import flags

CLIS = [flags.TRAIN_SFT, flags.TRAIN_RM, flags.TRAIN_PPO_RAY]


def declared_flags(module: str) -> set:
    """The option strings of every ``parser.add_argument`` in an OpenRLHF CLI module (they sit under __main__)."""
    source = open(importlib.util.find_spec(module).origin).read()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            found |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return found


@pytest.mark.parametrize("cli", CLIS, ids=lambda c: c.module)
def test_every_flag_we_spell_is_declared_by_openrlhf(cli):
    declared = declared_flags(cli.module)
    assert len(declared) > 50  # the reader found OpenRLHF's parser, not an empty file
    missing = {name: flag for name, flag in cli.flags.items() if flag not in declared}
    assert not missing, f"{cli.module} no longer declares {missing}"


def test_flag_value_reads_both_spellings_and_the_last_one_wins():
    argv = ["--data.dataset", "a.jsonl", "--ds.zero_stage=3", "--data.dataset=b.jsonl", "--ckpt.output_dir"]
    assert flags.flag_value(argv, "--data.dataset") == "b.jsonl"
    assert flags.flag_value(argv, "--ds.zero_stage") == "3"
    assert flags.flag_value(argv, "--ckpt.output_dir") is None  # no value follows
    assert flags.flag_value(argv, "--data.data") is None  # a prefix is not the flag
    assert flags.has_flag(argv, "--ckpt.output_dir") and not flags.has_flag(argv, "--data.data")
