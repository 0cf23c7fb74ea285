"""Reads a run directory into one results object (``results.json``).

Every file is optional: what is there is reported, what was expected and is absent (or cannot be read) is listed
under ``missing`` with the reason. The layout read (written by the pipeline):

- ``run.json``: ``task``, ``seeds``, ``config``;
- ``stages/<stage>.json``: ``stage``, ``seed``, ``wall_seconds``, ``samples``, ``tokens``, ``fingerprint``;
- ``labels/metrics.json`` (+ ``labels/votes.jsonl``): the teacher's vote (``openrlhf-distill label``);
- ``seed<k>/labels/metrics.json``: the same with the seed's student samples labelled;
- ``seed<k>/rm_eval.json``, ``seed<k>/rm_scores.jsonl``: ``openrlhf-distill eval-rm`` (``--out``, ``--scores_out``);
- ``seed<k>/rl_<scheme>/distill_ppo/metrics.jsonl`` (+ ``summary.json``): ``openrlhf-distill ppo``;
- ``eval/<name>_seed<k>.json`` (or ``eval/<name>.json`` for a model evaluated once): one evaluated model.

Tasks whose responses have styles (the toy world's arithmetic: "worked" steps or the "direct" answer alone) add,
only then, ``styles`` (from the evaluations' ``styles``: per model, each style's share of the greedy and of the
sampled answers and the accuracy within it, means over seeds) and, in ``reward_model``, ``gold_pairs_by_type``
(eval-rm's gold-pair accuracy by "<style of the right>_vs_<style of the wrong>", per seed and mean over seeds).
"""

from __future__ import annotations

import json
import math
import os
import re

from ..records import PARTIAL_SUFFIX
from ..stats import mean, sample_std, t_interval

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"

# The paper's table, in its order; other models (ablations) come after rl_judge and before the gold upper bound.
MODEL_ORDER = (
    "teacher",
    "student_base",
    "sft",
    "rl_rm",
    "rl_vote",
    "rl_vote_labelled",
    "rl_hybrid",
    "rl_hybrid_labelled",
    "rl_judge",
    "rl_random",
    "rl_style",
)
LAST_MODELS = ("rl_gold",)
DESCRIPTIONS = {
    "teacher": "teacher",
    "student_base": "student before training",
    "sft": 'SFT only (paper: "Ours w/o R")',
    "rl_rm": "SFT + RL, distilled reward model (the paper's method)",
    "rl_vote": "SFT + RL, rule reward on the teacher's vote",
    "rl_vote_labelled": "SFT + RL, rule reward on the teacher's vote, on the labelled prompts only",
    "rl_hybrid": "SFT + RL, reward model + vote reward",
    "rl_hybrid_labelled": "SFT + RL, reward model + vote reward, on the labelled prompts only",
    "rl_judge": "SFT + RL, reward model on teacher-judge labels",
    "rl_random": "SFT + RL, random reward (control: a gain it also brings is not the RM's)",
    "rl_style": "SFT + RL, reward for the worked style only (control: what rewarding the style alone brings)",
    "rl_gold": "SFT + RL, gold reward: upper bound, reads gold labels",
}
# Models whose result does not depend on the pipeline's seed: one evaluation is enough.
SEED_INDEPENDENT = ("teacher", "student_base")

CI_METHOD = (
    "summary.ci95_mean and comparisons[].ci95: two-sided 95% Student t-interval of the mean over seeds, "
    "mean +- t(0.975, n_seeds - 1) * std / sqrt(n_seeds), std with ddof = 1, cut to the range the quantity lives "
    "in (an accuracy [0, 1], a difference of accuracies [-1, 1]); null with fewer than 2 seeds. "
    "rows[].ci95: the evaluator's interval over questions for one evaluation (see rows[].ci_method)."
)

_EVAL_FILE = re.compile(r"^(?P<name>.+?)(?:_seed(?P<seed>\d+))?\.json$")
_SEED_DIR = re.compile(r"^seed(\d+)$")


def model_kind(name: str) -> str:
    """teacher | baseline | sft | rl | upper_bound | ablation | other."""
    if name == "teacher":
        return "teacher"
    if name == "student_base":
        return "baseline"
    if name == "sft":
        return "sft"
    if name == "rl_gold":
        return "upper_bound"
    if name in MODEL_ORDER:
        return "rl"
    if ablation_of(name):
        return "ablation"
    return "rl" if name.startswith("rl_") else "other"


def ablation_of(name: str) -> str | None:
    """The model an ablation varies (``rl_rm_teacher_only`` -> ``rl_rm``), or None."""
    for base in sorted((*MODEL_ORDER, *LAST_MODELS), key=len, reverse=True):
        if name.startswith(base + "_"):
            return base
    return None


def describe_model(name: str) -> str:
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    base = ablation_of(name)
    if base:
        return f"ablation of {base}: {name[len(base) + 1 :].replace('_', ' ')}"
    if name.startswith("rl_"):
        return f"SFT + RL, {name[3:]} reward"
    return name


def model_sort_key(name: str) -> tuple:
    if name in MODEL_ORDER:
        return (0, MODEL_ORDER.index(name), "")
    if name in LAST_MODELS:
        return (2, LAST_MODELS.index(name), "")
    return (1, 0, name)


def _seed_key(seed) -> tuple:
    return (seed is not None, -1 if seed is None else seed)


class _Reader:
    """Reads files relative to the run dir, noting what is absent or unreadable."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.missing: dict[str, dict] = {}

    def path(self, rel: str) -> str:
        return os.path.join(self.run_dir, rel)

    def note(self, rel: str, what: str, reason: str) -> None:
        self.missing.setdefault(rel, {"path": rel, "what": what, "reason": reason})

    def json(self, rel: str, what: str, *, expected: bool = True):
        if not os.path.isfile(self.path(rel)):
            if expected:
                self.note(rel, what, "absent")
            return None
        try:
            with open(self.path(rel), encoding="utf-8") as f:
                value = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self.note(rel, what, f"unreadable: {error}")
            return None
        if not isinstance(value, dict):
            self.note(rel, what, f"unreadable: expected a JSON object, got {type(value).__name__}")
            return None
        return value

    def jsonl(self, rel: str, what: str, *, expected: bool = True) -> list[dict] | None:
        """The JSON objects of a JSON Lines file; a bad line (e.g. the last line of a run still writing) is
        skipped and counted in ``missing``."""
        if not os.path.isfile(self.path(rel)):
            if expected:
                self.note(rel, what, "absent")
            return None
        rows, bad = [], []
        try:
            with open(self.path(rel), encoding="utf-8") as f:
                for number, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        row = None
                    if isinstance(row, dict):
                        rows.append(row)
                    else:
                        bad.append(number)
        except (OSError, UnicodeDecodeError) as error:
            self.note(rel, what, f"unreadable: {error}")
            return None
        if bad:
            self.note(rel, what, f"{len(bad)} unreadable line(s) skipped (first: line {bad[0]})")
        return rows


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _pair(value) -> list | None:
    """A [lo, hi] interval, or None when the value is not one."""
    ok = isinstance(value, list) and len(value) == 2 and all(_number(v) is not None for v in value)
    return value if ok else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _share(entry) -> tuple[float | None, int | None]:
    """``{"value", "n"}`` of labelling's metrics.json as (value, n)."""
    if not isinstance(entry, dict):
        return None, None
    return _number(entry.get("value")), entry.get("n")


# --- seeds and run.json ----------------------------------------------------------------------------------------


def _discover_seeds(run_dir: str) -> list[int]:
    seeds = set()
    for name in os.listdir(run_dir):
        match = _SEED_DIR.match(name)
        if match and os.path.isdir(os.path.join(run_dir, name)):
            seeds.add(int(match.group(1)))
    return sorted(seeds)


def _strings(value) -> list[str] | None:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else None


def _configured(config) -> dict:
    """What the run's resolved config (run.json, from the pipeline) says should exist: the models evaluated once
    (``eval.models``), the RL runs of the reward schemes (``ppo.schemes``; ``vote_labelled`` for ``vote`` with a
    teacher budget) and the RM ablations (``rm.ablations``, each an RL run ``rl_rm_<ablation>``). Without a
    config: the teacher and the base student, the ``rm`` scheme, no ablation."""
    config = config if isinstance(config, dict) else {}

    def get(section, key):
        holder = config.get(section)
        return _strings(holder.get(key)) if isinstance(holder, dict) else None

    from ..pipeline.stages import rl_run_name
    from ..rewards.schemes import LABEL_SCHEMES

    schemes = get("ppo", "schemes") or get("rl", "schemes") or _strings(config.get("schemes")) or ["rm"]
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    budget = bool(data.get("labelled_questions"))  # a teacher budget: the vote's runs are rl_vote_labelled
    names = [rl_run_name(s, labelled_only=budget and s in LABEL_SCHEMES)[3:] for s in schemes]
    base = get("eval", "models")
    return {
        "base_models": list(SEED_INDEPENDENT) if base is None else base,
        "rl_schemes": names + [f"rm_{a}" for a in get("rm", "ablations") or []],
    }


# --- evaluations -----------------------------------------------------------------------------------------------


def _read_rows(reader: _Reader) -> list[dict]:
    folder = reader.path("eval")
    if not os.path.isdir(folder):
        reader.note("eval", "evaluations of the models (eval/<name>_seed<k>.json)", "absent")
        return []
    rows, seen = [], {}
    for file in sorted(os.listdir(folder)):
        match = _EVAL_FILE.match(file)
        if not match or file.startswith(".") or not os.path.isfile(os.path.join(folder, file)):
            continue
        rel = f"eval/{file}"
        data = reader.json(rel, "evaluation of a model")
        if data is None:
            continue
        name = data.get("name") if isinstance(data.get("name"), str) else match.group("name")
        seed = data.get("seed", None if match.group("seed") is None else int(match.group("seed")))
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            reader.note(rel, "evaluation of a model", f"unreadable: field 'seed' must be an integer, got {seed!r}")
            continue
        accuracy = _number(data.get("accuracy"))
        if accuracy is None:
            reader.note(
                rel,
                "evaluation of a model",
                f"unreadable: field 'accuracy' must be a number, got {data.get('accuracy')!r}",
            )
            continue
        if (name, seed) in seen:
            reader.note(
                rel, "evaluation of a model", f"duplicate of {seen[(name, seed)]} (same name and seed); ignored"
            )
            continue
        seen[(name, seed)] = rel
        row = {
            "name": name,
            "seed": seed,
            "task": data.get("task"),
            "split": data.get("split"),
            "decoding": data.get("decoding"),
            "n": data.get("n"),
            "accuracy": accuracy,
            "ci95": _pair(data.get("ci95")),
            "ci_method": data.get("ci_method"),
            "no_answer_rate": data.get("no_answer_rate"),
            "tokens_generated": data.get("tokens_generated"),
            "wall_seconds": data.get("wall_seconds"),
            "file": rel,
        }
        for key in ("maj_at_k", "pass_at_k", "per_category", "styles"):
            if data.get(key) is not None:
                row[key] = data[key]
        rows.append(row)
    rows.sort(key=lambda r: (model_sort_key(r["name"]), _seed_key(r["seed"])))
    return rows


def _summary(rows: list[dict]) -> dict:
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    summary = {}
    for name in sorted(by_name, key=model_sort_key):
        group = by_name[name]
        values = [r["accuracy"] for r in group]
        entry = {
            "description": describe_model(name),
            "kind": model_kind(name),
            "n_seeds": len(group),
            "seeds": [r["seed"] for r in group],
            "per_seed": [
                {"seed": r["seed"], "accuracy": r["accuracy"], "ci95": r["ci95"], "n": r["n"]} for r in group
            ],
            "mean": mean(values),
            "std": sample_std(values),
            "min": min(values),
            "max": max(values),
            "ci95_mean": t_interval(values, within=(0.0, 1.0)),
            "ci95_mean_method": "t-interval over seeds, cut to [0, 1]" if len(values) >= 2 else None,
            "n_questions": sorted({r["n"] for r in group if isinstance(r["n"], int)}),
        }
        for key in ("maj_at_k", "pass_at_k"):
            at_k = [
                r[key] for r in group if isinstance(r.get(key), dict) and _number(r[key].get("accuracy")) is not None
            ]
            if at_k:
                entry[key] = {
                    "k": sorted({a.get("k") for a in at_k if isinstance(a.get("k"), int)}),
                    "n_seeds": len(at_k),
                    "mean": mean([a["accuracy"] for a in at_k]),
                    "ci95_mean": t_interval([a["accuracy"] for a in at_k], within=(0.0, 1.0)),
                }
        categories: dict[str, list[float]] = {}
        for r in group:
            for category, value in _dict(r.get("per_category")).items():
                if isinstance(value, dict) and _number(value.get("accuracy")) is not None:
                    categories.setdefault(str(category), []).append(value["accuracy"])
        if categories:
            entry["per_category"] = {
                c: {"n_seeds": len(v), "mean": mean(v), "ci95_mean": t_interval(v, within=(0.0, 1.0))}
                for c, v in sorted(categories.items())
            }
        summary[name] = entry
    return summary


def _over_seeds(values: list) -> dict | None:
    """Mean, spread and t-interval of the numbers among ``values`` (None where there are none)."""
    values = [v for v in values if _number(v) is not None]
    if not values:
        return None
    ci = t_interval(values, within=(0.0, 1.0))  # shares and accuracies
    return {"n_seeds": len(values), "mean": mean(values), "std": sample_std(values), "ci95_mean": ci}


def _styles(rows: list[dict]) -> dict | None:
    """The evaluations' ``styles``, per model: for the greedy and the sampled answers, each style's share and the
    accuracy within it, over the seeds that report them; None when no evaluation has styles."""
    with_styles = [r for r in rows if isinstance(r.get("styles"), dict)]
    if not with_styles:
        return None
    names: dict[str, None] = {}  # every style met, in the evaluations' order (the task's)
    for row in with_styles:
        for decoding in ("greedy", "sampled"):
            names.update(dict.fromkeys(str(style) for style in _dict(row["styles"].get(decoding))))
    models: dict[str, dict] = {}
    for name in sorted({r["name"] for r in with_styles}, key=model_sort_key):
        group = [r for r in with_styles if r["name"] == name]  # rows are sorted by seed
        entry: dict = {"n_seeds": len(group), "seeds": [r["seed"] for r in group]}
        for decoding in ("greedy", "sampled"):
            per_seed = [_dict(r["styles"].get(decoding)) for r in group]
            per_seed = [p for p in per_seed if p]
            entry[decoding] = (
                {
                    style: {
                        "share": _over_seeds([_dict(p.get(style)).get("share") for p in per_seed]),
                        "accuracy": _over_seeds([_dict(p.get(style)).get("accuracy") for p in per_seed]),
                    }
                    for style in names
                }
                if per_seed
                else None
            )
        models[name] = entry
    return {"styles": list(names), "models": models}


# --- comparisons -----------------------------------------------------------------------------------------------


_AGAINST_SFT = {  # the controls' difference with SFT says something else than "what RL adds"
    "rl_random": "what RL with a random reward adds on top of SFT (control: a gain here is not the reward's)",
    "rl_style": "what RL rewarding the worked style alone adds on top of SFT (control)",
}


def _comparison_pairs(names: list[str]) -> list[tuple[str, str, str]]:
    """(a, b, why): differences a - b worth reading, for the models present."""
    present = set(names)
    rl = [n for n in names if model_kind(n) in ("rl", "upper_bound", "ablation")]
    pairs = [("sft", "student_base", "what SFT on the teacher's answers adds")]
    pairs += [("sft", "teacher", "SFT student against its teacher")]
    pairs += [(n, "sft", _AGAINST_SFT.get(n, "what RL adds on top of SFT")) for n in rl]
    pairs += [(n, "teacher", "student after RL against its teacher") for n in rl]
    pairs += [("rl_rm", "rl_vote", "learned reward model against the rule reward on the same vote")]
    pairs += [
        (
            "rl_rm",
            "rl_vote_labelled",
            "the RM on every prompt against the vote reward on the labelled prompts only (equal PPO steps)",
        )
    ]
    pairs += [
        (
            "rl_rm",
            "rl_style",
            "the distilled RM against rewarding the worked style alone: what it adds beyond the style",
        )
    ]
    pairs += [("rl_gold", "rl_rm", "how far the distilled reward is from the gold upper bound")]
    pairs += [(n, ablation_of(n), "ablation against the full method") for n in rl if model_kind(n) == "ablation"]
    out, seen = [], set()
    for a, b, why in pairs:
        if a in present and b in present and (a, b) not in seen:
            seen.add((a, b))
            out.append((a, b, why))
    return out


def _seed_free(name: str, per_seed: dict) -> bool:
    """Evaluated once, and that one result stands for every seed: a model the seed does not change (teacher,
    base student), or an evaluation without a seed."""
    return len(per_seed) == 1 and (name in SEED_INDEPENDENT or None in per_seed)


def _compare(a: str, b: str, why: str, summary: dict) -> dict | None:
    """a - b: paired by seed; a seed-free side (see _seed_free) is compared with every seed of the other."""
    per_a = {p["seed"]: p["accuracy"] for p in summary[a]["per_seed"]}
    per_b = {p["seed"]: p["accuracy"] for p in summary[b]["per_seed"]}
    free_a, free_b = _seed_free(a, per_a), _seed_free(b, per_b)
    if free_b and not free_a:
        pairing = f"every seed of {a} against the single evaluation of {b}"
        (only_b,) = per_b.values()
        pairs = [(s, per_a[s], only_b) for s in sorted(per_a, key=_seed_key)]
    elif free_a and not free_b:
        pairing = f"the single evaluation of {a} against every seed of {b}"
        (only_a,) = per_a.values()
        pairs = [(s, only_a, per_b[s]) for s in sorted(per_b, key=_seed_key)]
    else:
        common = sorted((s for s in per_a if s in per_b), key=_seed_key)
        if not common:
            return None
        pairing = "by seed"
        pairs = [(s, per_a[s], per_b[s]) for s in common]
    diffs = [x - y for _, x, y in pairs]
    return {
        "name": f"{a} - {b}",
        "a": a,
        "b": b,
        "what": why,
        "pairing": pairing,
        "per_seed": [{"seed": s, "a": x, "b": y, "diff": x - y} for s, x, y in pairs],
        "mean_diff": mean(diffs),
        "std_diff": sample_std(diffs),
        "ci95": t_interval(diffs, within=(-1.0, 1.0)),
        "ci95_method": "t-interval over paired seed differences, cut to [-1, 1]" if len(diffs) >= 2 else None,
    }


# --- pseudo-labels, reward model, RL, compute ------------------------------------------------------------------


def _label_metrics(metrics: dict) -> dict:
    questions = _dict(metrics.get("questions"))
    label_accuracy, label_n = _share(metrics.get("label_accuracy"))
    out = {
        "questions": questions.get("total"),
        "accepted": questions.get("accepted"),
        "coverage": _number(questions.get("coverage")),
        "dropped": _dict(questions.get("dropped")),
        "label_accuracy": label_accuracy,
        "label_accuracy_n": label_n,
        "majority_ratio_histogram": metrics.get("majority_ratio_histogram") or None,
    }
    for source in ("teacher", "student"):
        accuracy, n = _share(_dict(metrics.get("sample_accuracy_vs_gold")).get(source))
        reward, reward_n = _share(_dict(metrics.get("reward_accuracy")).get(source))
        counts = _dict(_dict(metrics.get("samples")).get(source))
        if accuracy is None and reward is None and not counts:
            continue
        count = {k: _number(counts.get(k)) or 0 for k in ("read", "no_answer", "label_0", "label_1")}
        labelled = count["label_0"] + count["label_1"]
        out[source] = {
            "samples": count["read"] if counts else None,
            "no_answer": count["no_answer"] if counts else None,
            "labelled": labelled if counts else None,
            "label_1_share": count["label_1"] / labelled if labelled else None,
            "accuracy_vs_gold": accuracy,
            "accuracy_vs_gold_n": n,
            "reward_accuracy": reward,
            "reward_accuracy_n": reward_n,
        }
    return out


def _vote_details(votes: list[dict]) -> dict:
    """Mean majority ratio and label accuracy per majority-ratio bin, from votes.jsonl."""
    ratios = [v["majority_ratio"] for v in votes if _number(v.get("majority_ratio")) is not None and v.get("valid")]
    bins: dict[str, list[int]] = {}
    for vote in votes:
        ratio = _number(vote.get("majority_ratio"))
        if vote.get("accepted") and ratio is not None and isinstance(vote.get("label_correct"), bool):
            b = min(int(ratio * 10), 9)
            bins.setdefault(f"{b / 10:.1f}-{(b + 1) / 10:.1f}", []).append(int(vote["label_correct"]))
    return {
        "majority_ratio_mean": mean(ratios),
        "majority_ratio_mean_n": len(ratios),
        "label_accuracy_by_majority_ratio": {
            k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(bins.items())
        }
        or None,
    }


def _pseudo_labels(reader: _Reader, seeds: list[int]) -> dict:
    out = {"teacher": None, "seeds": []}
    metrics = reader.json("labels/metrics.json", "teacher vote metrics (openrlhf-distill label)")
    if metrics is not None:
        out["teacher"] = {"file": "labels/metrics.json", **_label_metrics(metrics)}
        votes = reader.jsonl("labels/votes.jsonl", "teacher votes", expected=False)
        if votes:
            out["teacher"].update(_vote_details(votes))
    for seed in seeds:
        rel = f"seed{seed}/labels/metrics.json"
        metrics = reader.json(rel, f"seed {seed}: label metrics with the student's samples")
        if metrics is not None:
            out["seeds"].append({"seed": seed, "file": rel, **_label_metrics(metrics)})
    return out


def read_rm_scores(path: str) -> list[dict]:
    """The student rows of an rm_scores.jsonl with a numeric score (what the histograms and the summary use)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            if (
                isinstance(row, dict)
                and _number(row.get("score")) is not None
                and row.get("source", "student") == "student"
            ):
                rows.append(row)
    return rows


def _score_summary(rows: list[dict]) -> dict:
    from ..stats import auc

    good = [r["score"] for r in rows if r.get("gold_correct") is True]
    bad = [r["score"] for r in rows if r.get("gold_correct") is False]
    pseudo = [r for r in rows if isinstance(r.get("pseudo_correct"), bool)]
    return {
        "n": len(rows),
        "n_gold_correct": len(good),
        "n_gold_incorrect": len(bad),
        "mean_score_gold_correct": mean(good),
        "mean_score_gold_incorrect": mean(bad),
        "auc_gold": auc(good + bad, [1] * len(good) + [0] * len(bad)),
        "auc_pseudo": auc([r["score"] for r in pseudo], [int(r["pseudo_correct"]) for r in pseudo]),
    }


def _reward_model(reader: _Reader, seeds: list[int]) -> dict:
    entries = []
    for seed in seeds:
        rel = f"seed{seed}/rm_eval.json"
        data = reader.json(rel, f"seed {seed}: reward-model evaluation (openrlhf-distill eval-rm --out)")
        entry = {"seed": seed, "file": rel if data is not None else None}
        if data is not None:
            pseudo, gold, points = (_dict(data.get(k)) for k in ("pseudo_pairs", "gold_pairs", "points"))
            best = _dict(data.get("best_of_n"))
            entry.update(
                {
                    "pseudo_pairs_accuracy": _number(pseudo.get("accuracy")),
                    "pseudo_pairs_n": pseudo.get("n"),
                    "gold_pairs_accuracy": _number(gold.get("accuracy")),
                    "gold_pairs_n": gold.get("n"),
                    "auc": _number(points.get("auc")),
                    "ece": _number(points.get("ece")),
                    "points_n": points.get("n"),
                    "best_of_n": {k: _number(best.get(k)) for k in ("rm_top", "random", "majority", "questions")}
                    if best
                    else None,
                }
            )
            by_type = _dict(data.get("gold_pairs_by_type"))
            if by_type:  # only for tasks with response styles
                entry["gold_pairs_by_type"] = {
                    str(kind): {"accuracy": _number(_dict(v).get("accuracy")), "n": _dict(v).get("n")}
                    for kind, v in by_type.items()
                }
        scores_rel = f"seed{seed}/rm_scores.jsonl"
        if os.path.isfile(reader.path(scores_rel)):
            entry["scores"] = {"file": scores_rel, **_score_summary(read_rm_scores(reader.path(scores_rel)))}
        else:
            reader.note(
                scores_rel, f"seed {seed}: per-sample RM scores (openrlhf-distill eval-rm --scores_out)", "absent"
            )
            entry["scores"] = None
        if entry["file"] or entry["scores"]:
            entries.append(entry)

    def over_seeds(get) -> dict | None:
        values = [v for v in (get(e) for e in entries) if _number(v) is not None]
        if not values:
            return None
        ci = t_interval(values, within=(0.0, 1.0))  # accuracies, AUC and calibration error all lie in [0, 1]
        return {"mean": mean(values), "std": sample_std(values), "n_seeds": len(values), "ci95": ci}

    kinds: dict[str, None] = {}  # pair types in eval-rm's order, over the seeds
    for e in entries:
        kinds.update(dict.fromkeys(e.get("gold_pairs_by_type") or {}))
    means = {
        "pseudo_pairs_accuracy": over_seeds(lambda e: e.get("pseudo_pairs_accuracy")),
        "gold_pairs_accuracy": over_seeds(lambda e: e.get("gold_pairs_accuracy")),
        "auc": over_seeds(lambda e: e.get("auc")),
        "ece": over_seeds(lambda e: e.get("ece")),
        "best_of_n_rm_top": over_seeds(lambda e: (e.get("best_of_n") or {}).get("rm_top")),
        "best_of_n_random": over_seeds(lambda e: (e.get("best_of_n") or {}).get("random")),
        "best_of_n_majority": over_seeds(lambda e: (e.get("best_of_n") or {}).get("majority")),
    }
    if kinds:

        def accuracy_of(kind):
            return lambda e: ((e.get("gold_pairs_by_type") or {}).get(kind) or {}).get("accuracy")

        means["gold_pairs_by_type"] = {kind: over_seeds(accuracy_of(kind)) for kind in kinds}
    return {"seeds": entries, "mean_over_seeds": means}


def _series(steps: list[dict], key: str) -> list | None:
    values = [_number(s.get(key)) for s in steps]
    return values if any(v is not None for v in values) else None


def _first_last(values: list | None) -> tuple:
    present = [v for v in values or [] if v is not None]
    return (present[0], present[-1]) if present else (None, None)


def _rl(reader: _Reader, seeds: list[int], expected_schemes: set[str]) -> list[dict]:
    runs = []
    for seed in seeds:
        folder = reader.path(f"seed{seed}")
        found = set()
        if os.path.isdir(folder):
            # A run still being written (or killed) is rl_SCHEME.partial: not a scheme of its own.
            found = {
                n[3:]
                for n in os.listdir(folder)
                if n.startswith("rl_") and PARTIAL_SUFFIX not in n and os.path.isdir(os.path.join(folder, n))
            }
        for scheme in sorted(found | expected_schemes, key=lambda scheme: model_sort_key(f"rl_{scheme}")):
            rel = f"seed{seed}/rl_{scheme}/distill_ppo/metrics.jsonl"
            steps = reader.jsonl(rel, f"seed {seed}: PPO steps of the {scheme} scheme (openrlhf-distill ppo)")
            if steps is None:
                continue
            steps = sorted(steps, key=lambda s: s.get("step") if isinstance(s.get("step"), int) else -1)
            summary = reader.json(
                f"seed{seed}/rl_{scheme}/distill_ppo/summary.json", "PPO run summary", expected=False
            )
            selection = reader.json(
                f"seed{seed}/rl_{scheme}/distill_ppo/selection.json", "checkpoint choice", expected=False
            )
            reward, gold = _series(steps, "rollout/reward_mean"), _series(steps, "distill/gold_correct")
            pseudo = _series(steps, "distill/pseudo_correct")
            runs.append(
                {
                    "seed": seed,
                    "scheme": scheme,
                    "file": rel,
                    "n_steps": len(steps),
                    "steps": [s.get("step") for s in steps],
                    "reward_mean": reward,
                    "gold_correct": gold,
                    "pseudo_correct": pseudo,
                    "reward_mean_first": _first_last(reward)[0],
                    "reward_mean_last": _first_last(reward)[1],
                    "gold_correct_first": _first_last(gold)[0],
                    "gold_correct_last": _first_last(gold)[1],
                    "wall_seconds": (summary or {}).get("wall_seconds"),
                    "selection": _checkpoint_choice(selection),
                }
            )
    return runs


def _scored_candidates(selection, key: str) -> list[dict] | None:
    """The candidates of a selection.json (``selection``), each as {key, dev_agreement, gold}; None if unreadable."""
    if not isinstance(selection, dict) or not isinstance(selection.get("candidates"), list):
        return None
    return [
        {key: c.get(key), "dev_agreement": _number(c.get("dev_agreement")), "gold": _number(c.get("gold_accuracy"))}
        for c in selection["candidates"]
        if isinstance(c, dict)
    ]


def _checkpoint_choice(selection) -> dict | None:
    """What ``ppo --distill.select.dev`` chose (selection.json): each saved actor's dev agreement and gold accuracy,
    the chosen step, and the gold accuracy of the chosen and of the last actor."""
    curve = _scored_candidates(selection, "step")
    if curve is None:
        return None
    by_step = {point["step"]: point for point in curve}
    chosen, last = by_step.get(selection.get("chosen_step"), {}), by_step.get(selection.get("last_step"), {})
    return {
        "chosen_step": selection.get("chosen_step"),
        "last_step": selection.get("last_step"),
        "curve": curve,
        "gold_chosen": chosen.get("gold"),
        "gold_last": last.get("gold"),
    }


def _sft_choice(reader: _Reader, seeds: list[int]) -> list[dict]:
    """The SFT sweep of each seed (``select``'s selection.json in student_sft/): each setting's dev agreement and
    gold accuracy, and the one chosen."""
    out = []
    for seed in seeds:
        selection = reader.json(f"seed{seed}/student_sft/selection.json", "SFT sweep choice", expected=False)
        settings = _scored_candidates(selection, "name")
        if settings is not None:
            out.append({"seed": seed, "chosen": selection.get("chosen"), "settings": settings})
    return out


def _choice_over_seeds(runs: list[dict]) -> dict:
    """Per RL run name: gold accuracy of the chosen actor minus the last one's, per seed and over seeds."""
    by_scheme: dict[str, list] = {}
    for run in runs:
        choice = run.get("selection")
        if choice and choice["gold_chosen"] is not None and choice["gold_last"] is not None:
            by_scheme.setdefault(run["scheme"], []).append((run["seed"], choice["gold_chosen"] - choice["gold_last"]))
    return {
        scheme: {
            "per_seed": [{"seed": seed, "diff": diff} for seed, diff in pairs],
            "mean_diff": mean([d for _, d in pairs]),
            "ci95": t_interval([d for _, d in pairs], within=(-1.0, 1.0)),
        }
        for scheme, pairs in by_scheme.items()
    }


def _sum(values) -> float | int | None:
    present = [v for v in values if _number(v) is not None]
    return sum(present) if present else None


def _stage_order() -> tuple:
    """The pipeline's stage order, for sorting only: any failure to import it just leaves records by file name."""
    try:
        from ..pipeline.stages import STAGE_NAMES
    except Exception:  # ordering is cosmetic: the report must not depend on the pipeline importing
        return ()
    return tuple(STAGE_NAMES)


def _compute(reader: _Reader, rows: list[dict]) -> dict:
    """Stage records of the pipeline runner (``stages/<key>.json``), in pipeline order; the report's own record is
    left out (it is being written while the report runs); a record not ``done`` is listed under ``missing``."""
    stages = []
    folder = reader.path("stages")
    if not os.path.isdir(folder):
        reader.note("stages", "per-stage compute records (stages/<stage>.json)", "absent")
    else:
        for file in sorted(f for f in os.listdir(folder) if f.endswith(".json")):
            rel = f"stages/{file}"
            data = reader.json(rel, "compute record of a stage")
            if data is None or data.get("stage") == "report":
                continue
            status = data.get("status")
            if status is not None and status != "done":
                reader.note(
                    rel,
                    f"stage {data.get('key') or data.get('stage')}",
                    f"not finished (status {status!r}): running, failed or killed; its numbers are partial",
                )
            stages.append(
                {
                    "stage": str(data.get("stage", file[: -len(".json")])),
                    "key": data.get("key"),
                    "seed": data.get("seed"),
                    "status": status,
                    "wall_seconds": _number(data.get("wall_seconds")),
                    "samples": _number(data.get("samples")),
                    "tokens": _number(data.get("tokens")),
                    "file": rel,
                }
            )
    order = _stage_order()
    stages.sort(
        key=lambda s: (
            s["seed"] is not None,
            s["seed"] if isinstance(s["seed"], int) else -1,
            order.index(s["stage"]) if s["stage"] in order else len(order),
            s["file"],
        )
    )
    by_stage: dict[str, list[dict]] = {}
    for s in stages:
        by_stage.setdefault(str(s["stage"]), []).append(s)
    return {
        "stages": stages,
        "by_stage": [  # in pipeline order
            {
                "stage": name,
                "runs": len(group),
                "wall_seconds": _sum(s["wall_seconds"] for s in group),
                "samples": _sum(s["samples"] for s in group),
                "tokens": _sum(s["tokens"] for s in group),
            }
            for name, group in sorted(
                by_stage.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)
            )
        ],
        "totals": {
            "wall_seconds": _sum(s["wall_seconds"] for s in stages),
            "samples": _sum(s["samples"] for s in stages),
            "tokens": _sum(s["tokens"] for s in stages),
        },
        # From the eval files, apart: the pipeline's evaluation stage (if it writes a stage record) is in totals.
        "evaluation": {
            "evaluations": len(rows),
            "tokens_generated": _sum(r["tokens_generated"] for r in rows),
            "wall_seconds": _sum(r["wall_seconds"] for r in rows),
        },
        "adaptive_teacher": _adaptive_teacher(reader),
    }


def _adaptive_teacher(reader: _Reader) -> dict | None:
    """What adaptive teacher sampling saved (``teacher_samples/summary.json``) and the training-set sizes it left
    (``sft_data/build_metrics.json``); None when the teacher drew its whole budget."""
    summary = reader.json("teacher_samples/summary.json", "teacher sampling summary", expected=False) or {}
    if not isinstance(summary.get("adaptive"), dict):
        return None
    manifest = reader.json("teacher_samples/manifest.json", "teacher sampling arguments", expected=False) or {}
    built = reader.json("sft_data/build_metrics.json", "training-set sizes", expected=False) or {}
    pairs = {}  # seed -> RM pairs built from that seed's labels
    for name in sorted(os.listdir(reader.path("."))):
        match = re.fullmatch(r"seed(\d+)", name)
        rows = (reader.json(f"{name}/data/build_metrics.json", "RM data sizes", expected=False) or {}).get("rows")
        if match and isinstance(rows, dict) and isinstance(rows.get("rm_pairs"), int):
            pairs[int(match.group(1))] = rows["rm_pairs"]
    adaptive, tokens = summary["adaptive"], _number(summary.get("tokens"))
    drawn, budget = adaptive.get("samples_drawn"), adaptive.get("samples_budget")
    # Undrawn samples have no length: the tokens saved are estimated at the mean length of the drawn ones.
    saved = round(tokens / drawn * (budget - drawn)) if tokens is not None and drawn and budget else None
    return {
        **adaptive,
        "rule": (manifest.get("adaptive") or {}).get("rule"),
        "confidence": (manifest.get("adaptive") or {}).get("confidence"),
        "tokens": tokens,
        "tokens_saved_estimate": saved,
        "sft_rows": _number((built.get("rows") or {}).get("sft")),
        "rm_pairs_by_seed": pairs,
    }


# --- everything ------------------------------------------------------------------------------------------------


def _expected_evaluations(reader: _Reader, rows: list[dict], seeds: list[int], configured: dict) -> None:
    have = {(r["name"], r["seed"]) for r in rows}
    per_seed = {"sft"} | {f"rl_{s}" for s in configured["rl_schemes"]}
    per_seed |= {r["name"] for r in rows if r["name"] not in SEED_INDEPENDENT and model_kind(r["name"]) != "ablation"}
    for name in configured["base_models"]:
        if not any(n == name for n, _ in have):
            reader.note(f"eval/{name}_seed<k>.json", f"evaluation of {name} (once, any seed)", "absent")
    for name in sorted(per_seed - set(configured["base_models"]), key=model_sort_key):
        for seed in seeds:
            if (name, seed) not in have:
                reader.note(f"eval/{name}_seed{seed}.json", f"evaluation of {name}, seed {seed}", "absent")


def collect_results(run_dir: str) -> dict:
    """Reads ``run_dir`` into the results object (see the module docstring and ``results.json``)."""
    if not os.path.isdir(run_dir):
        raise ValueError(f"{run_dir}: not a directory (expected a run directory of the pipeline)")
    reader = _Reader(run_dir)
    run = reader.json("run.json", "the run's task, seeds and resolved config") or {}
    rows = _read_rows(reader)
    configured = run.get("seeds") if isinstance(run.get("seeds"), list) else None
    configured = [s for s in configured or [] if isinstance(s, int) and not isinstance(s, bool)] or None
    seen_seeds = set(_discover_seeds(run_dir)) | {r["seed"] for r in rows if r["seed"] is not None}
    seeds = sorted(set(configured or []) | seen_seeds)  # every seed is expected to have all its files
    expected = _configured(run.get("config"))
    rl_names = {r["name"][3:] for r in rows if model_kind(r["name"]) in ("rl", "upper_bound")}
    rl_schemes = set(expected["rl_schemes"]) | rl_names

    _expected_evaluations(reader, rows, seeds, expected)
    summary = _summary(rows)
    names = list(summary)
    comparisons = [c for a, b, why in _comparison_pairs(names) if (c := _compare(a, b, why, summary))]
    task = run.get("task")
    if task is None:
        tasks = sorted({r["task"] for r in rows if isinstance(r["task"], str)})
        task = tasks[0] if len(tasks) == 1 else (", ".join(tasks) or None)
    results = {
        "schema_version": SCHEMA_VERSION,
        "run": os.path.basename(os.path.normpath(os.path.abspath(run_dir))),
        "task": task,
        "seeds": seeds,
        "configured_seeds": configured,
        "ci_method": CI_METHOD,
        "rows": rows,
        "summary": summary,
        "comparisons": comparisons,
        "pseudo_labels": _pseudo_labels(reader, seeds),
        "reward_model": _reward_model(reader, seeds),
        "rl": _rl(reader, seeds, {s for s in rl_schemes if s}),
        "compute": _compute(reader, rows),
    }
    results["model_choice"] = {
        "criterion": "greedy agreement with the teacher's pseudo-labels on dev questions (no gold read)",
        "sft_sweep": _sft_choice(reader, seeds),
        "rl_chosen_minus_last": _choice_over_seeds(results["rl"]),
    }
    styles = _styles(rows)
    if styles:  # only for tasks whose responses have styles
        results["styles"] = styles
    results["missing"] = sorted(reader.missing.values(), key=lambda m: m["path"])
    return results
