"""NaturalHistory.from_cohort: natural-change parameters learnt on untreated patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slopeshift import NaturalHistory, Prior
from slopeshift.cohort import _cut_into_periods


def _cohort(n, sd_drift=0.5, accel=-0.03, seed=0, months=18):
    """Untreated patients: persistent rate, a fresh drift every 6 months, visit noise 1.7."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(0.0, months + 0.5, 1.0)
    for i in range(n):
        b = rng.normal(-0.85, 0.4)
        rate = b + accel * t + np.repeat(rng.normal(0, sd_drift, months // 6 + 1), 6)[: t.size]
        score = 40 + np.concatenate([[0.0], np.cumsum(rate[:-1])])
        rows += [{"patient": f"R{i:03d}", "time": tt, "alsfrs_r": float(np.clip(y, 0, 48))}
                 for tt, y in zip(t, np.round(score + rng.normal(0, 1.7, t.size)), strict=True)]
    return pd.DataFrame(rows)


def test_periods_are_cut_from_each_patients_first_visit():
    visits = pd.DataFrame({"patient": ["A"] * 5 + ["B"] * 3, "time": [0, 4, 8, 12, 14, 3, 6, 8],
                           "alsfrs_r": [40, 38, 36, 33, 32, 30, 29, 28]})
    data = _cut_into_periods(visits, "alsfrs_r", 6.0, "patient", "time")
    inj = data.injections
    assert inj.loc[inj["patient"] == "A", "time"].tolist() == [6.0, 12.0]
    assert inj.loc[inj["patient"] == "B", "time"].tolist() == []  # 5 months of follow-up
    with pytest.raises(ValueError, match="more than 20 months of follow-up"):
        _cut_into_periods(visits, "alsfrs_r", 20.0, "patient", "time")


def test_priors_are_discounted_like_a_power_prior():
    nh = NaturalHistory("alsfrs_r", summaries={"sd_drift": (np.log(0.5), 0.1),
                                               "acceleration": (-0.02, 0.01),
                                               "mu_beta": (-0.9, 0.05),
                                               "sd_beta": (np.log(0.4), 0.1)})
    full = nh.priors()
    assert set(full) == {"sd_drift", "acceleration"}
    assert full["sd_drift"] == Prior("LogNormal", mu=np.log(0.5), sigma=0.1)
    half = nh.priors(weight=0.25, population=True)
    assert half["acceleration"].params["sigma"] == pytest.approx(0.02)
    assert half["mu_beta"] == Prior("Normal", mu=-0.9, sigma=0.1)
    with pytest.raises(ValueError, match="power-prior weight"):
        nh.priors(weight=0.0)
    table = nh.table().set_index("parameter")
    assert table.loc["sd_drift", "median"] == pytest.approx(0.5)


@pytest.mark.slow
def test_drift_and_acceleration_are_recovered_from_a_cohort():
    nh = NaturalHistory.from_cohort(_cohort(150, seed=4), period_months=6.0, draws=500,
                                    tune=500, chains=2, random_seed=3)
    est = nh.table().set_index("parameter")
    assert est.loc["sd_drift", "ci_2.5"] < 0.5 < est.loc["sd_drift", "ci_97.5"]
    assert est.loc["acceleration", "ci_2.5"] < -0.03 < est.loc["acceleration", "ci_97.5"]
    assert nh.n_patients == 150 and nh.period_months == 6.0
    assert set(nh.priors()) == {"sd_drift", "acceleration"}
