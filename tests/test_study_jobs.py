"""Trial design (power) and null checks on untreated patients with sham injections."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from slopeshift import simulate_untreated_cohort
from slopeshift.study import NullCheck, TrialDesign, null_check, power
from slopeshift.study_jobs import _eligible, decision, sham_trial

QUICK = {"draws": 150, "tune": 200, "chains": 2}


@pytest.fixture(scope="module")
def cohort():
    return simulate_untreated_cohort(40, months=16, item_level=False, random_seed=2)


def test_sham_trial_gives_the_schedule_and_cuts_follow_up(cohort):
    ids = sorted(cohort["patient"].unique())[:3]
    data = sham_trial(cohort, [ids[0], ids[1], ids[0]], runin_months=6, gaps=(3.0, 3.0),
                      followup_months=2)
    inj = data.injections
    assert sorted(inj["patient"].unique()) == sorted([ids[0], ids[1], f"{ids[0]}#2"])
    first = cohort[cohort["patient"] == ids[0]]["time"].min()
    times = inj[inj["patient"] == ids[0]]["time"].to_numpy()
    np.testing.assert_allclose(times, first + np.array([6.0, 9.0, 12.0])[:len(times)])
    # visits end at the last sham injection + the follow-up
    last = data.visits[data.visits["patient"] == ids[0]]["time"].max()
    assert last <= times[-1] + 2 + 1e-9
    # a repeated patient is a new patient with the same scores
    a = data.visits[data.visits["patient"] == ids[0]]["value"].to_numpy()
    b = data.visits[data.visits["patient"] == f"{ids[0]}#2"]["value"].to_numpy()
    np.testing.assert_array_equal(a, b)


def test_eligible_patients_have_a_run_in_and_follow_up(cohort):
    pool = _eligible(cohort, 6.0, 3, 3.0, "alsfrs_r", "patient", "time")
    assert len(pool) > 20 and pool["runin_slope"].notna().all()
    short = cohort[cohort["time"] < 7.0]  # no follow-up after the run-in
    assert _eligible(short, 6.0, 3, 3.0, "alsfrs_r", "patient", "time").empty


def test_decision_rule_is_checked():
    assert decision(None) == ("rho_bar_given", 0.0, 0.975)
    assert decision(("rho_bar", 0.25, 0.8)) == ("rho_bar", 0.25, 0.8)
    with pytest.raises(ValueError, match="quantity, threshold, probability"):
        decision(("rho_bar", 0.25, 1.5))


def test_design_is_plain_configuration():
    design = TrialDesign(n_patients=40, n_controls=40, gaps=(4.5, 4.5))
    assert design.to_dict()["gaps"] == [4.5, 4.5]
    data, truth = design.simulate(effect=0.5, random_seed=3)
    arms = data.patients["arm"].value_counts()
    assert arms["treated"] == 40 and arms["control"] == 40
    assert truth["effect"] == 0.5


def test_null_check_needs_eligible_patients(cohort, tmp_path):
    # the cohort is followed 16 months: nobody has 3 months after a 14-month run-in
    with pytest.raises(ValueError, match="run-in of 14 months"):
        null_check(cohort, 10, 2, tmp_path, runin_months=14.0, gaps=(3.0, 3.0, 3.0))


@pytest.mark.slow
def test_power_and_null_check_run_small_studies(cohort, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = power(TrialDesign(n_patients=10, gaps=(3.0,)),
                      [{"effect": 0.0}, {"effect": 0.6}], 2, tmp_path / "power",
                      fit_options=QUICK, workers=1, progress=False)
        check = null_check(cohort, 10, 2, tmp_path / "null", gaps=(3.0,), fit_options=QUICK,
                           workers=1, progress=False)
    assert list(table["effect"]) == [0.0, 0.6] and (table["n_trials"] == 2).all()
    assert {"p_success", "p_success_se", "rho_bar_bias", "rho_bar_coverage", "theta_bias",
            "declared_mean", "healthy"} <= set(table.columns)
    records = table.attrs["records"]
    assert len(records) == 4 and records["task"].tolist() == [0, 1, 2, 3]
    # no effect for anyone in the null rows: no true responders
    assert (records.loc[records["spec_effect"] == 0.0, "true_responders"] == 0).all()
    assert isinstance(check, NullCheck) and len(check.records) == 2
    s = check.summary.set_index("check")
    assert s.loc["patients declared responders", "n"] >= 10
    assert ((s["rate"] >= 0) & (s["rate"] <= 1)).all()
    assert (s["calibrated"] <= 1).all()
    # resuming the finished study runs nothing and gives the same records
    again = null_check(cohort, 10, 2, tmp_path / "null", gaps=(3.0,), fit_options=QUICK,
                       workers=1, progress=False)
    pd.testing.assert_frame_equal(again.records, check.records)


def test_prior_trial_is_seeded_and_keeps_the_design(example_data):
    from slopeshift import SlopeShiftModel
    from slopeshift.prior_check import prior_trial

    model = SlopeShiftModel(example_data, enrolment=None, floors="include")
    a, truth = prior_trial(model, 4)
    b, _ = prior_trial(model, 4)
    c, _ = prior_trial(model, 5)
    pd.testing.assert_frame_equal(a.visits, b.visits)
    assert not np.allclose(a.visits["value"], c.visits["value"])
    # same visits, injections and arms; new scores
    np.testing.assert_array_equal(a.visits["time"], example_data.visits["time"])
    pd.testing.assert_frame_equal(a.injections, example_data.injections)
    assert not np.allclose(a.visits["value"], example_data.visits["value"])
    assert set(truth) >= {"rho_bar", "theta", "mu_beta", "sd_patient", "rho_cycle", "rho"}
    assert truth["rho"].shape == (example_data.patients.shape[0], model.design.sizes["cycle"])


@pytest.mark.slow
def test_calibrate_runs_a_small_study(example_data, tmp_path):
    from slopeshift.study import Calibration, calibrate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(example_data, 2, tmp_path, fit_options=QUICK, workers=1,
                        progress=False)
    assert isinstance(cal, Calibration) and len(cal.records) == 2
    pit = cal.ranks["prior_sbc"].to_dataset()
    assert set(pit.data_vars) == {"rho_bar", "theta", "mu_beta", "sd_patient"}
    assert ((pit.to_array() > 0) & (pit.to_array() < 1)).all()
    assert list(cal.coverage["level"]) == [0.5, 0.9] and (cal.coverage["n_cells"] > 20).all()
    assert cal.reliability["n"].sum() == cal.coverage["n_cells"].iloc[0]
