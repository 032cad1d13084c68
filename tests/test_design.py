"""The piecewise-linear design (build_design), checked against hand-computed values; no sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from slopeshift.data import TrialData
from slopeshift.design import INTERVALS, build_design
from slopeshift.errors import DataWarning

nan = np.nan

# Tiny trial, in months already counted from each patient's first injection:
#   A: injections at 0, 3, 6; visits at -4, -2, 0, 1.5, 3, 4, 6, 8 (last cycle runs to 8)
#   B: one injection at 0; visits at -3, -1, 0, 2, 5
#   C: never injected; visits at -6, -3, 0
#   D: injections at 0 and 4; visits at -2, -1, 0, 2 (no visit after the second injection)
A_T = [-4, -2, 0, 1.5, 3, 4, 6, 8]
A_Y = [40, 38, 36, 36, 35, 35, 34, 33]  # run-in exactly linear: slope -1, 36 at month 0
B_T = [-3, -1, 0, 2, 5]
B_Y = [30, 29, 27, 27, 26]
C_T = [-6, -3, 0]
C_Y = [44, 42, 41]
D_T = [-2, -1, 0, 2]
D_Y = [20, 20, 19, 19]


def tiny_frames():
    visits = pd.DataFrame(
        {
            "patient": ["A"] * 8 + ["B"] * 5 + ["C"] * 3 + ["D"] * 4,
            "time": A_T + B_T + C_T + D_T,
            "alsfrs_r": A_Y + B_Y + C_Y + D_Y,
        }
    )
    injections = pd.DataFrame(
        {
            "patient": ["A", "A", "A", "B", "D", "D"],
            "time": [0, 3, 6, 0, 0, 4],
            "dose": [1.0, 2.0, 2.0, 1.5, 1.0, 1.0],
        }
    )
    patients = pd.DataFrame(
        {
            "patient": ["A", "B", "C", "D"],
            "age": [50.0, 60.0, 45.0, 70.0],
            "sex": ["M", "F", "F", "M"],
        }
    )
    return visits, injections, patients


@pytest.fixture(scope="module")
def tiny() -> TrialData:
    visits, injections, patients = tiny_frames()
    with pytest.warns(DataWarning, match=r"no visit during D cycle 2:") as rec:
        data = TrialData.from_frames(visits, injections, patients)
    assert len(rec) == 1
    return data


@pytest.fixture(scope="module")
def ds(tiny):
    return build_design(tiny)


def rows(patient: str) -> slice:
    start = {"A": 0, "B": 8, "C": 13, "D": 16}[patient]
    n = {"A": 8, "B": 5, "C": 3, "D": 4}[patient]
    return slice(start, start + n)


# --------------------------------------------------------------------------- dims and coords
def test_dims_and_coords(ds):
    assert dict(ds.sizes) == {"visit": 20, "patient": 4, "cycle": 3, "covariate": 0}
    assert ds["patient"].values.tolist() == ["A", "B", "C", "D"]
    assert ds["patient"].dtype.kind == "U"
    assert ds["cycle"].values.tolist() == [1, 2, 3]
    assert ds["visit"].values.tolist() == list(range(20))
    assert ds.attrs == {"interval": "cycle_length", "outcome": "alsfrs_r"}
    assert ds["x_cycle"].dims == ("visit", "cycle")
    assert ds["cycle_length"].dims == ("patient", "cycle")
    assert ds["covariate_values"].dims == ("patient", "covariate")


def test_integer_patient_ids_become_strings():
    visits = pd.DataFrame(
        {"patient": [101] * 3 + [7] * 3, "time": [0, 1, 2] * 2, "alsfrs_r": [40, 39, 38] * 2}
    )
    injections = pd.DataFrame({"patient": [101, 7], "time": [1, 1]})
    ds = build_design(TrialData.from_frames(visits, injections))
    # sorted as text, like TrialData.patient_ids
    assert ds["patient"].values.tolist() == ["101", "7"]
    assert ds["patient"].dtype.kind == "U"


def test_visit_level_variables(ds):
    np.testing.assert_array_equal(ds["month"], A_T + B_T + C_T + D_T)
    np.testing.assert_array_equal(ds["y"], A_Y + B_Y + C_Y + D_Y)
    np.testing.assert_array_equal(ds["patient_index"], [0] * 8 + [1] * 5 + [2] * 3 + [3] * 4)
    assert ds["patient_index"].dtype == np.int64


# --------------------------------------------------------------------------- exposures
def test_x_pre_is_min_of_month_and_zero(ds):
    expected = [-4, -2, 0, 0, 0, 0, 0, 0] + [-3, -1, 0, 0, 0] + [-6, -3, 0] + [-2, -1, 0, 0]
    np.testing.assert_array_equal(ds["x_pre"], expected)
    np.testing.assert_array_equal(ds["x_pre"], np.minimum(ds["month"], 0.0))


def test_x_cycle_patient_a(ds):
    expected = [
        [0, 0, 0],  # -4
        [0, 0, 0],  # -2
        [0, 0, 0],  # 0: at the first injection, no time in cycle 1 yet
        [1.5, 0, 0],  # 1.5
        [3, 0, 0],  # 3: cycle 1 complete, cycle 2 starts
        [3, 1, 0],  # 4
        [3, 3, 0],  # 6
        [3, 3, 2],  # 8: the last visit, end of the open-ended last cycle
    ]
    np.testing.assert_array_equal(ds["x_cycle"].values[rows("A")], expected)


def test_x_cycle_other_patients(ds):
    x = ds["x_cycle"].values
    np.testing.assert_array_equal(x[rows("B")], [[0, 0, 0]] * 3 + [[2, 0, 0], [5, 0, 0]])
    np.testing.assert_array_equal(x[rows("C")], np.zeros((3, 3)))
    np.testing.assert_array_equal(x[rows("D")], [[0, 0, 0]] * 3 + [[2, 0, 0]])


def test_x_cycle_is_clip_formula(ds):
    tau = np.array([[0, 3, 6], [0, nan, nan], [nan, nan, nan], [0, 4, nan]])
    L = np.array([[3, 3, 2], [5, 0, 0], [0, 0, 0], [4, 0, 0]])
    idx = ds["patient_index"].values
    t = ds["month"].values
    for v in range(len(t)):
        for k in range(3):
            i = idx[v]
            want = 0.0 if np.isnan(tau[i, k]) else np.clip(t[v] - tau[i, k], 0, L[i, k])
            assert ds["x_cycle"].values[v, k] == want, (v, k)


def test_x_jump(ds):
    j = ds["x_jump"].values
    np.testing.assert_array_equal(
        j[rows("A")],
        [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]],
    )
    np.testing.assert_array_equal(j[rows("B")], [[0, 0, 0]] * 2 + [[1, 0, 0]] * 3)
    np.testing.assert_array_equal(j[rows("C")], np.zeros((3, 3)))
    # D's second injection (month 4) comes after its last visit: never switched on
    np.testing.assert_array_equal(j[rows("D")], [[0, 0, 0]] * 2 + [[1, 0, 0]] * 2)


# --------------------------------------------------------------------------- per patient/cycle
def test_injection_months_and_counts(ds):
    np.testing.assert_array_equal(
        ds["injection_month"], [[0, 3, 6], [0, nan, nan], [nan, nan, nan], [0, 4, nan]]
    )
    assert ds["treated"].values.tolist() == [True, True, False, True]
    assert ds["n_cycles"].values.tolist() == [3, 1, 0, 2]
    assert ds["has_cycle"].values.tolist() == [
        [True, True, True],
        [True, False, False],
        [False, False, False],
        [True, True, False],
    ]


def test_cycle_length(ds):
    # A: 0->3, 3->6, 6->last visit 8; B: 0->last visit 5; C: none;
    # D: 0->4 (next injection, although the last visit is at 2), then no visit after 4 -> 0
    np.testing.assert_array_equal(ds["cycle_length"], [[3, 3, 2], [5, 0, 0], [0, 0, 0], [4, 0, 0]])


def test_observed(ds):
    assert ds["observed"].values.tolist() == [
        [True, True, True],
        [True, False, False],
        [False, False, False],
        [True, False, False],
    ]


def test_observed_matches_unobserved_cycles(tiny, ds):
    assert tiny.unobserved_cycles() == [("D", 2)]
    pids = ds["patient"].values.tolist()
    missing = [
        (pids[i], k + 1)
        for i in range(4)
        for k in range(3)
        if ds["has_cycle"].values[i, k] and not ds["observed"].values[i, k]
    ]
    assert missing == tiny.unobserved_cycles()


def test_visit_at_next_injection_observes_the_earlier_cycle():
    # injections at 0 and 2, visits at -2, -1, 2 and 5: the visit at 2 closes cycle 1
    visits = pd.DataFrame(
        {"patient": ["E"] * 4, "time": [-2, -1, 2, 5], "alsfrs_r": [40, 39, 38, 37]}
    )
    injections = pd.DataFrame({"patient": ["E", "E"], "time": [0, 2]})
    ds = build_design(TrialData.from_frames(visits, injections))
    assert ds["observed"].values.tolist() == [[True, True]]
    np.testing.assert_array_equal(ds["cycle_length"], [[2, 3]])
    np.testing.assert_array_equal(ds["x_cycle"], [[0, 0], [0, 0], [2, 0], [2, 3]])
    np.testing.assert_array_equal(ds["x_jump"], [[0, 0], [0, 0], [1, 1], [1, 1]])


# --------------------------------------------------------------------------- interval covariate
def test_interval_names():
    assert INTERVALS == ("cycle_length", "since_previous")


def test_interval_cycle_length(ds):
    np.testing.assert_array_equal(
        ds["interval"], [[3, 3, nan], [nan, nan, nan], [nan, nan, nan], [4, nan, nan]]
    )


def test_open_last_cycle_takes_the_planned_interval(tiny):
    ds = build_design(tiny, planned_interval=3.5)
    np.testing.assert_array_equal(
        ds["interval"], [[3, 3, 3.5], [3.5, nan, nan], [nan, nan, nan], [4, 3.5, nan]]
    )
    with pytest.raises(ValueError, match="planned_interval must be a positive number"):
        build_design(tiny, planned_interval=0.0)


def test_interval_since_previous(tiny):
    ds = build_design(tiny, interval="since_previous")
    assert ds.attrs["interval"] == "since_previous"
    np.testing.assert_array_equal(
        ds["interval"], [[nan, 3, 3], [nan, nan, nan], [nan, nan, nan], [nan, 4, nan]]
    )


def test_interval_from_injection_column(tiny):
    ds = build_design(tiny, interval="dose")
    np.testing.assert_array_equal(
        ds["interval"], [[1, 2, 2], [1.5, nan, nan], [nan, nan, nan], [1, 1, nan]]
    )


def test_interval_unknown_name(tiny):
    with pytest.raises(ValueError, match=r"'volume' is neither"):
        build_design(tiny, interval="volume")


def test_interval_column_with_missing_value():
    visits, injections, _ = tiny_frames()
    injections.loc[4, "dose"] = nan  # D's first injection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = TrialData.from_frames(visits, injections)
    with pytest.raises(ValueError, match=r"injections column 'dose' .* for D cycle 1\."):
        build_design(data, interval="dose")


# --------------------------------------------------------------------------- run-in fit
def test_runin_slope_equals_polyfit(ds):
    t = ds["month"].values
    y = ds["y"].values
    for i, pid in enumerate("ABCD"):
        sel = (ds["patient_index"].values == i) & (t <= 0)
        b, a = np.polyfit(t[sel], y[sel], 1)
        assert ds["runin_slope"].values[i] == pytest.approx(b, abs=1e-12), pid
        assert ds["runin_intercept"].values[i] == pytest.approx(a, abs=1e-12), pid


def test_runin_slope_hand_values(ds):
    # A: (-4, 40), (-2, 38), (0, 36): slope -1, 36 at month 0
    # B: (-3, 30), (-1, 29), (0, 27): Sxy / Sxx = (-13/3) / (14/3) = -13/14,
    #    intercept 86/3 - 13/14 * 4/3 = 27 + 3/7
    # C: (-6, 44), (-3, 42), (0, 41): slope -9/18 = -1/2, intercept 127/3 - 3/2 = 40 + 5/6
    # D: (-2, 20), (-1, 20), (0, 19): slope -1/2, intercept 59/3 - 1/2 = 19 + 1/6
    np.testing.assert_allclose(ds["runin_slope"], [-1, -13 / 14, -0.5, -0.5], atol=1e-12)
    np.testing.assert_allclose(
        ds["runin_intercept"], [36, 27 + 3 / 7, 40 + 5 / 6, 19 + 1 / 6], atol=1e-12
    )


def test_decline_established_from_the_pooled_runin_residual_sd(ds):
    # residual sums of squares of the run-in lines (hand values above): A 0, B 9/14, C 1/6,
    # D 1/6, each on 3 - 2 = 1 degree of freedom
    s_pool = np.sqrt((0 + 9 / 14 + 1 / 6 + 1 / 6) / 4)
    sxx = np.array([8.0, 14 / 3, 18.0, 2.0])
    np.testing.assert_allclose(ds["runin_sxx"], sxx, atol=1e-12)
    np.testing.assert_allclose(ds["runin_se"], s_pool / np.sqrt(sxx), rtol=1e-12)
    upper = np.array([-1, -13 / 14, -0.5, -0.5]) + 1.645 * s_pool / np.sqrt(sxx)
    # D declines 0.5 points/month over a 2-month run-in: not established (upper bound > 0)
    assert upper[3] > 0 > upper[:3].max()
    assert ds["decline_established"].values.tolist() == [True, True, True, False]


def test_flat_runin_cells_leave_the_counts_unless_included(ds):
    from slopeshift.design import evaluable_cells

    d = ds.copy()
    d.attrs["flat_runin"] = "exclude"
    assert not evaluable_cells(d).sel(patient="D").any()
    assert bool(evaluable_cells(d, flat_runin=True).sel(patient="D", cycle=1))
    d.attrs["flat_runin"] = "include"
    assert bool(evaluable_cells(d).sel(patient="D", cycle=1))
    # A, whose run-in established decline, counts either way
    assert evaluable_cells(d).sel(patient="A").all()


def test_runin_slope_nan_with_one_runin_visit():
    visits = pd.DataFrame({"patient": ["E"] * 3, "time": [0, 1, 2], "alsfrs_r": [40, 39, 37]})
    injections = pd.DataFrame({"patient": ["E"], "time": [0]})
    with pytest.warns(DataWarning, match=r"E have fewer than 2 run-in visits"):
        data = TrialData.from_frames(visits, injections)
    ds = build_design(data)
    assert np.isnan(ds["runin_slope"].values[0])
    assert ds["runin_intercept"].values[0] == 40.0
    # no run-in slope: nothing establishes decline
    assert not ds["decline_established"].values[0]


# --------------------------------------------------------------------------- covariates
def test_covariates(tiny):
    ds = build_design(tiny, covariates=["age", "sex[M]"])
    assert ds["covariate"].values.tolist() == ["age", "sex[M]"]
    np.testing.assert_array_equal(ds["covariate_values"], [[50, 1], [60, 0], [45, 0], [70, 1]])
    with pytest.raises(ValueError, match=r"unknown covariate\(s\) \['weight'\]"):
        build_design(tiny, covariates=["weight"])


# --------------------------------------------------------------------------- broken stick
def broken_stick(t, alpha, b0, taus, slopes, last_visit):
    """Reference mean: integrate the slope in force over each segment (no design matrix)."""
    if t <= taus[0]:
        return alpha + b0 * (t - taus[0])
    ends = list(taus[1:]) + [max(last_visit, taus[-1])]
    mu = alpha
    for start, end, b in zip(taus, ends, slopes, strict=True):
        mu += b * (min(max(t, start), end) - start)
    return mu


def test_design_reproduces_broken_stick_mean(ds):
    alpha, b0, slopes = 36.0, -1.0, np.array([-0.5, -0.25, 0.0])
    sel = rows("A")
    mu = alpha + b0 * ds["x_pre"].values[sel] + ds["x_cycle"].values[sel] @ slopes
    # by hand: -4 -> 40, -2 -> 38, 0 -> 36, 1.5 -> 36 - 0.75, 3 -> 34.5, 4 -> 34.25,
    #          6 -> 33.75, 8 -> 33.75 (flat last cycle)
    np.testing.assert_allclose(mu, [40, 38, 36, 35.25, 34.5, 34.25, 33.75, 33.75], atol=1e-12)
    ref = [broken_stick(t, alpha, b0, [0, 3, 6], slopes, 8) for t in A_T]
    np.testing.assert_allclose(mu, ref, atol=1e-12)


def test_design_reproduces_broken_stick_for_every_patient(ds):
    # one set of parameters per patient; cycles a patient did not have get a slope that must
    # not matter (their exposure is 0)
    alpha = np.array([36.0, 27.0, 41.0, 19.0])
    b0 = np.array([-1.0, -0.8, -0.5, -1.5])
    beta = np.array([[-0.5, -0.25, 0.1], [-0.4, 99, 99], [99, 99, 99], [-0.3, 0.2, 99]])
    taus = {0: [0, 3, 6], 1: [0], 2: None, 3: [0, 4]}
    last = {0: 8, 1: 5, 2: 0, 3: 2}
    idx = ds["patient_index"].values
    mu = alpha[idx] + b0[idx] * ds["x_pre"].values + (beta[idx] * ds["x_cycle"].values).sum(axis=1)
    for v, t in enumerate(ds["month"].values):
        i = idx[v]
        if taus[i] is None:
            want = alpha[i] + b0[i] * t
        else:
            want = broken_stick(t, alpha[i], b0[i], taus[i], beta[i, : len(taus[i])], last[i])
        assert mu[v] == pytest.approx(want, abs=1e-12), (v, t)


def test_mean_is_continuous_at_injections(ds):
    # the mean has no break at an injection: just before and at tau_k agree (no jump term)
    alpha, b0, slopes = 36.0, -1.0, np.array([-0.5, -0.25, 0.0])
    taus = [0, 3, 6]
    for tau in taus:
        before = broken_stick(tau - 1e-9, alpha, b0, taus, slopes, 8)
        at = broken_stick(tau, alpha, b0, taus, slopes, 8)
        assert at == pytest.approx(before, abs=1e-8)
    # and the design rows at the injection months give exactly the reference values
    sel = rows("A")
    t = np.asarray(A_T)
    mu = alpha + b0 * ds["x_pre"].values[sel] + ds["x_cycle"].values[sel] @ slopes
    for tau, want in zip(taus, [36.0, 34.5, 33.75], strict=True):
        assert mu[t == tau][0] == want


def test_jump_adds_a_step_from_each_injection(ds):
    alpha, b0, slopes = 36.0, -1.0, np.array([-0.5, -0.25, 0.0])
    jumps = np.array([2.0, 1.0, -0.5])
    sel = rows("A")
    mu = (
        alpha
        + b0 * ds["x_pre"].values[sel]
        + ds["x_cycle"].values[sel] @ slopes
        + ds["x_jump"].values[sel] @ jumps
    )
    np.testing.assert_allclose(mu, [40, 38, 38, 37.25, 37.5, 37.25, 36.25, 36.25], atol=1e-12)


# --------------------------------------------------------------------------- no injections at all
def test_trial_without_injections():
    visits = pd.DataFrame(
        {
            "patient": ["A"] * 3 + ["B"] * 2,
            "time": [1, 2, 4, 0, 3],
            "alsfrs_r": [40, 39, 37, 30, 27],
        }
    )
    data = TrialData.from_frames(visits, pd.DataFrame({"patient": [], "time": []}))
    ds = build_design(data)
    assert dict(ds.sizes) == {"visit": 5, "patient": 2, "cycle": 0, "covariate": 0}
    np.testing.assert_array_equal(ds["x_pre"], [-3, -2, 0, -3, 0])
    assert ds["treated"].values.tolist() == [False, False]
    assert ds["n_cycles"].values.tolist() == [0, 0]
    # A: (-3, 40), (-2, 39), (0, 37) and B: (-3, 30), (0, 27) both fall 1 point a month
    np.testing.assert_allclose(ds["runin_slope"], [-1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(ds["runin_intercept"], [37.0, 27.0], atol=1e-12)
