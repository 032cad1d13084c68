"""Trial design (power) and null checks on untreated patients with sham injections."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from slopeshift import simulate_untreated_cohort
from slopeshift.study import (
    NullCheck,
    TrialDesign,
    design_grid,
    expand_designs,
    null_check,
    plot_operating_characteristics,
    power,
    true_rho_bar,
)
from slopeshift.study_jobs import _eligible, _power_summary, decision, sham_trial

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


def test_expand_designs_names_every_cell():
    cells = expand_designs(TrialDesign(runin_months=4.0), n_patients=[20, 40],
                           gaps=[(3, 3, 3), (6, 6)], arms=["single", "two-arm"])
    assert list(cells)[:3] == ["n=20, gaps 3/3/3, single-arm", "n=20, gaps 3/3/3, two-arm",
                               "n=20, gaps 6/6, single-arm"]
    assert len(cells) == 8
    two = cells["n=40, gaps 6/6, two-arm"]
    assert (two.n_patients, two.n_controls, two.gaps, two.runin_months) == (40, 40, (6.0, 6.0),
                                                                            4.0)
    assert cells["n=40, gaps 6/6, single-arm"].n_controls == 0
    with pytest.raises(ValueError, match="unknown setting"):
        expand_designs(patients=[20])
    with pytest.raises(ValueError, match="'single' or 'two-arm'"):
        expand_designs(arms=["placebo"])
    with pytest.raises(ValueError, match="either arms or n_controls"):
        expand_designs(n_controls=[0, 10], arms=["single"])


def test_design_grid_checks_its_input(tmp_path):
    with pytest.raises(ValueError, match="designs is empty"):
        design_grid({}, {"effect": 0.0}, 2, tmp_path)
    with pytest.raises(TypeError, match="'a' is a dict, not a TrialDesign"):
        design_grid({"a": {"n_patients": 10}}, {"effect": 0.0}, 2, tmp_path)
    with pytest.raises(ValueError, match="unknown key"):
        design_grid([TrialDesign()], {"slowing": 0.5}, 2, tmp_path)
    with pytest.raises(ValueError, match="n_trials must be at least 1"):
        design_grid([TrialDesign()], {"effect": 0.5}, 0, tmp_path)


def test_true_rho_bar_weights_the_treated_observed_months():
    design = TrialDesign(n_patients=30, n_controls=10, gaps=(3.0, 6.0))
    _, truth = design.simulate(effect=0.5, interval_effect=-0.1, random_seed=4)
    # by hand: cells of treated patients with a visit, each at effect + theta * (gap - 3)
    cells = truth["slowing"]
    treated = truth["patients"].index[truth["patients"]["arm"] == "treated"]
    cells = cells[cells["patient"].isin(treated) & cells["observed"]]
    pop = 0.5 - 0.1 * (cells["gap"] - 3.0)
    expected = np.average(pop, weights=cells["observed_months"])
    assert true_rho_bar(truth) == pytest.approx(expected)
    # cycles 3 months apart are at the reference; the last cycle's planned gap is 6 months,
    # so the truth lies between 0.2 and 0.5
    assert 0.2 < true_rho_bar(truth) < 0.5
    _, flat = TrialDesign(n_patients=10, gaps=(3.0, 3.0)).simulate(
        effect=0.4, interval_effect=-0.1, random_seed=1)
    # injections 3 months apart as planned, give or take the visit windows: near 0.4
    assert true_rho_bar(flat) == pytest.approx(0.4, abs=0.02)


def _records(label, effect, p_rule, rho_bar_mean, truth, n=40, seed=0):
    rng = np.random.default_rng(seed)
    rho = rho_bar_mean + rng.normal(0, 0.05, n)
    return pd.DataFrame({
        "task": range(n), "spec_label": label, "spec_effect": effect,
        "spec_interval_effect": 0.0, "success": rng.random(n) < p_rule,
        "rho_bar_mean": rho, "rho_bar_lo": rho - 0.2, "rho_bar_hi": rho + 0.2,
        "true_rho_bar": truth, "theta_mean": rng.normal(0, 0.01, n), "theta_lo": -0.1,
        "theta_hi": 0.1, "declared": rng.integers(0, 3, n), "true_responders": 5,
        "max_r_hat": 1.0, "min_ess": 800.0, "divergences": 0})


def test_power_summary_scores_each_design_against_its_own_truth():
    recs = pd.concat([_records("a", 0.0, 0.0, 0.0, 0.0),
                      _records("a", 0.5, 1.0, 0.45, 0.45, seed=1),
                      _records("b", 0.5, 0.5, 0.5, 0.3, seed=2)], ignore_index=True)
    table = _power_summary(recs, ("rho_bar_given", 0.0, 0.975))
    t = table.set_index(["design", "effect"])
    assert t.loc[("a", 0.0), "p_success"] == 0.0 and t.loc[("a", 0.5), "p_success"] == 1.0
    # design a is unbiased against its truth (0.45, not the nominal 0.5) and covers it
    assert abs(t.loc[("a", 0.5), "rho_bar_bias"]) < 0.03
    assert t.loc[("a", 0.5), "rho_bar_coverage"] == 1.0
    # design b overshoots its truth by 0.2: biased, and its +-0.2 intervals rarely cover
    assert t.loc[("b", 0.5), "rho_bar_bias"] == pytest.approx(0.2, abs=0.03)
    assert t.loc[("b", 0.5), "rho_bar_coverage"] < 0.7
    assert t.loc[("b", 0.5), "p_success_se"] == pytest.approx(np.sqrt(0.25 / 40), abs=0.02)


def test_operating_characteristics_plot_draws_every_design_and_effect():
    import matplotlib.pyplot as plt

    recs = pd.concat([_records(lab, eff, p, eff, eff, seed=i)
                      for i, (lab, eff, p) in enumerate([("n=20", 0.0, 0.05), ("n=20", 0.5, 0.6),
                                                         ("n=40", 0.0, 0.02),
                                                         ("n=40", 0.5, 0.9)])],
                     ignore_index=True)
    table = _power_summary(recs, ("rho_bar_given", 0.0, 0.975))
    fig = plot_operating_characteristics(table)
    ax_p = fig.axes[0]
    assert [t.get_text() for t in ax_p.get_yticklabels()] == ["n=20", "n=40"]
    # one error bar per design and effect, at the table's success probabilities
    xs = sorted(x for line in ax_p.lines if line.get_marker() == "o"
                for x in line.get_xdata())
    np.testing.assert_allclose(xs, sorted(table["p_success"]))
    assert any(abs(line.get_xdata()[0] - 0.025) < 1e-12 for line in ax_p.lines
               if line.get_linestyle() == ":")
    with pytest.raises(ValueError, match="lacks column"):
        plot_operating_characteristics(table.drop(columns="p_success"))
    plt.close(fig)


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


@pytest.mark.slow
def test_design_grid_runs_every_cell_in_one_study(tmp_path):
    cells = expand_designs(TrialDesign(n_patients=8, gaps=(3.0,), followup_months=3.0),
                           arms=["single", "two-arm"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = design_grid(cells, [{"effect": 0.0}, {"effect": 0.6}], 2, tmp_path / "grid",
                            fit_options=QUICK, workers=1, progress=False)
    assert list(table["design"]) == ["single-arm", "single-arm", "two-arm", "two-arm"]
    assert list(table["arms"]) == list(table["design"])
    assert list(table["n_controls"]) == [0, 0, 8, 8] and (table["n_trials"] == 2).all()
    assert table.loc[table["effect"] == 0.0, "true_rho_bar"].eq(0.0).all()
    np.testing.assert_allclose(table.loc[table["effect"] == 0.6, "true_rho_bar"], 0.6)
    records = table.attrs["records"]
    assert sorted(records["task"]) == list(range(8))
    assert set(records["spec_label"]) == {"single-arm", "two-arm"}
    # resumed: the finished study runs nothing again and gives the same table
    again = design_grid(cells, [{"effect": 0.0}, {"effect": 0.6}], 2, tmp_path / "grid",
                        fit_options=QUICK, workers=1, progress=False)
    pd.testing.assert_frame_equal(again, table)


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


def test_calibrate_needs_a_trial(example_data, tmp_path):
    from slopeshift.study import calibrate

    with pytest.raises(ValueError, match="n_trials must be at least 1, not 0"):
        calibrate(example_data, 0, tmp_path)


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
