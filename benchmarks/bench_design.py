"""Operating characteristics of three trial designs by simulation (``design_grid``).

Three cells of the motivating trial's design, 20 treated patients enrolled on a run-in decline
steeper than the screened median, 6-month run-in, 4 injections, 6 months of follow-up after the
last, realistic natural history (drift, acceleration, item floors, informative dropout):

- single-arm, injections 3 months apart;
- single-arm, injections 6 months apart;
- two-arm (20 treated + 20 sham controls), injections 3 months apart.

Each cell is simulated ``--trials`` times with no effect (type-I error) and with a population
slowing of 0.5 at 3-month intervals falling by 0.08 per month of interval (so 0.26 at 6 months),
and every trial is fitted with the default model and the default decision rule
(P(rho_bar_given > 0) >= 0.975). All trials form one resumable study: rerunning the command
with the same ``--out`` finishes an interrupted run.

    python benchmarks/bench_design.py --trials 200 --out design-200 \\
        --csv benchmarks/results/design_grid_200_default_priors.csv \\
        --figure docs/assets/figures/design-grid.png
"""

from __future__ import annotations

import argparse
import time
import warnings

EFFECTS = [{"effect": 0.0}, {"effect": 0.5, "interval_effect": -0.08}]


def cells():
    """The three designs (label -> TrialDesign)."""
    from slopeshift.study import TrialDesign, expand_designs

    base = TrialDesign(n_patients=20, runin_months=6.0, followup_months=6.0)
    grid = expand_designs(base, gaps=[(3.0, 3.0, 3.0), (6.0, 6.0, 6.0)], arms=["single"])
    grid |= expand_designs(base, gaps=[(3.0, 3.0, 3.0)], arms=["two-arm"])
    return grid


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from slopeshift.study import design_grid, plot_operating_characteristics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200, help="trials per design and effect")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="design-bench", help="the study's store (resumable)")
    ap.add_argument("--csv", default=None, help="write the summary table here")
    ap.add_argument("--figure", default=None, help="write the operating-characteristics plot")
    ap.add_argument("--only", default=None,
                    help="run only the designs whose label contains this (e.g. two-arm)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    grid = {k: v for k, v in cells().items() if args.only is None or args.only in k}
    if not grid:
        raise SystemExit(f"no design label contains {args.only!r}: {list(cells())}")
    table = design_grid(grid, EFFECTS, args.trials, args.out, workers=args.workers,
                        seed=2026)
    wall = time.perf_counter() - t
    n = int(table["n_trials"].sum())
    print(f"{n} trials, {args.workers} workers: {wall:.0f} s in this run "
          "(tasks finished before a resume not counted)")
    rec = table.attrs["records"]
    if "seconds" in rec:
        print(f"mean wall time per fit, per worker: {rec['seconds'].mean():.1f} s")
    cols = ["design", "effect", "true_rho_bar", "n_trials", "p_success", "p_success_se",
            "rho_bar_bias", "rho_bar_coverage", "theta_bias", "theta_coverage",
            "declared_mean", "true_responders_mean", "healthy"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        table.to_csv(args.csv, index=False, float_format="%.4f")
    if args.figure:
        fig = plot_operating_characteristics(table)
        fig.savefig(args.figure, dpi=130)


if __name__ == "__main__":
    main()
