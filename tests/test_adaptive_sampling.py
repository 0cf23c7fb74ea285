"""`generate --role teacher --adaptive.rule ...` on a real teacher: the toy world's shipped teacher (658k
parameters, right about three times in four) answering toy-world questions on the hf backend.

The exact rule's promise is checked against the samples themselves: with one request per batch
(``--hf.batch_size 1``) a question's samples do not depend on when the others stopped, so
the run that never stops early draws, per question, a superset of the adaptive run's samples, and the `label`
stage gives both the same pseudo-labels."""

import dataclasses
import json
import os
import random

import pytest

from openrlhf_distill.generation import rounds
from openrlhf_distill.generation.generate import SamplingConfig, generate_samples
from openrlhf_distill.generation.rounds import AdaptiveConfig
from openrlhf_distill.label import label_samples
from openrlhf_distill.toy import world

SHIPPED = world.prebuilt_models(dataclasses.replace(world.PRESETS["styles"], n_train=600, n_test=300))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SHIPPED is None, reason="the demo's world ships no models")]


@pytest.fixture(scope="module")
def teacher():
    from openrlhf_distill.generation.hf_backend import HFBackend

    return HFBackend(os.path.join(SHIPPED, "teacher"), batch_size=1, dtype="float32")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    problems = world.generate_problems(16, random.Random(7), world.STYLES_ARITHMETIC, set())
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    with open(path, "w") as f:
        for i, problem in enumerate(problems):
            f.write(json.dumps(world._prompt_record("test", i, problem)) + "\n")
    return str(path)


def _config(**changes):
    settings = dict(
        role="teacher",
        temperatures=(0.3, 0.7, 1.0),
        n_per_temperature=4,
        max_new_tokens=16,
        shard_size=8,
        adaptive=AdaptiveConfig(rule="exact"),
    )
    return SamplingConfig(**{**settings, **changes})


def _run(prompts, out, teacher, config, **kwargs):
    return generate_samples(
        prompts,
        str(out),
        model="teacher",
        backend="hf",
        config=config,
        make_backend=lambda: teacher,
        progress=False,
        **kwargs,
    )


def _samples(out):
    rows = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("shard-"):
            with open(os.path.join(out, name)) as f:
                for line in f:
                    row = json.loads(line)
                    rows[(row["id"], row["sample_index"])] = row
    return rows


def _labels(prompts, samples, out):
    label_samples(prompts, str(samples), str(out))
    with open(os.path.join(out, "votes.jsonl")) as f:
        return {row["id"]: row["pseudo_label"] for row in map(json.loads, f)}


def test_the_exact_rule_draws_fewer_samples_and_labels_as_the_full_budget(tmp_path, prompts, teacher, monkeypatch):
    summary = _run(prompts, tmp_path / "adaptive", teacher, _config())
    adaptive = _samples(tmp_path / "adaptive")
    stops = {}
    for name in sorted(os.listdir(tmp_path / "adaptive")):
        if name.startswith("stops-"):
            stops.update(json.load(open(tmp_path / "adaptive" / name)))
    assert len(stops) == 16 and summary["adaptive"]["samples_drawn"] == len(adaptive) == summary["samples"]
    assert summary["adaptive"]["samples_budget"] == 16 * 12
    # one sample a round: a unanimous vote of 12 is settled at its 7th sample
    assert summary["adaptive"]["share_of_budget"] < 0.8 and summary["adaptive"]["stop_reasons"]["settled"] >= 8
    for qid, stop in stops.items():
        drawn = sorted(k for (i, k) in adaptive if i == qid)
        assert len(drawn) == stop["drawn"] == stop["round"] + 1 >= 7
        # the first samples of the order that cycles through the temperatures: t0 k0, t1 k0, t2 k0, t0 k1, ...
        assert drawn == sorted(t * 4 + k for t, k in rounds.draw_order(3, 4)[: stop["drawn"]])
        assert stop["reason"] in ("settled", "budget") and (stop["reason"] == "budget") == (stop["drawn"] == 12)

    # The same stream, never stopped early: every question draws its whole budget.
    monkeypatch.setattr(rounds, "_decide", lambda tally, remaining, config, eq: "budget" if remaining == 0 else None)
    full = _run(prompts, tmp_path / "full", teacher, _config())
    assert full["adaptive"]["samples_drawn"] == 16 * 12
    whole = _samples(tmp_path / "full")
    assert all(whole[key]["response"] == row["response"] for key, row in adaptive.items())
    assert _labels(prompts, tmp_path / "adaptive", tmp_path / "l1") == _labels(
        prompts, tmp_path / "full", tmp_path / "l2"
    )


def test_a_killed_adaptive_run_resumes_to_the_samples_and_stops_of_an_uninterrupted_one(tmp_path, prompts, teacher):
    _run(prompts, tmp_path / "whole", teacher, _config())

    class Killed(Exception):
        pass

    class DiesInTheSecondShard:
        """The real backend, killed in the second round of the second shard (no vote settles at one sample)."""

        first_shard, later_calls = None, 0

        def generate(self, requests):
            prompts = {json.dumps(r.prompt) for r in requests}
            self.first_shard = self.first_shard or prompts
            if not prompts <= self.first_shard:
                self.later_calls += 1
                if self.later_calls == 2:
                    raise Killed
            return teacher.generate(requests)

        def close(self):
            pass

    dying = DiesInTheSecondShard()
    with pytest.raises(Killed):
        generate_samples(
            prompts,
            str(tmp_path / "killed"),
            model="teacher",
            backend="hf",
            config=_config(),
            make_backend=lambda: dying,
            progress=False,
        )
    left = sorted(os.listdir(tmp_path / "killed"))
    assert "summary.json" not in left and left.count("shard-00000.jsonl") == 1 and "stops-00000.json" in left
    assert "shard-00001.jsonl" not in left
    _run(prompts, tmp_path / "killed", teacher, _config())
    assert _samples(tmp_path / "killed") == _samples(tmp_path / "whole")
    for name in ("stops-00000.json", "stops-00001.json"):
        assert json.load(open(tmp_path / "killed" / name)) == json.load(open(tmp_path / "whole" / name))


def test_the_beta_rule_stops_sooner_and_settings_are_checked(tmp_path, prompts, teacher):
    exact = _run(prompts, tmp_path / "exact", teacher, _config(shard_size=16))
    beta_config = _config(shard_size=16, adaptive=AdaptiveConfig(rule="beta", confidence=0.9))
    beta = _run(prompts, tmp_path / "beta", teacher, beta_config)
    assert beta["adaptive"]["samples_drawn"] <= exact["adaptive"]["samples_drawn"]
    assert set(beta["adaptive"]["stop_reasons"]) <= {"confident", "budget"}
    with pytest.raises(ValueError, match="--role teacher"):
        _config(role="student").check()
    with pytest.raises(ValueError, match="adaptive.confidence"):
        _config(adaptive=AdaptiveConfig(rule="beta", confidence=1.0)).check()
    with pytest.raises(ValueError, match="no temperature"):
        _config(adaptive=AdaptiveConfig(max_temperature=0.1)).check()
