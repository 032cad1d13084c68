"""False and true calls on realistic ALS trials: today's defaults beside the old model.

Trials come from :func:`slopeshift.simulate_realistic_trial`, a generator that does not share
the model's formulas (a latent item-level progression whose pace drifts as an Ornstein-Uhlenbeck
process, floors, dropout that is more likely for fast decliners) and whose untreated patients
reproduce the published natural-history figures (docs/model.md). Patients are enrolled when
their run-in least-squares slope is steeper than the screened patients' median.

Scenarios (each over many simulated trials):

- ``no_effect``: no treatment effect for anyone (``effect=0``, ``effect_sd=0``), sham injections 3
  months apart after a 6-month run-in; single-arm, and two-arm with a concurrent control arm of
  the same size.
- ``effect``: population slowing 0.5 at a 3-month interval, interval effect -0.08 per month,
  patient SD 0.2, injections 3, 3 and 5 months apart (the motivating design).

Models: ``default`` (natural drift and acceleration, enrolment 'auto', dropout 'auto': the
selection model of informative dropout in single-arm trials in which someone was followed for
less), ``old`` (drift=False, enrolment=None, dropout ignored: the run-in rate assumed to
continue, as before), ``ignore`` (the default with dropout ignored: the default until
2026-12-07, and the model of rows labelled ``default`` in earlier results), ``selection``
(``dropout="selection"`` in every trial), and on two-arm trials ``default`` with the
controls. The classical rule (per-patient least squares, > 25% slowing)
is counted on the same trials.

    python benchmarks/bench_natural_history.py --sizes 20 60 --trials 20 --workers 2 \\
        --out benchmarks/results/natural_history.csv

``--generator NAME=VALUE ...`` simulates patients whose natural history differs from the
calibrated one (names of ``DEFAULT_NATURAL_HISTORY``, and ``dropout``, the base hazard of the
informative dropout per month: 0.012 by default): how far the single-arm answers move when real
patients drift more, drop out more or sit further from their floors than the published figures'
generator. Its rows carry a ``generator`` column.

Each trial is one task with its own seed (trial index + scenario), so results do not depend on
the number of workers. Rows are appended to ``--out`` as they finish; a second run with the same
``--out`` skips the tasks already there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

THRESHOLD = 0.25
PROB = 0.9
DESIGNS = {
    "no_effect": dict(effect=0.0, effect_sd=0.0, interval_effect=0.0, gaps=(3.0,),
                 runin_months=6.0, followup_months=6.0),
    "effect": dict(effect=0.5, effect_sd=0.2, interval_effect=-0.08, gaps=(3.0, 3.0, 5.0),
                   runin_months=6.0, followup_months=6.0),
}
TRUE_THETA = {name: d["interval_effect"] for name, d in DESIGNS.items()}
# "old": the model before natural change (run-in rate carried forward, no enrolment, no floors)
MODELS = {"default": {}, "old": {"drift": False, "enrolment": None, "floors": "include",
                                  "dropout": "ignore"},
          # the default until 2026-12-07: missing visits missing at random (rows of earlier
          # runs labelled "default" are this model)
          "ignore": {"dropout": "ignore"},
          # the experimental four-domain model (needs item-level visits; the simulator's are);
          # not in the default --models: it takes minutes per fit
          "domains": {"domains": True},
          # the slowing priors that were the default until 2026-11-30 (effect_priors("sceptical"))
          "sceptical": {"priors": "sceptical"},
          # the selection model of informative dropout (dropout="selection")
          "selection": {"dropout": "selection"}}
DEFAULT_MODELS = ["default", "old"]
# the models fitted to two-arm trials (the others are single-arm analyses)
TWO_ARM_MODELS = ("default", "selection", "ignore")
MAX_CYCLES = 4
ARMS = ("single", "two-arm")


def _fit_row(data, truth, model_kw, seed):
    from slopeshift import SlopeShiftModel, effect_priors

    if isinstance(model_kw.get("priors"), str):
        model_kw = model_kw | {"priors": effect_priors(model_kw["priors"])}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = SlopeShiftModel(data, **model_kw).fit(draws=1000, tune=1000, chains=4,
                                                   random_seed=seed, progressbar=False,
                                                   check=False)
    pt = fit.patients(THRESHOLD).set_index("patient")
    pt = pt[pt["status"] == "treated"]
    called = pt[f"p_gt_{THRESHOLD:g}"] >= PROB
    true_resp = truth["patients"]["responder"].reindex(pt.index).fillna(False).astype(bool)
    pop = fit.population(THRESHOLD).set_index("quantity")
    cyc = pop.loc[[q for q in pop.index if q.startswith("rho_cycle")]]
    theta = fit.interval_effect(THRESHOLD).set_index("quantity").loc["theta"]
    a = fit.diagnostics().attrs
    return {
        "n_evaluable": int(pt[f"p_gt_{THRESHOLD:g}"].notna().sum()),
        "declared": int(called.sum()),
        "true_responders": int(true_resp.sum()),
        "true_found": int((called & true_resp).sum()),
        "false_calls": int((called & ~true_resp).sum()),
        "max_p_cycle_gt_0": float(cyc["p_gt_0"].max()),
        # each cycle's own P(rho_k > 0) (cycles the trial lacks: empty)
        **{f"p_cycle{k}_gt_0": (float(pop.loc[f"rho_cycle[{k}]", "p_gt_0"])
                                if f"rho_cycle[{k}]" in pop.index else None)
           for k in range(1, MAX_CYCLES + 1)},
        "p_rho_bar_gt_0": float(pop.loc["rho_bar", "p_gt_0"]),
        "p_rho_bar_gt_025": float(pop.loc["rho_bar", f"p_gt_{THRESHOLD:g}"]),
        "rho_bar_mean": float(pop.loc["rho_bar", "mean"]),
        "theta_mean": float(theta["mean"]),
        "theta_lo": float(theta["ci_2.5"]),
        "theta_hi": float(theta["ci_97.5"]),
        "max_r_hat": float(a["max_r_hat"]),
        "min_ess": float(min(a["min_ess_bulk"], a["min_ess_tail"])),
        "divergences": int(a["divergences"]),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_task(task: dict) -> list[dict]:
    """Simulate one trial (single-arm, and two-arm on its own draw) and fit every model."""
    from slopeshift import classical_analysis, simulate_realistic_trial

    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    design = DESIGNS[task["scenario"]]
    rows = []
    for arms in task.get("arms", ARMS):
        n_ctl = task["size"] if arms == "two-arm" else 0
        data, truth = simulate_realistic_trial(
            task["size"], n_controls=n_ctl, enrolment_max_slope="median",
            random_seed=task["seed"] + (50_000 if n_ctl else 0), **design,
            **task.get("generator", {}))
        cls = classical_analysis(data, threshold=THRESHOLD)
        cp = cls.patients[cls.patients["group"] == "treated"]
        classical = int(cp["responder"].fillna(False).astype(bool).sum())
        models = [m for m in task.get("models", DEFAULT_MODELS)
                  if arms == "single" or m in TWO_ARM_MODELS]
        for model in models:
            row = {"scenario": task["scenario"], "size": task["size"], "trial": task["trial"],
                   "arms": arms, "model": model, "classical_declared": classical,
                   "classical_evaluable": int(cp["reduction"].notna().sum())}
            if task.get("generator"):  # (a column only then: results files of the
                # calibrated generator keep their layout)
                row["generator"] = " ".join(f"{k}={v:g}" for k, v in task["generator"].items())
            row |= _fit_row(data, truth, MODELS[model], task["seed"])
            rows.append(row)
    return rows


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"scenario": str, "arms": str, "model": str},
                       keep_default_na=False, na_values=[""])


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Operating characteristics per scenario, size, arms and model."""
    t = table.assign(
        any_cycle=table["max_p_cycle_gt_0"] >= 0.9,
        rho_bar_975=table["p_rho_bar_gt_0"] >= 0.975,
        any_cycle_975=table["max_p_cycle_gt_0"] >= 0.975,
        theta_covers=(table["theta_lo"] <= table["scenario"].map(TRUE_THETA))
        & (table["theta_hi"] >= table["scenario"].map(TRUE_THETA)),
        **{f"cycle{k}_ge_09": table[f"p_cycle{k}_gt_0"] >= 0.9
           for k in range(1, MAX_CYCLES + 1) if f"p_cycle{k}_gt_0" in table},
        healthy=(table["max_r_hat"] <= 1.01) & (table["min_ess"] >= 400)
        & (table["divergences"] == 0),
    )
    keys = ["scenario", "size", "arms", "model"] + (["generator"] if "generator" in t else [])
    g = t.groupby(keys)
    sums = g[["declared", "false_calls", "n_evaluable", "classical_declared",
              "classical_evaluable", "true_found", "true_responders"]].sum()
    out = pd.DataFrame({
        "trials": g.size(),
        "declared_share": sums["declared"] / sums["n_evaluable"],
        "false_call_share": sums["false_calls"] / sums["n_evaluable"],
        "classical_share": sums["classical_declared"] / sums["classical_evaluable"],
        "true_found_share": sums["true_found"] / sums["true_responders"].clip(lower=1),
        "trials_any_cycle_p_gt0_ge_0.9": g["any_cycle"].mean(),
        # the largest share over cycles of trials with P(rho_k > 0) >= 0.9, each cycle on its
        # own (the per-cycle reading of "for any cycle"); NaN for runs without the columns
        "worst_cycle_p_gt0_ge_0.9": (
            pd.concat([g[c].mean() for c in t.columns if c.startswith("cycle")
                       and c.endswith("_ge_09")], axis=1).max(axis=1)
            if any(c.endswith("_ge_09") for c in t.columns) else float("nan")),
        "trials_any_cycle_p_gt0_ge_0.975": g["any_cycle_975"].mean(),
        "trials_rho_bar_p_gt0_ge_0.975": g["rho_bar_975"].mean(),
        "mean_p_rho_bar_gt_0.25": g["p_rho_bar_gt_025"].mean(),
        "rho_bar_mean": g["rho_bar_mean"].mean(),
        "theta_mean": g["theta_mean"].mean(),
        "theta_ci_covers_truth": g["theta_covers"].mean(),
        "healthy_share": g["healthy"].mean(),
        "seconds_per_fit": g["seconds"].mean(),
    })
    return out.reset_index()


def _generator_overrides(items: list[str]) -> dict:
    """``["ou_months=1.5", ...]`` -> ``{"ou_months": 1.5}``, names checked (those of
    DEFAULT_NATURAL_HISTORY, and ``dropout``: the base hazard of informative dropout, 0 for
    none)."""
    from slopeshift.natural import DEFAULT_NATURAL_HISTORY

    names = sorted(DEFAULT_NATURAL_HISTORY) + ["dropout"]
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            raise SystemExit(f"--generator {item!r}: expected NAME=VALUE with NAME one of "
                             f"{names}")
        out[name] = float(value)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 60])
    ap.add_argument("--trials", type=int, default=20, help="null trials per size")
    ap.add_argument("--effect-trials", type=int, default=10, help="effect trials per size")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/natural_history.csv")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS),
                    help="models to fit (two-arm trials: default and selection only)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS,
                    help="designs to simulate and fit (a trial already in --out is skipped "
                         "whatever its designs)")
    ap.add_argument("--generator", nargs="+", default=[], metavar="NAME=VALUE",
                    help="natural history of the simulated patients other than the calibrated "
                         "one (DEFAULT_NATURAL_HISTORY names, e.g. acceleration_sd=0): checks "
                         "how the model fares when real patients differ from the published "
                         "figures' generator")
    args = ap.parse_args(argv)
    generator = _generator_overrides(args.generator)
    tasks = []
    for scenario, n_trials in (("no_effect", args.trials), ("effect", args.effect_trials)):
        for size in args.sizes:
            for trial in range(n_trials):
                seed = 1000 * size + trial + (0 if scenario == "no_effect" else 500)
                tasks.append({"scenario": scenario, "size": size, "trial": trial, "seed": seed,
                              "models": args.models, "arms": args.arms,
                              "generator": generator})
    out = Path(args.out)
    done = _read(out) if out.is_file() else pd.DataFrame()
    if len(done):
        have = set(zip(done["scenario"], done["size"], done["trial"], strict=True))
        tasks = [t for t in tasks if (t["scenario"], t["size"], t["trial"]) not in have]
    print(f"{len(tasks)} trials to run with {args.workers} worker(s)", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_task, t) for t in tasks]
        for fut in as_completed(futures):
            rows = pd.DataFrame(fut.result())
            out.parent.mkdir(parents=True, exist_ok=True)
            rows.to_csv(out, mode="a", header=not out.is_file(), index=False)
            print(rows[["scenario", "size", "trial", "arms", "model", "declared",
                        "classical_declared", "max_p_cycle_gt_0", "p_rho_bar_gt_0",
                        "max_r_hat"]].to_string(index=False, header=False), flush=True)
    summary = summarise(_read(out))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    summary.to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
