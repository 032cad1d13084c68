"""Natural history, regression to the mean and controls, on realistic simulated trials.

Usage: python examples/natural_history.py [OUT_DIR]

1. A trial with **no treatment effect** (sham injections at months 0 and 3 after a 6-month
   run-in), its 40 patients enrolled because their run-in decline was steeper than the median
   (as cell-therapy trials enrol), simulated by :func:`slopeshift.simulate_realistic_trial`,
   whose untreated patients reproduce the published natural history of ALS. It is analysed
   three ways: the classical per-patient least-squares rule, the model without natural change
   (``drift=False, enrolment=None``: the run-in rate assumed to continue) and the default model
   (drift, acceleration, enrolment). Who was followed for less, and how fast they declined
   (:func:`slopeshift.classical.followup_table`): fast decliners who leave make the later
   cycles of a single-arm trial look slowed.
2. The same design with a **concurrent control arm** (20 + 20) and a true 50% slowing.
3. **Natural history from an untreated cohort** of your own (here simulated):
   ``NaturalHistory.from_cohort`` fits the drift and acceleration, and ``priors(weight=0.5)``
   passes them, discounted, to a single-arm trial's model.

Writes comparison.csv to OUT_DIR (or a new temporary folder). Sampling is kept short so the
example runs in a few minutes; real analyses use the defaults of ``fit()``.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from slopeshift import (
    NaturalHistory,
    SlopeShiftModel,
    classical_analysis,
    simulate_realistic_trial,
    simulate_untreated_cohort,
)
from slopeshift.classical import followup_summary, followup_table

QUICK = {"draws": 400, "tune": 500, "chains": 2, "progressbar": False, "check": False}
SEED = 7


def _calls(fit, label: str) -> dict:
    """Responders declared at P(slowing > 25%) >= 0.9, and the population's P(slowing > 0)."""
    pt = fit.patients(0.25)
    pt = pt[pt["status"] == "treated"]
    pop = fit.population(0.25).set_index("quantity")
    cycles = [q for q in pop.index if q.startswith("rho_cycle")]
    return {"analysis": label, "responders_at_p0.9": int((pt["p_gt_0.25"] >= 0.9).sum()),
            "evaluable": int(pt["p_gt_0.25"].notna().sum()),
            "rho_bar_%": round(100 * pop.loc["rho_bar", "mean"], 1),
            "P(rho_bar>0)": round(pop.loc["rho_bar", "p_gt_0"], 3),
            "max_k P(rho_k>0)": round(pop.loc[cycles, "p_gt_0"].max(), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Natural history, regression to the mean "
                                                 "and controls.")
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="output folder (default: a new temporary folder)")
    out = parser.parse_args(argv).out or Path(tempfile.mkdtemp(prefix="slopeshift-nh-"))
    out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 160)
    warnings.simplefilter("ignore")  # short runs: convergence warnings are expected here
    rows = []

    # 1. no effect, enrolment on fast run-in decline
    data, truth = simulate_realistic_trial(
        40, effect=0.0, effect_sd=0.0, gaps=(3.0,), enrolment_max_slope="median",
        random_seed=SEED)
    print(f"1. No treatment effect; {len(data.patients)} patients enrolled on a run-in slope "
          f"below {truth['enrolment_threshold']:.2f} points/month.")
    print("   Follow-up and dropout:", followup_summary(followup_table(data)))
    cls = classical_analysis(data)
    cp = cls.patients[cls.patients["group"] == "treated"]
    rows.append({"analysis": "no effect: classical least squares",
                 "responders_at_p0.9": int(cp["responder"].fillna(False).astype(bool).sum()),
                 "evaluable": int(cp["reduction"].notna().sum()),
                 "rho_bar_%": round(cls.improvement_of_means_pct, 1)})
    old = SlopeShiftModel(data, drift=False, enrolment=None).fit(random_seed=SEED, **QUICK)
    rows.append(_calls(old, "no effect: run-in rate assumed to continue"))
    new = SlopeShiftModel(data).fit(random_seed=SEED, **QUICK)
    rows.append(_calls(new, "no effect: default (drift, acceleration, enrolment)"))

    # 2. two arms, a true 50% slowing
    data2, _ = simulate_realistic_trial(
        20, n_controls=20, effect=0.5, effect_sd=0.2, gaps=(3.0,),
        enrolment_max_slope="median", random_seed=SEED + 1)
    two = SlopeShiftModel(data2).fit(random_seed=SEED, **QUICK)
    rows.append(_calls(two, "50% slowing, 20 treated + 20 controls"))

    # 3. natural history from an untreated cohort, discounted to half its weight
    cohort = simulate_untreated_cohort(150, months=18.0, random_seed=SEED)
    nh = NaturalHistory.from_cohort(cohort, period_months=6.0, draws=400, tune=500, chains=2,
                                    random_seed=SEED)
    print("\n3. Natural history fitted on an untreated cohort (150 patients, 18 months):")
    print(nh.table().to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    priors = nh.priors(weight=0.5)
    print("   as priors (weight 0.5):", ", ".join(f"{k} {v!r}" for k, v in priors.items()))
    cohort_fit = SlopeShiftModel(data, priors=priors).fit(random_seed=SEED, **QUICK)
    rows.append(_calls(cohort_fit, "no effect: natural history from the cohort"))

    table = pd.DataFrame(rows)
    print("\nComparison (responders = P(slowing > 25%) >= 0.9; classical: > 25% by least "
          "squares):")
    print(table.to_string(index=False))
    table.to_csv(out / "comparison.csv", index=False)
    print(f"\nWrote {out / 'comparison.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
