"""Sampling health of the default model on simulated trials of several sizes and seeds.

Prints, per trial size and seed, the worst R-hat, the smallest bulk/tail ESS, the number of
divergences and the wall time, for the default model (natural drift, enrolment 'auto'; slowing
effects and drift integrated out exactly), the model without drift (``no_drift``) and the
baseline with the effects sampled as latent non-centred parameters (what Student-t, censoring
or jumps need), fitted to the same data in the same run. ``--generator realistic`` simulates
trials with realistic natural history (:func:`slopeshift.simulate_realistic_trial`).

    python benchmarks/bench_geometry.py --sizes 20 200 2000 --seeds 1 2 3
    python benchmarks/bench_geometry.py --generator realistic --sizes 20 200 --variants default
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import pandas as pd

from slopeshift import SlopeShiftModel, simulate_realistic_trial, simulate_trial

VARIANTS = {"default": {}, "latent": {"effects": "latent"},
            "no_drift": {"drift": False, "enrolment": None}}


def _trial(n, seed, generator):
    if generator == "realistic":  # enrolled on a run-in steeper than the median, 4 injections
        return simulate_realistic_trial(n, gaps=(3.0, 3.0, 5.0), effect=0.4,
                                        enrolment_max_slope="median", random_seed=seed)[0]
    # the model's own form, natural change included (drift SD and acceleration at the default
    # priors' centres), so the default model is fitted to data it could have generated
    return simulate_trial(n, n_untreated=max(1, n // 20), sd_drift=0.5, acceleration=-0.023,
                          random_seed=seed)[0]


def run(sizes, seeds, variants, draws, tune, out, generator="model"):
    rows = []
    for n in sizes:
        for seed in seeds:
            data = _trial(n, seed, generator)
            for name in variants:
                model = SlopeShiftModel(data, **VARIANTS[name])
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = model.fit(draws=draws, tune=tune, chains=4, random_seed=seed,
                                    progressbar=False, check=False)
                a = fit.diagnostics().attrs
                row = {"patients": n, "seed": seed, "generator": generator, "variant": name,
                       "max_r_hat": round(a["max_r_hat"], 4),
                       "min_ess_bulk": round(a["min_ess_bulk"]),
                       "min_ess_tail": round(a["min_ess_tail"]),
                       "divergences": a["divergences"],
                       "healthy": a["ok"],
                       "seconds": round(time.perf_counter() - t0, 1)}
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1),
                      flush=True)
    table = pd.DataFrame(rows)
    if out:
        table.to_csv(out, index=False)
    print("\nsummary (healthy = R-hat <= 1.01, bulk and tail ESS >= 400, no divergence):")
    print(table.groupby(["patients", "variant"])["healthy"].agg(["sum", "count"]).to_string())
    return table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 200, 2000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--out", default=None, help="write the table to this CSV")
    ap.add_argument("--generator", choices=["model", "realistic"], default="model",
                    help="simulate_trial (the model's own shape) or simulate_realistic_trial "
                         "(natural history, floors, dropout, enrolment on fast decline)")
    args = ap.parse_args(argv)
    run(args.sizes, args.seeds, args.variants, args.draws, args.tune, args.out, args.generator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
