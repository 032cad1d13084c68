"""Simulation-based calibration on the motivating design, and what a study costs per trial.

Runs :func:`slopeshift.study.calibrate` on the bundled trial's design (its visit times,
injections and arms; scores simulated from the priors) and checks each quantity's rank ECDF
against its simultaneous 99% envelope (ArviZ's ``ecdf_pit``, the band ``plot_ecdf_pit`` draws),
then prints the coverage of the rho_ik intervals and the reliability of P(rho_ik > 25%). It
also times the first ``--speedup-trials`` trials of a second study with 1 worker and with 2,
in fresh stores, for the wall time per trial and the speed-up.

    python benchmarks/bench_sbc.py --trials 200 --out sbc-200
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np


def envelope_check(cal, prob: float = 0.99) -> list[dict]:
    """Per quantity: whether the PIT ECDF leaves its simultaneous ``prob`` envelope."""
    from arviz_stats.ecdf_utils import ecdf_pit

    rows = []
    ds = cal.ranks["prior_sbc"].to_dataset()
    for name in ds.data_vars:
        vals = np.asarray(ds[name].values, dtype=float).ravel()
        vals = vals[np.isfinite(vals)]
        _, ecdf, lower, upper = ecdf_pit(vals, prob, 2000, rng=np.random.default_rng(0))
        rows.append({"quantity": name, "trials": len(vals),
                     "outside_envelope": bool(((ecdf < lower) | (ecdf > upper)).any())})
    return rows


def main() -> None:
    from slopeshift import example_trial
    from slopeshift.study import calibrate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="sbc-bench", help="the study's store (resumable)")
    ap.add_argument("--speedup-trials", type=int, default=12)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = example_trial()
    t = time.perf_counter()
    cal = calibrate(data, n_trials=args.trials, out_dir=args.out, workers=args.workers,
                    progress=False)
    wall = time.perf_counter() - t
    print(f"SBC: {args.trials} trials of the bundled design, {args.workers} workers: "
          f"{wall:.0f} s ({wall / args.trials:.1f} s per trial, resumed tasks included)")
    for row in envelope_check(cal):
        print(row)
    print(cal.coverage.to_string(index=False))
    print(cal.reliability.to_string(index=False))
    rec = cal.records
    if "max_r_hat" in rec:
        print(f"fits with R-hat > 1.01: {(rec['max_r_hat'] > 1.01).sum()} of {len(rec)}")
    for workers in (1, 2) if args.speedup_trials > 0 else ():
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            calibrate(data, n_trials=args.speedup_trials, out_dir=tmp, workers=workers,
                      seed=1, progress=False)
            wall = time.perf_counter() - t
        print(f"{args.speedup_trials} trials, {workers} worker(s): {wall:.0f} s, "
              f"{wall / args.speedup_trials:.1f} s per trial (one compile per worker included)")


if __name__ == "__main__":
    main()
