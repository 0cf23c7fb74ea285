"""Plain-text tables of stage metrics, printed at the end of a stage (the JSON files hold the same numbers)."""

from __future__ import annotations


def _share(entry: dict | None) -> str:
    if not entry or entry["value"] is None:
        return "-"
    return f"{entry['value']:.1%} (n={entry['n']})"


def print_label_metrics(metrics: dict) -> None:
    q = metrics["questions"]
    dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(q["dropped"].items())) or "none"
    rows = [
        ("questions", f"{q['total']}"),
        ("pseudo-labelled (coverage)", f"{q['accepted']} ({q['coverage']:.1%})"),
        ("dropped", dropped),
        ("label accuracy vs gold", _share(metrics["label_accuracy"])),
    ]
    for source, counts in metrics["samples"].items():
        rows.append((f"{source} samples", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))))
        rows.append(
            (
                f"{source} extraction rules",
                ", ".join(f"{k} {v}" for k, v in sorted(metrics["extraction_rules"][source].items())),
            )
        )
        rows.append((f"{source} accuracy vs gold", _share(metrics["sample_accuracy_vs_gold"].get(source))))
        rows.append((f"{source} reward accuracy", _share(metrics["reward_accuracy"].get(source))))
    histogram = " ".join(f"{n}" for n in metrics["majority_ratio_histogram"].values())
    rows.append(("majority ratio histogram (0.0-1.0, 10 bins)", histogram))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
