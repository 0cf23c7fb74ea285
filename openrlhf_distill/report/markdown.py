"""``report.md``: the results object (``results.json``) as Markdown tables. The same results give the same bytes."""

from __future__ import annotations

HOW_TO_READ = """\
## How to read this

Accuracies are greedy-decoding accuracies on the evaluation split, in percent. Each model is trained and
evaluated once per seed; "mean" is the mean over seeds and its 95% interval is a Student t-interval over seeds
(mean +- t(0.975, seeds - 1) x std / sqrt(seeds), std over seeds with ddof = 1, cut to 0-100%), so it measures
how much the result moves from seed to seed, not the sampling error of the test set; with fewer than two seeds
there is none.
The interval in brackets after each per-seed number is the evaluator's interval over questions for that one
evaluation. Differences are in percentage points, paired by seed (the same seed's pipeline on both sides); when
one side was evaluated once (the teacher, the base student), every seed is compared with that one evaluation
and the interval covers the seed-to-seed spread of the other side only.
"SFT only" is the paper's "Ours w/o R" baseline; SFT + RL rows differ only in the reward. The gold-reward row
reads gold labels during RL and is an upper bound, not a competitor. Pseudo-label quality says how often the
teacher's vote equals gold; reward-model quality says how well the distilled RM ranks responses (pairs of one
question) and separates right from wrong ones (AUC), against labels from the vote (pseudo) and from gold.
"""


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _points(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def _interval(pair, signed: bool = False) -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or None in pair:
        return "-"
    f = _points if signed else _pct
    return f"[{f(pair[0])}, {f(pair[1])}]"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _count(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if float(value).is_integer() else f"{value:,.1f}"


def _seconds(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _share(value, n) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" + (f" (n={n})" if n is not None else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "| " + " | ".join("---" for _ in header) + " |", *[line(r) for r in rows]]


def _seed_columns(results: dict) -> list:
    columns = list(results["seeds"])
    if any(r["seed"] is None for r in results["rows"]):
        columns.append(None)
    return columns


def main_table_lines(results: dict) -> list[str]:
    """The paper's table: one row per model, mean and t-interval over seeds, then each seed's accuracy."""
    summary = results["summary"]
    if not summary:
        return ["No evaluated model found (eval/<name>_seed<k>.json)."]
    columns = _seed_columns(results)
    header = ["model", "what it is", "mean acc. (%)", "95% CI of mean", "std", "seeds", "questions"]
    header += [f"seed {s}" if s is not None else "single eval." for s in columns]
    rows = []
    for name, entry in summary.items():
        per_seed = {p["seed"]: p for p in entry["per_seed"]}
        cells = [
            name + (" (upper bound)" if entry["kind"] == "upper_bound" else ""),
            entry["description"],
            _pct(entry["mean"]),
            _interval(entry["ci95_mean"]),
            _pct(entry["std"]),
            str(entry["n_seeds"]),
            ", ".join(str(n) for n in entry["n_questions"]) or "-",
        ]
        for seed in columns:
            p = per_seed.get(seed)
            if p is None:
                cells.append("-")
            else:
                ci = _interval(p["ci95"])
                cells.append(_pct(p["accuracy"]) + ("" if ci == "-" else f" {ci}"))
        rows.append(cells)
    return _table(header, rows)


def comparison_lines(results: dict) -> list[str]:
    if not results["comparisons"]:
        return ["No pair of models to compare."]
    rows = []
    for c in results["comparisons"]:
        per_seed = ", ".join(f"{'-' if p['seed'] is None else p['seed']}: {_points(p['diff'])}" for p in c["per_seed"])
        rows.append(
            [c["name"], c["what"], _points(c["mean_diff"]), _interval(c["ci95"], signed=True), per_seed, c["pairing"]]
        )
    header = ["difference", "what it shows", "mean (points)", "95% CI (points)", "per seed (points)", "pairing"]
    return _table(header, rows)


def _category_lines(results: dict) -> list[str]:
    models = [name for name, entry in results["summary"].items() if entry.get("per_category")]
    if not models:
        return []
    categories = sorted({c for name in models for c in results["summary"][name]["per_category"]})
    rows = []
    for category in categories:
        cells = [category]
        for name in models:
            entry = results["summary"][name]["per_category"].get(category)
            cells.append(_pct(entry["mean"]) if entry else "-")
        rows.append(cells)
    return ["", "Per category (mean accuracy over seeds, %):", "", *_table(["category", *models], rows)]


def _at_k_lines(results: dict) -> list[str]:
    rows = []
    for name, entry in results["summary"].items():
        cells = [name]
        for key in ("maj_at_k", "pass_at_k"):
            at = entry.get(key)
            ks = "/".join(str(k) for k in at["k"]) if at else ""
            cells += [ks or "-", _pct(at["mean"]) if at else "-", _interval(at["ci95_mean"]) if at else "-"]
        if any(c != "-" for c in cells[1:]):
            rows.append(cells)
    if not rows:
        return []
    header = ["model", "maj@k: k", "mean (%)", "95% CI", "pass@k: k", "mean (%)", "95% CI"]
    return ["", "Sampled answers (maj@k: majority of k samples; pass@k: any of k right):", "", *_table(header, rows)]


def _styles_lines(results: dict) -> list[str]:
    """The answers' styles per model (tasks whose responses have styles only; otherwise no section)."""
    styles = results.get("styles")
    if not styles or not styles["models"]:
        return []
    names = styles["styles"]
    shown = names[:-1] if len(names) > 1 else names  # the shares add up to 1: the last style's is implied

    def cell(entry, decoding, style, key):
        measure = ((entry.get(decoding) or {}).get(style) or {}).get(key)
        return _pct(measure["mean"]) if measure else "-"

    header = ["model", "seeds"]
    header += [f"{decoding}: {style} share (%)" for style in shown for decoding in ("greedy", "sampled")]
    header += [f"accuracy of {style} answers (%)" for style in names]
    rows = []
    for name, entry in styles["models"].items():
        cells = [name, str(entry["n_seeds"])]
        cells += [cell(entry, decoding, style, "share") for style in shown for decoding in ("greedy", "sampled")]
        cells += [cell(entry, "greedy", style, "accuracy") for style in names]
        rows.append(cells)
    return [
        "## Styles",
        "",
        f"Answers by style ({', '.join(names)}): the share of each style among the greedy answers (one per "
        "question) and among the sampled ones (every sample), and the greedy accuracy within each style; means over "
        "the evaluations that report styles (`results.json`: `styles`, with intervals and sampled accuracies).",
        "",
        *_table(header, rows),
        "",
    ]


def _pseudo_label_lines(results: dict) -> list[str]:
    labels = results["pseudo_labels"]
    lines = ["## Pseudo-label quality", ""]
    teacher = labels["teacher"]
    if teacher is None:
        lines.append("labels/metrics.json is missing: no teacher vote metrics.")
    else:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(teacher["dropped"].items())) or "none"
        rows = [
            ["questions", _count(teacher["questions"])],
            ["pseudo-labelled (coverage)", f"{_count(teacher['accepted'])} ({_share(teacher['coverage'], None)})"],
            ["dropped", dropped],
            ["label accuracy vs gold", _share(teacher["label_accuracy"], teacher["label_accuracy_n"])],
        ]
        if teacher.get("majority_ratio_mean") is not None:
            rows.append(
                ["mean majority ratio", f"{teacher['majority_ratio_mean']:.3f} (n={teacher['majority_ratio_mean_n']})"]
            )
        histogram = teacher.get("majority_ratio_histogram")
        if isinstance(histogram, dict):
            rows.append(["majority ratio histogram (0.0-1.0, 10 bins)", " ".join(str(v) for v in histogram.values())])
        if teacher.get("teacher"):
            t = teacher["teacher"]
            rows.append(["teacher samples right vs gold", _share(t["accuracy_vs_gold"], t["accuracy_vs_gold_n"])])
            rows.append(
                [
                    "teacher labels agreeing with gold (reward accuracy)",
                    _share(t["reward_accuracy"], t["reward_accuracy_n"]),
                ]
            )
        lines += ["Teacher vote (`labels/metrics.json`):", "", *_table(["measure", "value"], rows)]
        by_ratio = teacher.get("label_accuracy_by_majority_ratio")
        if by_ratio:
            rows = [[k, str(v["n"]), _pct(v["accuracy"])] for k, v in by_ratio.items()]
            lines += [
                "",
                "Label accuracy by majority ratio (`labels/votes.jsonl`; a low ratio is a contested vote):",
                "",
                *_table(["majority ratio", "questions", "label accuracy (%)"], rows),
            ]
    seeds = [s for s in labels["seeds"] if s.get("student")]
    if seeds:
        rows = []
        for s in seeds:
            st = s["student"]
            rows.append(
                [
                    str(s["seed"]),
                    _count(st["samples"]),
                    _count(st["no_answer"]),
                    _pct(st["label_1_share"]),
                    _share(st["accuracy_vs_gold"], st["accuracy_vs_gold_n"]),
                    _share(st["reward_accuracy"], st["reward_accuracy_n"]),
                ]
            )
        header = [
            "seed",
            "student samples",
            "no answer",
            "labelled 1 (%)",
            "right vs gold",
            "labels agreeing with gold",
        ]
        lines += [
            "",
            "Student samples labelled against the vote (`seed<k>/labels/metrics.json`):",
            "",
            *_table(header, rows),
        ]
    return lines


def _reward_model_lines(results: dict) -> list[str]:
    rm = results["reward_model"]
    lines = ["## Reward-model quality", ""]
    if not rm["seeds"]:
        return lines + ["No seed<k>/rm_eval.json or rm_scores.jsonl found."]
    rows = []
    for e in rm["seeds"]:
        best = e.get("best_of_n") or {}
        scores = e.get("scores") or {}
        rows.append(
            [
                str(e["seed"]),
                _share(e.get("pseudo_pairs_accuracy"), e.get("pseudo_pairs_n")),
                _share(e.get("gold_pairs_accuracy"), e.get("gold_pairs_n")),
                _num(e.get("auc")),
                _num(e.get("ece")),
                " / ".join(_pct(best.get(k)) for k in ("rm_top", "random", "majority")) if best else "-",
                f"{_num(scores.get('mean_score_gold_correct'))} / {_num(scores.get('mean_score_gold_incorrect'))}"
                if scores
                else "-",
                _num(scores.get("auc_gold")) if scores else "-",
            ]
        )
    means = rm["mean_over_seeds"]

    def m(key, f=lambda v: _share(v, None)):
        return f(means[key]["mean"]) if means.get(key) else "-"

    rows.append(
        [
            "mean",
            m("pseudo_pairs_accuracy"),
            m("gold_pairs_accuracy"),
            m("auc", _num),
            m("ece", _num),
            " / ".join(m(k, _pct) for k in ("best_of_n_rm_top", "best_of_n_random", "best_of_n_majority")),
            "",
            "",
        ]
    )
    header = [
        "seed",
        "pairwise acc., pseudo pairs",
        "pairwise acc., gold pairs",
        "AUC (pseudo labels)",
        "ECE",
        "best-of-N % (RM top / random / majority)",
        "mean score gold-right / gold-wrong",
        "AUC vs gold",
    ]
    lines += _table(header, rows)
    lines += [
        "",
        "Pairs and points are held-out; gold pairs pair a gold-right with a gold-wrong student sample of "
        "one question; the score columns come from rm_scores.jsonl (student samples).",
    ]
    return lines + _pair_type_lines(rm)


def _pair_type_lines(rm: dict) -> list[str]:
    """Gold-pair accuracy by the styles of the right and the wrong sample (tasks with response styles only)."""
    kinds = rm["mean_over_seeds"].get("gold_pairs_by_type")
    if not kinds:
        return []
    seeds = [e for e in rm["seeds"] if e.get("gold_pairs_by_type")]
    rows = []
    for kind, over in kinds.items():
        cells = [kind.replace("_vs_", " vs ")]
        for e in seeds:
            r = e["gold_pairs_by_type"].get(kind) or {}
            cells.append(_share(r.get("accuracy"), r.get("n")))
        rows.append([*cells, _pct(over["mean"]) if over else "-"])
    header = ["pair (right vs wrong answer)", *[f"seed {e['seed']}" for e in seeds], "mean (%)"]
    return [
        "",
        "Gold pairs by the styles of the right and the wrong answer (an RM that ranks a style, not correctness, "
        "is right on one side of the diagonal and wrong on the other):",
        "",
        *_table(header, rows),
    ]


def _rl_lines(results: dict) -> list[str]:
    lines = ["## RL runs", ""]
    if not results["rl"]:
        return lines + ["No seed<k>/rl_<scheme>/distill_ppo/metrics.jsonl found."]
    rows = [
        [
            str(r["seed"]),
            r["scheme"],
            str(r["n_steps"]),
            f"{_num(r['reward_mean_first'])} -> {_num(r['reward_mean_last'])}",
            f"{_pct(r['gold_correct_first'])} -> {_pct(r['gold_correct_last'])}"
            if r["gold_correct"]
            else "not logged",
            _seconds(r["wall_seconds"]),
        ]
        for r in results["rl"]
    ]
    header = ["seed", "scheme", "steps", "reward mean, first -> last step", "gold accuracy of rollouts (%)", "wall s"]
    return lines + _table(header, rows)


def _choice_lines(results: dict) -> list[str]:
    """The gold-free model choices: the SFT sweep and each RL run's checkpoints, gold shown beside (never used)."""
    choice = results.get("model_choice") or {}
    runs = [r for r in results["rl"] if r.get("selection")]
    if not choice.get("sft_sweep") and not runs:
        return []
    lines = [
        "## Model choice without gold",
        "",
        f"Criterion: {choice.get('criterion')}. Gold is measured beside it. Settings outside a sweep (RL's learning "
        "rate, KL, steps) are the run config's own (`run.json`): say how they were set when comparing with SFT.",
    ]
    if choice.get("sft_sweep"):
        rows = [
            [
                str(seed["seed"]),
                s["name"] + (" (chosen)" if s["name"] == seed["chosen"] else ""),
                _pct(s["dev_agreement"]),
                _pct(s["gold"]),
            ]
            for seed in choice["sft_sweep"]
            for s in seed["settings"]
        ]
        lines += ["", "SFT settings:", ""] + _table(
            ["seed", "setting", "dev agreement (%)", "gold accuracy (%)"], rows
        )
    if runs:
        rows = [
            [
                str(r["seed"]),
                r["scheme"],
                ", ".join(
                    f"{p['step']}: {_pct(p['dev_agreement'])} / {_pct(p['gold'])}" for p in r["selection"]["curve"]
                ),
                str(r["selection"]["chosen_step"]),
                _pct(r["selection"]["gold_chosen"]),
                _pct(r["selection"]["gold_last"]),
            ]
            for r in runs
        ]
        header = ["seed", "run", "step: dev agreement / gold (%)", "chosen step", "gold, chosen (%)", "gold, last (%)"]
        lines += ["", "RL checkpoints:", ""] + _table(header, rows)
        for scheme, diff in (choice.get("rl_chosen_minus_last") or {}).items():
            lines.append(
                f"- rl_{scheme}: chosen - last, gold accuracy {_points(diff['mean_diff'])} points "
                f"{_interval(diff['ci95'], signed=True)} over {len(diff['per_seed'])} seed(s)"
            )
    return lines + [""]


def _compute_lines(results: dict) -> list[str]:
    compute = results["compute"]
    lines = ["## Compute", ""]
    if compute["by_stage"]:
        rows = [
            [s["stage"], str(s["runs"]), _count(s["samples"]), _count(s["tokens"]), _seconds(s["wall_seconds"])]
            for s in compute["by_stage"]
        ]
        t = compute["totals"]
        rows.append(
            [
                "total",
                str(len(compute["stages"])),
                _count(t["samples"]),
                _count(t["tokens"]),
                _seconds(t["wall_seconds"]),
            ]
        )
        lines += _table(["stage", "runs (seeds, models)", "samples", "tokens", "wall seconds"], rows)
        lines += [
            "",
            "Samples and tokens are those the stage generated (evaluation: questions and tokens); each run's "
            "own record is in `stages/` and in results.json (`compute.stages`).",
        ]
    else:
        lines.append("No stages/<stage>.json found.")
    e = compute["evaluation"]
    if e["evaluations"]:
        lines += [
            "",
            f"Evaluation files: {e['evaluations']} evaluations, {_count(e['tokens_generated'])} tokens "
            f"generated, {_seconds(e['wall_seconds'])} s (the pipeline's `eval` stages above include them).",
        ]
    return lines + _adaptive_lines(compute.get("adaptive_teacher"))


def _adaptive_lines(adaptive: dict | None) -> list[str]:
    if not adaptive:
        return []
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(adaptive["stop_reasons"].items()))
    if adaptive["rule"] == "exact":
        labels = "the labels are those of the full budget (the exact rule stops only a vote no sample can change)"
    else:
        labels = (
            f"some labels may differ from the full budget's (the {adaptive['rule']} rule at confidence "
            f"{adaptive['confidence']}; benchmarks/bench_adaptive_sampling.py measures how many)"
        )
    pairs = ", ".join(f"seed {seed}: {_count(n)}" for seed, n in sorted(adaptive["rm_pairs_by_seed"].items()))
    return [
        "",
        f"Adaptive teacher sampling ({adaptive['rule']}): {_count(adaptive['samples_drawn'])} of "
        f"{_count(adaptive['samples_budget'])} teacher samples drawn ({100 * adaptive['share_of_budget']:.1f}% of "
        f"the budget), {_count(adaptive['tokens'])} tokens, about {_count(adaptive['tokens_saved_estimate'])} "
        f"saved (at the drawn samples' mean length); questions stopped by reason: {reasons}. The cost: fewer "
        f"teacher answers to train on ({_count(adaptive['sft_rows'])} SFT rows; RM pairs "
        f"{pairs or 'not built yet'}); {labels}.",
    ]


def render(results: dict) -> str:
    seeds = ", ".join(str(s) for s in results["seeds"]) or "none found"
    lines = [
        f"# Results: {results['task'] or 'unknown task'} (run `{results['run']}`)",
        "",
        f"Seeds: {seeds}. Written by `openrlhf-distill report` from the files of this run directory; every number is "
        "also in `results.json`.",
        "",
        "## Accuracy",
        "",
        *main_table_lines(results),
        *_at_k_lines(results),
        *_category_lines(results),
        "",
        "### Differences",
        "",
        *comparison_lines(results),
        "",
        *_styles_lines(results),
        *_pseudo_label_lines(results),
        "",
        *_reward_model_lines(results),
        "",
        *_rl_lines(results),
        "",
        *_choice_lines(results),
        *_compute_lines(results),
        "",
        "## Plots",
        "",
    ]
    plots = results.get("plots") or []
    lines += [f"- [{p['what']}]({p['file']})" for p in plots] or ["No plots (none drawn, or no data to draw)."]
    for p in plots:
        lines += ["", f"![{p['what']}]({p['file']})"]
    lines += ["", "## Missing", ""]
    lines += [f"- `{m['path']}`: {m['what']} ({m['reason']})" for m in results["missing"]] or ["Nothing."]
    lines += ["", HOW_TO_READ.rstrip("\n")]
    return "\n".join(lines) + "\n"
