"""Summaries on a synthetic posterior with known draws: no sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from slopeshift.summaries import (
    CAVEAT,
    cycle_table,
    interval_table,
    patient_slowing_draws,
    patient_table,
    population_table,
    responder_table,
    slowing_table,
)

PATIENTS = ["A", "B", "C", "D"]  # D is untreated; C had one cycle with no visit after it


def _design() -> xr.Dataset:
    has = np.array([[1, 1], [1, 0], [1, 0], [0, 0]], bool)
    L = np.array([[3.0, 6.0], [5.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    observed = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], bool)
    tau = np.where(has, np.array([[0.0, 3.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]), np.nan)
    ds = xr.Dataset(
        {
            "has_cycle": (("patient", "cycle"), has),
            "cycle_length": (("patient", "cycle"), L),
            "observed": (("patient", "cycle"), observed),
            "injection_month": (("patient", "cycle"), tau),
            "interval": (("patient", "cycle"), np.where(has, L, np.nan)),
            "treated": ("patient", has.any(axis=1)),
            "n_cycles": ("patient", has.sum(axis=1)),
        },
        coords={"patient": PATIENTS, "cycle": [1, 2]},
        attrs={"interval_ref": 3.0, "parameterization": "ratio"},
    )
    return ds


def _idata(rho: np.ndarray, **extra) -> xr.DataTree:
    """rho: (chain, draw, patient, cycle) draws; NaN where the patient had no cycle."""
    n_chain, n_draw = rho.shape[:2]
    coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "patient": PATIENTS,
              "cycle": [1, 2]}
    sample = ("chain", "draw")
    rng = np.random.default_rng(0)
    post = xr.Dataset(
        {
            "rho": (sample + ("patient", "cycle"), rho),
            "slope": (sample + ("patient", "cycle"), -1.0 * (1 - rho)),
            "beta_pre": (sample + ("patient",), np.full((n_chain, n_draw, 4), -1.0)),
            "rho_cycle": (sample + ("cycle",), rng.normal(0.3, 0.1, (n_chain, n_draw, 2))),
            "rho_bar": (sample, rng.normal(0.3, 0.1, (n_chain, n_draw))),
            "rho_new": (sample, rng.normal(0.3, 0.3, (n_chain, n_draw))),
            "theta": (sample, rng.normal(-0.05, 0.02, (n_chain, n_draw))),
            "mu_beta": (sample, np.full((n_chain, n_draw), -1.0)),
        } | extra,
        coords=coords,
    )
    return xr.DataTree.from_dict({"posterior": post, "design": _design()})


def _rho_fixed(values_a, values_b, values_c, n_draw=4) -> np.ndarray:
    """Build (1, n_draw, 4, 2) rho draws: A has 2 cycles, B and C one, D none."""
    rho = np.full((1, n_draw, 4, 2), np.nan)
    rho[0, :, 0, 0] = values_a[0]
    rho[0, :, 0, 1] = values_a[1]
    rho[0, :, 1, 0] = values_b
    rho[0, :, 2, 0] = values_c
    return rho


def test_patient_overall_slowing_is_month_weighted_over_observed_cycles():
    idata = _idata(_rho_fixed((0.0, 0.6), 0.5, 0.9))
    draws = patient_slowing_draws(idata)
    # A: (3 * 0.0 + 6 * 0.6) / 9 = 0.4; B: its single observed cycle; C and D: not evaluable
    np.testing.assert_allclose(draws.sel(patient="A").values, 0.4)
    np.testing.assert_allclose(draws.sel(patient="B").values, 0.5)
    assert draws.sel(patient="C").isnull().all()
    assert draws.sel(patient="D").isnull().all()


def test_patient_overall_slowing_matches_its_definition_in_any_patient_order():
    rng = np.random.default_rng(5)
    rho = _rho_fixed((rng.normal(0.2, 0.3, 6), rng.normal(0.4, 0.3, 6)), rng.normal(0.5, 0.2, 6),
                     0.9, n_draw=6)
    idata = _idata(rho)
    draws = patient_slowing_draws(idata)
    # the definition, by xarray's label alignment: month-weighted over the observed cycles
    post, d = idata["posterior"].to_dataset(), idata["design"].to_dataset()
    w = (d["cycle_length"] * d["observed"]).astype(float)
    total = w.sum("cycle")
    expected = (post["rho"].fillna(0.0) * (w / total.where(total > 0)).fillna(0.0)).sum("cycle")
    expected = expected.where(total > 0)
    xr.testing.assert_allclose(draws, expected.transpose(*draws.dims))
    # the posterior's patients in another order than the design's: the same draws per patient
    shuffled = xr.DataTree.from_dict({"posterior": post.isel(patient=[2, 0, 3, 1]),
                                      "design": d})
    xr.testing.assert_allclose(patient_slowing_draws(shuffled).sel(patient=PATIENTS), draws)


def test_patient_table_statuses_and_probabilities():
    rho = _rho_fixed((np.array([0.1, 0.2, 0.3, 0.4]), 0.3), np.array([0.0, 0.3, 0.3, 0.3]), 0.9)
    tab = patient_table(_idata(rho), threshold=[0.25, 0.5]).set_index("patient")
    assert tab.loc["D", "status"] == "untreated"
    assert tab.loc["C", "status"] == "not evaluable"
    assert tab.loc["A", "status"] == "treated"
    # A overall = (3 * r1 + 6 * 0.3) / 9 -> 0.233, 0.267, 0.3, 0.333
    assert tab.loc["A", "p_gt_0.25"] == pytest.approx(0.75)
    assert tab.loc["B", "p_gt_0.25"] == pytest.approx(0.75)
    assert tab.loc["A", "p_gt_0.5"] == 0.0
    assert np.isnan(tab.loc["D", "mean"]) and np.isnan(tab.loc["D", "p_gt_0.25"])
    assert tab.attrs["note"] == CAVEAT


def test_flat_runin_patient_is_listed_apart_with_its_slope_change():
    # B's run-in did not establish decline: out of every count, but its slope change is kept
    rho = _rho_fixed((np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.5, 0.5, 0.0, 0.0])),
                     np.array([0.5, 0.5, 0.5, 0.5]), 0.9)
    natural = np.broadcast_to(np.array([[-2.0, -2.0], [-0.2, -0.2], [-1.0, -1.0],
                                        [-1.0, -1.0]]), rho.shape)
    idata = _idata(rho, natural_slope=(("chain", "draw", "patient", "cycle"), natural.copy()))
    design = idata["design"].to_dataset()
    design["decline_established"] = ("patient", np.array([True, False, True, True]))
    design["runin_slope"] = ("patient", np.array([-2.1, 0.1, -1.0, -0.9]))
    for setting, flat_counted in (("exclude", False), ("include", True)):
        design.attrs["flat_runin"] = setting
        tree = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset(),
                                      "design": design})
        tab = patient_table(tree, threshold=0.25).set_index("patient")
        assert (tab.loc["B", "status"] == "treated") is flat_counted
        assert (tab.loc["B", "status"] == "flat run-in") is not flat_counted
        assert np.isnan(tab.loc["B", "p_gt_0.25"]) is not flat_counted
        assert not tab.loc["B", "decline_established"]
        assert tab.loc["B", "runin_ls_slope"] == pytest.approx(0.1)
        # additive scale: rho |natural| = 0.5 * 0.2 = 0.1 points/month slower, in both settings
        assert tab.loc["B", "change_mean"] == pytest.approx(0.1)
        # A: (3 * 0.25 * 2 + 6 * 0.25 * 2) / 9 = 0.5 points/month on average
        assert tab.loc["A", "change_mean"] == pytest.approx(0.5)
        overall = responder_table(tree, threshold=0.25)
        n_eval = overall.loc[overall["scope"] == "overall", "n_evaluable"].iloc[0]
        assert n_eval == (2 if flat_counted else 1)


def test_responder_distribution_counts_only_evaluable_patients():
    # draw 0: A and B respond; draw 1: only A; draws 2-3: none
    rho = _rho_fixed((np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.5, 0.5, 0.0, 0.0])),
                     np.array([0.5, 0.0, 0.0, 0.0]), 0.9)
    tab = responder_table(_idata(rho), threshold=0.25)
    overall = tab[tab["scope"] == "overall"].set_index("responders")
    assert overall["n_evaluable"].iloc[0] == 2  # C (no observed cycle) and D are excluded
    np.testing.assert_allclose(overall["p_eq"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(overall["p_ge"], [1.0, 0.5, 0.25])
    cyc2 = tab[tab["scope"] == "cycle 2"]
    assert cyc2["n_evaluable"].iloc[0] == 1
    cyc1 = tab[tab["scope"] == "cycle 1"]
    assert cyc1["n_evaluable"].iloc[0] == 2  # C's cycle 1 had no visit after it


def test_responder_table_several_thresholds():
    rho = _rho_fixed((0.3, 0.3), 0.3, 0.3)
    tab = responder_table(_idata(rho), threshold=[0.2, 0.4])
    assert set(tab["threshold"]) == {0.2, 0.4}
    over = tab[tab["scope"] == "overall"]
    assert over[(over["threshold"] == 0.2) & (over["responders"] == 2)]["p_eq"].item() == 1.0
    assert over[(over["threshold"] == 0.4) & (over["responders"] == 0)]["p_eq"].item() == 1.0


def test_slowing_table_rows_and_observed_flags():
    tab = slowing_table(_idata(_rho_fixed((0.1, 0.6), 0.5, 0.9)), threshold=0.25)
    assert list(zip(tab["patient"], tab["cycle"], strict=True)) == [
        ("A", 1), ("A", 2), ("B", 1), ("C", 1)
    ]
    assert tab["observed"].tolist() == [True, True, True, False]
    assert tab["p_gt_0.25"].tolist() == [0.0, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(tab["mean"], [0.1, 0.6, 0.5, 0.9])


def test_cycle_table_counts_in_trial_form():
    rho = _rho_fixed((0.5, 0.1), 0.5, 0.9)
    tab = cycle_table(_idata(rho), threshold=0.25)
    assert tab["n_patients"].tolist() == [2, 1]
    assert tab["patient_months"].tolist() == [8.0, 6.0]
    assert tab["responders_median_0.25"].tolist() == [2.0, 0.0]
    assert tab["responders_ci_0.25"].tolist() == ["2-2", "0-0"]


def test_population_and_interval_tables():
    rng = np.random.default_rng(1)
    idata = _idata(_rho_fixed((0.5, 0.1), 0.5, 0.9, n_draw=4000))
    rho_bar = idata["posterior"]["rho_bar"]
    pop = population_table(idata, threshold=0.25).set_index("quantity")
    assert list(pop.index) == ["rho_bar", "rho_cycle[1]", "rho_cycle[2]", "new_patient",
                               "rho_bar_given", "rho_cycle_given[1]", "rho_cycle_given[2]"]
    # at the intervals given: cycle 1 had 3, 5 and 0 months (mean 3 - 1/3), cycle 2 had 6
    post = idata["posterior"]
    g1 = post["rho_cycle"].sel(cycle=1) + post["theta"] * (-1.0 / 3.0)
    g2 = post["rho_cycle"].sel(cycle=2) + post["theta"] * 3.0
    assert pop.loc["rho_cycle_given[1]", "mean"] == pytest.approx(float(g1.mean()))
    assert pop.loc["rho_cycle_given[2]", "mean"] == pytest.approx(float(g2.mean()))
    bar = (8 * g1 + 6 * g2) / 14  # patient-months observed: 3 + 5 in cycle 1, 6 in cycle 2
    assert pop.loc["rho_bar_given", "mean"] == pytest.approx(float(bar.mean()))
    assert pop.attrs["given_interval"] == pytest.approx([3 - 1 / 3, 6.0])
    assert pop.loc["rho_bar", "p_gt_0.25"] == pytest.approx(float((rho_bar > 0.25).mean()))
    assert pop.loc["rho_bar", "ci_2.5"] == pytest.approx(float(rho_bar.quantile(0.025)))
    iv = interval_table(idata, threshold=0.25, intervals=(3, 6)).set_index("quantity")
    theta = idata["posterior"]["theta"]
    assert iv.loc["theta", "p_lt_0"] == pytest.approx(float((theta < 0).mean()))
    pred6 = rho_bar + 3.0 * theta
    assert iv.loc["rho_bar at 6 months", "mean"] == pytest.approx(float(pred6.mean()))
    assert iv.loc["rho_bar at 3 months", "mean"] == pytest.approx(float(rho_bar.mean()))
    del rng


def test_additive_interval_effect_is_scaled_by_population_slope():
    idata = _idata(_rho_fixed((0.5, 0.1), 0.5, 0.9))
    post = idata["posterior"].to_dataset()
    post["mu_beta"] = post["mu_beta"] * 2.0  # -2 points/month
    design = idata["design"].to_dataset()
    design.attrs["parameterization"] = "additive"
    idata = xr.DataTree.from_dict({"posterior": post, "design": design})
    iv = interval_table(idata).set_index("quantity")
    assert iv.loc["theta", "mean"] == pytest.approx(float(post["theta"].mean() / 2.0))


@pytest.mark.parametrize("bad", [[], [float("nan")]])
def test_thresholds_are_validated(bad):
    with pytest.raises(ValueError, match="threshold"):
        patient_table(_idata(_rho_fixed((0.5, 0.1), 0.5, 0.9)), threshold=bad)


def test_tables_are_tidy_frames():
    idata = _idata(_rho_fixed((0.5, 0.1), 0.5, 0.9))
    for fn in (slowing_table, patient_table, cycle_table, population_table, responder_table,
               interval_table):
        out = fn(idata)
        assert isinstance(out, pd.DataFrame) and len(out) > 0
