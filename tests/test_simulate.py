"""The simulator and the bundled example (no sampling)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from slopeshift import DataWarning, example_trial, simulate_trial
from slopeshift.simulate import example_frames


def test_simulation_is_reproducible_and_returns_the_truth():
    a, truth_a = simulate_trial(15, n_untreated=2, random_seed=9)
    b, truth_b = simulate_trial(15, n_untreated=2, random_seed=9)
    pd.testing.assert_frame_equal(a.visits, b.visits)
    pd.testing.assert_frame_equal(truth_a["slowing"], truth_b["slowing"])
    assert a.patients["treated"].sum() == 13
    assert set(truth_a["slowing"].columns) >= {"patient", "cycle", "rho", "cycle_length"}
    # scores are whole points within the scale
    v = a.visits["value"]
    assert v.between(0, 48).all() and (v == v.round()).all()


def test_truth_follows_the_model():
    data, truth = simulate_trial(40, rho=[0.5, 0.4, 0.3, 0.2], theta=-0.1, sd_patient=0.0,
                                 sd_patient_cycle=0.0, random_seed=2)
    s = truth["slowing"]
    expected = np.array([0.5, 0.4, 0.3, 0.2])[s["cycle"] - 1] - 0.1 * (s["interval"] - 3.0)
    np.testing.assert_allclose(s["rho"], expected)
    pats = truth["patients"].loc[s["patient"]]
    np.testing.assert_allclose(s["slope"], pats["beta_pre"].to_numpy() * (1 - s["rho"]))
    # the months in a cycle: the last cycle runs to the last visit
    inj = data.injections.groupby("patient")["month"].max()
    last = data.visits.groupby("patient")["month"].max()
    final = s.groupby("patient").tail(1).set_index("patient")
    np.testing.assert_allclose(final["cycle_length"], (last - inj).loc[final.index])
    # the interval: the gap to the next injection where one followed; never the follow-up of
    # an open last cycle (the protocol's gap after the last planned injection, 3, 3 or 5
    # months, or the jittered gap to an injection that dropout cancelled)
    closed = s.groupby("patient").cumcount(ascending=False) > 0
    np.testing.assert_allclose(s.loc[closed, "interval"], s.loc[closed, "cycle_length"])
    assert (final["interval"] >= 2.0).all() and (final["interval"] <= 8.0).all()
    full = final[final.index.map(data.injections.groupby("patient").size()) == 4]
    np.testing.assert_allclose(full["interval"], 5.0)


def test_dropout_can_depend_on_response():
    kw = dict(sd_patient=0.3, dropout_per_month=0.08, n_cycles_probs=(0, 0, 0, 1), random_seed=5)
    _, flat = simulate_trial(400, **kw)
    _, informative = simulate_trial(400, dropout_response=1.0, **kw)
    def corr(truth):
        p = truth["patients"]
        return np.corrcoef(p["u"], p["n_cycles"])[0, 1]
    # poor responders (low u) leave sooner: fewer injections
    assert corr(informative) > 0.2 > abs(corr(flat))


def test_natural_change_in_the_model_form():
    base, _ = simulate_trial(12, random_seed=4)
    same, _ = simulate_trial(12, sd_drift=0.0, acceleration=0.0, random_seed=4)
    pd.testing.assert_frame_equal(base.visits, same.visits)
    # acceleration alone: the natural rate steepens with the months since the run-in's middle
    _, truth = simulate_trial(30, acceleration=-0.05, sd_patient=0.0, sd_patient_cycle=0.0,
                              random_seed=4)
    s = truth["slowing"]
    beta0 = truth["patients"].loc[s["patient"], "beta_pre"].to_numpy()
    natural = s["slope"].to_numpy() / (1 - s["rho"].to_numpy())
    assert (natural < beta0).all()
    # drift: slopes scatter around the natural rate by about sd_drift
    _, truth = simulate_trial(300, sd_drift=0.5, sd_patient=0.0, sd_patient_cycle=0.0,
                              random_seed=4)
    s = truth["slowing"]
    beta0 = truth["patients"].loc[s["patient"], "beta_pre"].to_numpy()
    resid = s["slope"].to_numpy() - beta0 * (1 - s["rho"].to_numpy())
    assert truth["sd_drift"] == 0.5
    assert 0.4 < resid.std() < 0.6


def test_cycles_per_patient_and_dates():
    data, _ = simulate_trial(4, cycles_per_patient=[4, 2, 1, 0], start_date="2020-01-06",
                             random_seed=1)
    assert data.time_kind == "date"
    assert data.patients["n_injections"].tolist() == [4, 2, 1, 0]
    with pytest.raises(ValueError, match="one per patient"):
        simulate_trial(4, cycles_per_patient=[1, 2])


def test_bundled_example_matches_the_motivating_trial():
    data = example_trial()
    o = data.overview()
    assert (o["patients"], o["treated"], o["untreated"]) == (20, 19, 1)
    n = data.patients["n_injections"]
    assert (n >= 3).sum() == 12 and (n == 4).sum() == 10
    assert 6.5 < o["mean_runin_months"] < 9
    visits, _, patients = example_frames()
    assert {"date", "alsfrs_r", "fvc"} <= set(visits.columns)
    assert (patients["sex"] == "M").sum() == 16


def test_fvc_example_reports_the_dropped_visits():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = example_trial("fvc")
    assert any(issubclass(w.category, DataWarning) and "dropped" in str(w.message)
               for w in caught)
    assert len(data.dropped) > 0 and (data.dropped["reason"] == "missing FVC").all()
    assert data.outcome == "fvc"
