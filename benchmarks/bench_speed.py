"""Speed and memory: compile vs sampling, the compiled-model cache, and trials of 20 to 10,000.

Every measurement runs in a fresh Python process of its own (so "fresh process" means it, and
the peak memory is that trial's), and the baseline, plain ``pm.sample`` (PyMC's own NUTS) of the
same model and data with the same draws, runs in the same benchmark run beside it.

Measured, for the bundled 20-patient trial (4 chains x 1,000 draws after 1,000 tuning):
- ``fresh, cold disk cache``: the first fit in a new process with an empty PyTensor compile
  directory (what a user's very first fit costs);
- ``fresh, warm disk cache``: the first fit in a new process (PyTensor's Numba cache on disk);
- ``new model, same structure``: a second SlopeShiftModel of the same data in that process
  (the compiled model comes from slopeshift.compiled's cache);
- ``same model object``: a second fit of the same object;
- ``pm.sample``: PyMC's sampler on the same model (its own compile included);
- ``slopeshift demo``: the CLI's fit, tables, figures and report, in a fresh process.
and for simulated trials of N patients (visits monthly: about 15-20 each): compile and
sampling seconds, peak memory, R-hat, the smallest bulk ESS and ESS per second; beside them,
for N <= ``--baseline-max``, ``pm.sample`` of the same data.

    python benchmarks/bench_speed.py                       # bundled trial, 200 and 2,000
    python benchmarks/bench_speed.py --sizes 200 2000 10000 --out benchmarks/results/speed.csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import pandas as pd

DRAWS = TUNE = 1000
CHAINS = 4


def _trial(n: int, seed: int):
    from slopeshift import example_trial, simulate_trial

    if n == 0:
        return example_trial()
    # the model's own form with natural change (as in bench_geometry.py); visits monthly
    return simulate_trial(n, n_untreated=max(1, n // 20), sd_drift=0.5, acceleration=-0.023,
                          random_seed=seed)[0]


def _row(label: str, fit, wall: float, t_import: float | None = None) -> dict:
    a = fit.diagnostics().attrs
    info = fit.fit_info
    sampling = info.get("sampling_seconds", info["wall_seconds"])
    stats = fit.idata["sample_stats"]
    # leapfrog steps per draw (after tuning) and the adapted step size: with the seconds per
    # gradient, what says why sampling grows faster than the patients
    steps = stats["n_steps"] if "n_steps" in stats else stats.get("tree_size")
    return {
        "case": label, "patients": int(fit.posterior.sizes["patient"]),
        "visits": int(fit.design.sizes["visit"]), "sampler": info["sampler"],
        "import_s": None if t_import is None else round(t_import, 2),
        "compile_s": info.get("compile_seconds"), "sampling_s": sampling,
        "wall_s": round(wall, 2),
        "mean_steps": None if steps is None else round(float(steps.mean()), 1),
        "step_size": round(float(stats["step_size"].mean()), 4) if "step_size" in stats else None,
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "max_r_hat": round(a["max_r_hat"], 4), "min_ess_bulk": round(a["min_ess_bulk"]),
        "divergences": a["divergences"], "healthy": a["ok"],
        "ess_per_s": round(a["min_ess_bulk"] / wall, 1),
    }


def _fit(model, sampler="nutpie", seed=1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=seed,
                         sampler=sampler, progressbar=False)


def worker(job: dict) -> list[dict]:
    """One measurement, in this (fresh) process."""
    t0 = time.perf_counter()
    from slopeshift import SlopeShiftModel

    t_import = time.perf_counter() - t0
    data = _trial(job["patients"], job.get("seed", 1))
    rows = []
    if job["kind"] == "first":
        t = time.perf_counter()
        fit = _fit(SlopeShiftModel(data))
        rows.append(_row(job["label"], fit, time.perf_counter() - t, t_import))
        if job.get("more"):
            t = time.perf_counter()
            model = SlopeShiftModel(data)
            fit = _fit(model)
            rows.append(_row("new model, same structure", fit, time.perf_counter() - t))
            t = time.perf_counter()
            fit = _fit(model)
            rows.append(_row("same model object", fit, time.perf_counter() - t))
    elif job["kind"] == "pymc":
        t = time.perf_counter()
        fit = _fit(SlopeShiftModel(data), sampler="pymc")
        rows.append(_row(job["label"], fit, time.perf_counter() - t, t_import))
    return rows


def _spawn(job: dict, env: dict | None = None) -> list[dict]:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return [{"case": job["label"], "patients": job["patients"], "error": out.returncode}]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _demo_seconds() -> float:
    exe = os.path.join(os.path.dirname(sys.executable), "slopeshift")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([exe, "demo", "--out", tmp], capture_output=True, check=True)
        return round(time.perf_counter() - t, 1)


def run(sizes, baseline_max, out, cold):
    rows = []

    def show(new):
        rows.extend(new)
        print(pd.DataFrame(new).to_string(index=False, header=len(rows) == len(new)),
              flush=True)

    if cold:
        with tempfile.TemporaryDirectory() as tmp:
            env = os.environ | {"PYTENSOR_FLAGS": f"base_compiledir={tmp}"}
            show(_spawn({"kind": "first", "patients": 0,
                         "label": "fresh, cold disk cache"}, env))
    show(_spawn({"kind": "first", "patients": 0, "label": "fresh, warm disk cache",
                 "more": True}))
    show(_spawn({"kind": "pymc", "patients": 0, "label": "pm.sample"}))
    demo = _demo_seconds()
    rows.append({"case": "slopeshift demo (fresh process)", "patients": 20, "wall_s": demo})
    print(f"slopeshift demo, fresh process: {demo} s", flush=True)
    for n in sizes:
        show(_spawn({"kind": "first", "patients": n, "label": f"{n} patients"}))
        if n <= baseline_max:
            show(_spawn({"kind": "pymc", "patients": n, "label": f"{n} patients, pm.sample"}))
    table = pd.DataFrame(rows)
    _ratios(table)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    if out:
        table.to_csv(out, index=False)
        print(f"written {out}")
    return table


def _ratios(table: pd.DataFrame) -> None:
    """slopeshift against pm.sample of the same model and data, from this run."""
    print("\nratios to pm.sample, same data, same run (wall time; min bulk ESS per second):")
    for label, base in (("fresh, warm disk cache", "pm.sample"),
                        ("new model, same structure", "pm.sample")):
        a = table.loc[table["case"] == label]
        b = table.loc[table["case"] == base]
        if len(a) and len(b) and "wall_s" in b:
            a, b = a.iloc[0], b.iloc[0]
            print(f"  bundled, {label}: {b['wall_s'] / a['wall_s']:.1f}x faster, "
                  f"{a['ess_per_s'] / b['ess_per_s']:.1f}x the ESS/s")
    for n in table["patients"].unique():
        a = table.loc[table["case"] == f"{n} patients"]
        b = table.loc[table["case"] == f"{n} patients, pm.sample"]
        if len(a) and len(b) and "wall_s" in b and pd.notna(b.iloc[0].get("wall_s")):
            a, b = a.iloc[0], b.iloc[0]
            print(f"  {n} patients: {b['wall_s'] / a['wall_s']:.1f}x faster, "
                  f"{a['ess_per_s'] / b['ess_per_s']:.1f}x the ESS/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[200, 2000])
    parser.add_argument("--baseline-max", type=int, default=200,
                        help="largest trial that also gets the pm.sample baseline")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the fit with an empty PyTensor compile directory")
    parser.add_argument("--out", default=None, help="CSV for the results")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker)), default=float))
    else:
        run(args.sizes, args.baseline_max, args.out, not args.no_cold)
