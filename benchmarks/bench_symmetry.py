"""Does a two-arm analysis treat its arms alike? The twin-arm check.

Each trial's treated patients are copied into a control arm of identical twins (same visits,
same sham injection times, ids prefixed with ``c``). The two arms then changed identically, so
a model that treats its arms alike must give P(rho_bar > 0) = 0.5 (up to Monte Carlo error,
about 0.01) and a population slowing near 0. A mean P below 0.5 is a lean towards "no
slowing" (conservative), above 0.5 towards slowing.

Trials come from two generators: ``realistic`` (:func:`slopeshift.simulate_realistic_trial`,
item-level scores with floors, enrolled on a fast run-in, sham injections 3 months apart, the
natural-history benchmark's no-effect design) and ``model`` (:func:`slopeshift.simulate_trial`
with natural drift and acceleration, totals only, no floors). Each model variant is fitted to
the same twin trials.

    python benchmarks/bench_symmetry.py --trials 10 --variants default additive
    python benchmarks/bench_symmetry.py --generators model --variants default additive
    python benchmarks/bench_symmetry.py --size 60 --variants default
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd

VARIANTS = {
    "default": {},
    "additive": {"parameterization": "additive"},
    "floors include": {"floors": "include"},
    "additive, floors include": {"parameterization": "additive", "floors": "include"},
    "additive, no interval effect": {"parameterization": "additive", "interval_effect": False},
    "additive, all-comers": {"parameterization": "additive", "enrolment": None},
    "no interval effect": {"interval_effect": False},
}


def twin_trial(generator: str, trial: int, size: int = 20):
    """A trial whose control arm is an identical copy of its treated patients."""
    from slopeshift import TrialData, simulate_realistic_trial, simulate_trial

    if generator == "realistic":
        data, _ = simulate_realistic_trial(
            size, n_controls=size, enrolment_max_slope="median",
            random_seed=1000 * size + trial + 50_000, effect=0.0, effect_sd=0.0,
            interval_effect=0.0, gaps=(3.0,), runin_months=6.0, followup_months=6.0)
        items = [c for c in data.visits.columns if c[0] in "qr" and c[1:].isdigit()]
        arm = data.patients["arm"]
        ids = [str(p) for p in arm.index[arm == "treated"]]
        visits = data.visits[["patient", "time", *items]].copy()
    else:
        data, _ = simulate_trial(size, rho=0.0, theta=0.0, sd_drift=0.5, acceleration=-0.023,
                                 random_seed=trial + (0 if size == 20 else 1000 * size))
        visits = data.visits[["patient", "time", "value"]].rename(columns={"value": "alsfrs_r"})
        ids = [str(p) for p in data.patients.index]
    injections = data.injections[["patient", "time", "cycle"]].copy()
    for frame in (visits, injections):
        frame["patient"] = frame["patient"].astype(str)
    visits = visits[visits["patient"].isin(ids)]
    injections = injections[injections["patient"].isin(ids)]
    twins_v = visits.assign(patient="c" + visits["patient"])
    twins_i = injections.assign(patient="c" + injections["patient"])
    patients = pd.DataFrame({"patient": ids + ["c" + p for p in ids],
                             "arm": ["treated"] * len(ids) + ["control"] * len(ids)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrialData.from_frames(pd.concat([visits, twins_v], ignore_index=True),
                                     pd.concat([injections, twins_i], ignore_index=True),
                                     patients)


def run(generators, trials, variants, out=None, size=20):
    from slopeshift import SlopeShiftModel

    rows = []
    for generator in generators:
        for trial in range(trials):
            data = twin_trial(generator, trial, size)
            for name in variants:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = SlopeShiftModel(data, **VARIANTS[name]).fit(
                        random_seed=trial + 1, progressbar=False, check=False)
                pop = fit.population(0.25).set_index("quantity")
                a = fit.diagnostics().attrs
                row = {"generator": generator, "size": size, "trial": trial, "variant": name,
                       "p_rho_bar_gt_0": round(float(pop.loc["rho_bar", "p_gt_0"]), 4),
                       "rho_bar_mean": round(float(pop.loc["rho_bar", "mean"]), 4),
                       "healthy": bool(a["ok"]),
                       "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1),
                      flush=True)
    table = pd.DataFrame(rows)
    if out:
        table.to_csv(out, index=False)
    summary = table.groupby(["generator", "size", "variant"]).agg(
        trials=("trial", "size"), mean_p=("p_rho_bar_gt_0", "mean"),
        se_p=("p_rho_bar_gt_0", lambda p: p.std(ddof=1) / np.sqrt(len(p))),
        mean_rho_bar=("rho_bar_mean", "mean"), healthy=("healthy", "mean"))
    print("\nTwin arms (a model that treats its arms alike: mean P = 0.5, rho_bar = 0)")
    print(summary.round(3).to_string())
    return table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generators", nargs="+", default=["realistic", "model"],
                    choices=["realistic", "model"])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--size", type=int, default=20, help="treated patients (and as many twins)")
    ap.add_argument("--variants", nargs="+", default=["default", "additive"],
                    choices=list(VARIANTS))
    ap.add_argument("--out", default=None, help="CSV of one row per fit")
    args = ap.parse_args(argv)
    run(args.generators, args.trials, args.variants, args.out, args.size)


if __name__ == "__main__":
    sys.exit(main())
