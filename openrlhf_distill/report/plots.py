"""The report's figures, drawn with matplotlib's Agg renderer (``Figure`` objects, no pyplot: no global backend
is changed and no window is opened). Each function writes one PNG and returns its path relative to the run dir,
or None when there is nothing to draw."""

from __future__ import annotations

import os

from .collect import read_rm_scores

PLOTS_DIR = "plots"
_KIND_COLOURS = {
    "teacher": "#555555",
    "baseline": "#9e9e9e",
    "sft": "#4c72b0",
    "rl": "#55a868",
    "upper_bound": "#c44e52",
    "ablation": "#8172b2",
    "other": "#937860",
}
_LINESTYLES = ("-", "--", ":", "-.")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, run_dir: str, name: str) -> str:
    rel = f"{PLOTS_DIR}/{name}"
    os.makedirs(os.path.join(run_dir, PLOTS_DIR), exist_ok=True)
    fig.savefig(os.path.join(run_dir, rel), format="png", metadata={"Software": None})
    return rel


def accuracy_bars(results: dict, run_dir: str) -> str | None:
    """One bar per model (mean over seeds), the t-interval of the mean as error bar (a single evaluation: its
    interval over questions), each seed a dot."""
    summary = results["summary"]
    if not summary:
        return None
    fig = _figure(max(5.0, 1.0 + 0.9 * len(summary)), 4.2)
    ax = fig.add_subplot()
    names = list(summary)
    for x, name in enumerate(names):
        entry = summary[name]
        mean = 100 * entry["mean"]
        interval = entry["ci95_mean"]
        if interval is None and entry["n_seeds"] == 1 and isinstance(entry["per_seed"][0]["ci95"], list):
            interval = entry["per_seed"][0]["ci95"]
        ax.bar(
            x,
            mean,
            width=0.7,
            color=_KIND_COLOURS.get(entry["kind"], "#937860"),
            hatch="//" if entry["kind"] == "upper_bound" else None,
            edgecolor="black",
            linewidth=0.5,
        )
        if interval is not None:
            ax.errorbar(
                x,
                mean,
                yerr=[[mean - 100 * interval[0]], [100 * interval[1] - mean]],
                color="black",
                capsize=4,
                linewidth=1,
            )
        seeds = entry["per_seed"]
        for i, p in enumerate(seeds):
            offset = (i - (len(seeds) - 1) / 2) * min(0.12, 0.5 / max(len(seeds), 1))
            ax.plot(x + offset, 100 * p["accuracy"], "o", color="white", markeredgecolor="black", markersize=4)
    ax.set_xticks(
        range(len(names)),
        [n + ("\n(upper bound)" if summary[n]["kind"] == "upper_bound" else "") for n in names],
        rotation=30,
        ha="right",
    )
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results['task'] or ''} accuracy: mean over seeds, 95% t-interval, seeds as dots".strip())
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, run_dir, "accuracy.png")


def _grouped_bars(ax, names: list[str], groups: list[tuple[str, list]]) -> None:
    """Bars of ``groups`` ((label, mean per model or None)) side by side for each model in ``names``; None: no
    bar."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    width = 0.8 / len(groups)
    for i, (label, values) in enumerate(groups):
        bars = [(x + (i - (len(groups) - 1) / 2) * width, 100 * v) for x, v in enumerate(values) if v is not None]
        ax.bar(
            [x for x, _ in bars],
            [h for _, h in bars],
            width=width,
            color=palette(i % 10),
            edgecolor="black",
            linewidth=0.5,
            label=label,
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def style_bars(results: dict, run_dir: str) -> str | None:
    """Per model (means over seeds): the share of each style but the last among greedy and sampled answers, and
    the greedy accuracy within each style; only for tasks whose responses have styles."""
    styles = results.get("styles")
    if not styles or not styles["models"]:
        return None
    names, kinds = list(styles["models"]), styles["styles"]
    shown = kinds[:-1] if len(kinds) > 1 else kinds

    def means(decoding: str, style: str, key: str) -> list:
        out = []
        for name in names:
            measure = ((styles["models"][name].get(decoding) or {}).get(style) or {}).get(key)
            out.append(measure["mean"] if measure else None)
        return out

    fig = _figure(max(8.0, 2.0 + 1.4 * len(names)), 4.2)
    share, accuracy = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _grouped_bars(
        share,
        names,
        [
            (f"{style}, {decoding}", means(decoding, style, "share"))
            for style in shown
            for decoding in ("greedy", "sampled")
        ],
    )
    share.set_ylabel("share of answers (%)")
    share.set_title(f"share of {' / '.join(shown)} answers")
    _grouped_bars(accuracy, names, [(style, means("greedy", style, "accuracy")) for style in kinds])
    accuracy.set_ylabel("accuracy (%)")
    accuracy.set_title("greedy accuracy within each style")
    fig.suptitle("Answer styles: mean over seeds (no bar: no answer of that style, or none sampled)")
    return _save(fig, run_dir, "styles.png")


def rm_score_histograms(results: dict, run_dir: str) -> str | None:
    """Per seed, the RM's scores of gold-right and gold-wrong student samples (from rm_scores.jsonl)."""
    panels = []
    for entry in results["reward_model"]["seeds"]:
        if entry.get("scores"):
            rows = read_rm_scores(os.path.join(run_dir, entry["scores"]["file"]))
            if rows:
                panels.append((entry["seed"], rows))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig = _figure(4.0 * cols, 3.2 * rows_n)
    for i, (seed, rows) in enumerate(panels):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        scores = [r["score"] for r in rows]
        lo, hi = min(scores), max(scores)
        edges = [lo + (hi - lo) * k / 20 for k in range(21)] if hi > lo else [lo - 0.5, hi + 0.5]
        groups = [
            ("gold-right", "#55a868", [r["score"] for r in rows if r.get("gold_correct") is True]),
            ("gold-wrong", "#c44e52", [r["score"] for r in rows if r.get("gold_correct") is False]),
            ("gold unknown", "#9e9e9e", [r["score"] for r in rows if not isinstance(r.get("gold_correct"), bool)]),
        ]
        for label, colour, values in groups:
            if values:
                ax.hist(values, bins=edges, alpha=0.55, color=colour, label=f"{label} (n={len(values)})")
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("RM score (raw)")
        ax.set_ylabel("student samples")
        ax.legend(fontsize=8)
    fig.suptitle("Reward-model scores of student samples, by gold correctness")
    return _save(fig, run_dir, "rm_scores.png")


def rl_curves(results: dict, run_dir: str) -> str | None:
    """Mean rollout reward per PPO step and, when the reward function logged it, the rollouts' gold accuracy;
    one line per seed and scheme (colour: scheme, line style: seed)."""
    runs = [r for r in results["rl"] if r["reward_mean"] or r["gold_correct"]]
    if not runs:
        return None
    with_gold = any(r["gold_correct"] for r in runs)
    fig = _figure(10.0 if with_gold else 5.5, 3.8)
    axes = [fig.add_subplot(1, 2 if with_gold else 1, i + 1) for i in range(2 if with_gold else 1)]
    schemes = list(dict.fromkeys(r["scheme"] for r in runs))  # collect's order: the paper's, gold last
    seeds = sorted({r["seed"] for r in runs})
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    for r in runs:
        style = {
            "color": palette(schemes.index(r["scheme"]) % 10),
            "linestyle": _LINESTYLES[seeds.index(r["seed"]) % len(_LINESTYLES)],
            "label": f"{r['scheme']} seed {r['seed']}",
            "linewidth": 1.3,
        }
        steps = [s if isinstance(s, int) else i for i, s in enumerate(r["steps"])]
        for ax, key in zip(axes, ("reward_mean", "gold_correct"), strict=False):
            values = r[key]
            if values:
                points = [(x, y) for x, y in zip(steps, values, strict=True) if y is not None]
                ax.plot([x for x, _ in points], [y for _, y in points], **style)
    axes[0].set_title("mean rollout reward (scale differs between schemes)")
    axes[0].set_ylabel("rollout/reward_mean")
    if with_gold:
        axes[1].set_title("gold accuracy of rollouts")
        axes[1].set_ylabel("distill/gold_correct")
    for ax in axes:
        ax.set_xlabel("PPO step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, run_dir, "rl_curves.png")


PLOTS = (
    (accuracy_bars, "accuracy per model: mean over seeds with 95% t-interval, seeds as dots"),
    (style_bars, "answer styles per model: share of each style and accuracy within it"),
    (rm_score_histograms, "RM scores of student samples, gold-right vs gold-wrong"),
    (rl_curves, "RL: mean reward and gold accuracy per PPO step"),
)


def make_plots(results: dict, run_dir: str) -> list[dict]:
    """Draws every figure there is data for; returns [{"file", "what"}] in a fixed order."""
    drawn = []
    for draw, what in PLOTS:
        try:
            rel = draw(results, run_dir)
        except (ValueError, TypeError, KeyError, OverflowError) as error:  # odd data: the other figures still come
            results["missing"].append({"path": f"{PLOTS_DIR}/", "what": what, "reason": f"not drawn: {error!r}"})
            continue
        if rel:
            drawn.append({"file": rel, "what": what})
    return drawn
