"""Figure and Markdown table of bench_natural_history.py's results, for the documentation.

    python benchmarks/plot_natural_history.py benchmarks/results/natural_history.csv \\
        --figure docs/assets/figures/natural-history.png \\
        --table docs/assets/tables/natural_history.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_natural_history import _read, summarise  # noqa: E402

COLORS = {"classical": "#9e9e9e", "old": "#d95f02", "default": "#1b9e77", "two-arm": "#7570b3"}
LABELS = {("single", "old"): "run-in rate continues (old)",
          ("single", "default"): "default (drift, enrolment)",
          ("two-arm", "default"): "default, with a control arm"}


def figure(summary: pd.DataFrame, path: Path) -> None:
    """Two panels on no-effect trials, one on trials with a 50% slowing."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), constrained_layout=True)
    null = summary[summary["scenario"] == "no_effect"]
    eff = summary[summary["scenario"] == "effect"]
    sizes = sorted(summary["size"].unique())
    width = 0.2
    panels = [
        (axes[0], null, "declared_share", "No effect: patients declared responders",
         "share of patients (P(slowing > 25%) >= 0.9)"),
        (axes[1], null, "trials_any_cycle_p_gt0_ge_0.9", "No effect: population 'slowing'",
         "share of trials with P(rho_k > 0) >= 0.9, any cycle"),
        (axes[2], eff, "true_found_share", "50% slowing: true responders found",
         "share of true responders with P >= 0.9"),
    ]
    for ax, tab, col, title, ylabel in panels:
        bars = list(LABELS.items())
        if col == "declared_share":
            bars = [(("classical", ""), "classical least squares (> 25%)")] + bars
        for j, (key, label) in enumerate(bars):
            vals = []
            for n in sizes:
                if key[0] == "classical":
                    row = tab[(tab["size"] == n) & (tab["arms"] == "single")
                              & (tab["model"] == "default")]
                    vals.append(float(row["classical_share"].iloc[0]) if len(row) else 0.0)
                else:
                    row = tab[(tab["size"] == n) & (tab["arms"] == key[0])
                              & (tab["model"] == key[1])]
                    vals.append(float(row[col].iloc[0]) if len(row) else 0.0)
            xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(sizes))]
            color = COLORS["two-arm" if key[0] == "two-arm" else key[1] or "classical"]
            ax.bar(xs, vals, width=width, label=label, color=color)
        ax.set_xticks(range(len(sizes)), [f"{n} patients" for n in sizes])
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_ylim(0, 1.15)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(summary: pd.DataFrame) -> str:
    cols = {"scenario": "scenario", "size": "treated patients", "arms": "arms",
            "model": "model", "trials": "trials", "classical_share": "classical > 25%",
            "declared_share": "declared (P >= 0.9)", "false_call_share": "false calls",
            "true_found_share": "true responders found",
            "trials_any_cycle_p_gt0_ge_0.9": "trials: any P(rho_k > 0) >= 0.9",
            "trials_any_cycle_p_gt0_ge_0.975": "... >= 0.975",
            "trials_rho_bar_p_gt0_ge_0.975": "trials: P(rho_bar > 0) >= 0.975",
            "mean_p_rho_bar_gt_0.25": "mean P(rho_bar > 0.25)",
            "rho_bar_mean": "mean rho_bar", "theta_mean": "mean theta",
            "theta_ci_covers_truth": "theta 95% CrI covers truth",
            "healthy_share": "healthy fits"}
    t = summary[list(cols)].rename(columns=cols)
    head = "| " + " | ".join(t.columns) + " |\n|" + "---|" * len(t.columns) + "\n"
    body = ""
    for _, r in t.iterrows():
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in r]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args(argv)
    summary = summarise(_read(args.csv))
    if args.figure:
        figure(summary, args.figure)
    text = markdown(summary)
    if args.table:
        args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
