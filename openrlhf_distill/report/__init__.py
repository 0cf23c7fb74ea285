"""The report of a run: ``openrlhf-distill report RUN_DIR`` writes ``RUN_DIR/results.json`` (every number),
``RUN_DIR/report.md`` (the paper's table, pseudo-label and reward-model quality, RL curves, compute) and
``RUN_DIR/plots/*.png``, from whatever files of the run are present; what is absent is listed, never fatal.

- :mod:`.collect`: the run directory -> the results object (``results.json``);
- :mod:`.markdown`: the results object -> ``report.md`` (deterministic: same input, same bytes);
- :mod:`.plots`: the figures (matplotlib, Agg);
- :mod:`.stats`: means, spreads and Student-t intervals over seeds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..contract import Input, Output
from ..records import write_json_atomic, write_text_atomic
from ..settings import from_args, setting
from .collect import RESULTS_FILE, collect_results

REPORT_FILE = "report.md"


def build_report(run_dir: str, *, plots: bool = True) -> dict:
    """Collects ``run_dir``, draws the plots and writes results.json and report.md; returns the results."""
    results = collect_results(run_dir)
    results["plots"] = []
    if plots:
        try:
            from .plots import make_plots
        except ImportError as error:  # matplotlib is a dependency; a broken install still gets its tables
            results["missing"].append({"path": "plots", "what": "plots", "reason": f"matplotlib unusable: {error}"})
        else:
            results["plots"] = make_plots(results, run_dir)
    from .markdown import render

    write_json_atomic(os.path.join(run_dir, RESULTS_FILE), results)
    write_text_atomic(os.path.join(run_dir, REPORT_FILE), render(results))
    return results


@dataclass(frozen=True)
class ReportSettings:
    no_plots: bool = setting(False, "write results.json and report.md only", aliases=("--no-plots",))


def _in_run(name: str):
    return lambda args, rest: os.path.join(args.run_dir, name)


PATHS = (
    Input(
        "run_dir", "folder", "the run directory of a pipeline run (run.json, eval/, seed<k>/, ...)", positional=True
    ),
    Output("results", "file", derived=_in_run(RESULTS_FILE)),
    Output("report", "file", derived=_in_run("report.md")),
    Output(
        "plots", "folder", derived=lambda args, rest: None if args.no_plots else os.path.join(args.run_dir, "plots")
    ),
)


def run(args) -> int:
    """`openrlhf-distill report RUN_DIR`: writes the report and prints the main table and the differences."""
    from .markdown import comparison_lines, main_table_lines

    results = build_report(args.run_dir, plots=not from_args(args, ReportSettings).no_plots)
    seeds = ", ".join(str(s) for s in results["seeds"]) or "none"
    print(f"{results['task'] or 'unknown task'}, seeds {seeds}: accuracy (%), mean over seeds [95% t-interval]")
    print("\n".join(main_table_lines(results)))
    if results["comparisons"]:
        print()
        print("\n".join(comparison_lines(results)))
    if results["missing"]:
        print(f"\n{len(results['missing'])} expected file(s) missing or unreadable (listed in report.md):")
        for m in results["missing"]:
            print(f"  {m['path']}: {m['reason']}")
    written = [RESULTS_FILE, REPORT_FILE, *(p["file"] for p in results["plots"])]
    print(f"-> {', '.join(os.path.join(args.run_dir, w) for w in written)}")
    return 0
