"""Sampler settings by measured ESS per second over seeds: tuning length, target acceptance,
mass matrix.

For each trial size and each setting, fits the default model to the same simulated trials
(one per seed; the model's own generator with natural drift, as ``bench_geometry.py``, or with
``--generator two-arm`` realistic two-arm trials of N treated + N sham controls enrolled on a
fast run-in, 4 injections 3 months apart, a population slowing of 0.4) and
prints, per setting, the share of healthy fits (R-hat <= 1.01, bulk and tail ESS >= 400, no
divergence), the median smallest bulk ESS, the median sampling time and the median smallest
bulk ESS per second of sampling. Every fit of one size reuses the compiled model, so compile
time is left out; the library's default setting is the first row of each size.

    python benchmarks/bench_settings.py --sizes 20 200 --seeds 1 2 3 \\
        --out benchmarks/results/settings.csv
    python benchmarks/bench_settings.py --generator two-arm --sizes 60 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

SETTINGS = {
    # target acceptance 0.9 below 100 patients, 0.95 from there (fit.default_target_accept)
    "default (tune 1000, accept 0.9/0.95, diag)": {},
    "accept 0.9": {"target_accept": 0.9},
    "tune 500": {"tune": 500},
    "tune 2000": {"tune": 2000},
    "accept 0.8": {"target_accept": 0.8},
    "accept 0.95": {"target_accept": 0.95},
    "low-rank mass matrix": {"mass_matrix": "low_rank"},
    # the persistent rates in the coordinates used before 2026-12-07 (partly centred instead
    # of at their approximate conditional posterior; docs "Speed and memory")
    "partly centred rates": {},
}


def main() -> None:
    from slopeshift import SlopeShiftModel, simulate_realistic_trial, simulate_trial

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--generator", choices=["model", "two-arm"], default="model")
    ap.add_argument("--out", default=None, help="write the per-fit table to this CSV")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    class PartlyCentred(SlopeShiftModel):
        _conditional_coordinates = False

    rows = []
    for n in args.sizes:
        for seed in args.seeds:
            if args.generator == "two-arm":
                data = simulate_realistic_trial(n, n_controls=n, gaps=(3.0, 3.0, 3.0),
                                                effect=0.4, enrolment_max_slope="median",
                                                random_seed=seed)[0]
            else:
                data = simulate_trial(n, n_untreated=max(1, n // 20), sd_drift=0.5,
                                      acceleration=-0.023, random_seed=seed)[0]
            for name in args.settings:
                t = time.perf_counter()
                cls = PartlyCentred if name == "partly centred rates" else SlopeShiftModel
                fit = cls(data).fit(random_seed=seed, progressbar=False, check=False,
                                    **SETTINGS[name])
                wall = time.perf_counter() - t
                a = fit.diagnostics().attrs
                sampling = fit.fit_info.get("sampling_seconds", wall)
                rows.append({
                    "generator": args.generator, "patients": n, "seed": seed,
                    "setting": name, "healthy": a["ok"],
                    "max_r_hat": round(a["max_r_hat"], 4),
                    "min_ess_bulk": round(a["min_ess_bulk"]),
                    "min_ess_tail": round(a["min_ess_tail"]), "divergences": a["divergences"],
                    "sampling_s": round(sampling, 2), "wall_s": round(wall, 2),
                    "ess_per_s": round(a["min_ess_bulk"] / sampling, 1)})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = table.groupby(["patients", "setting"], sort=False).agg(
        fits=("healthy", "size"), healthy=("healthy", "mean"),
        max_r_hat=("max_r_hat", "max"), min_ess_bulk=("min_ess_bulk", "median"),
        sampling_s=("sampling_s", "median"), ess_per_s=("ess_per_s", "median"))
    print(summary.to_string())


if __name__ == "__main__":
    main()
