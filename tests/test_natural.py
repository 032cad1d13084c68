"""Tests of the realistic natural-history simulator (slopeshift.natural)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slopeshift.data import ALSFRS_DOMAINS, ALSFRS_ITEMS
from slopeshift.natural import (
    DEFAULT_NATURAL_HISTORY,
    simulate_realistic_trial,
    simulate_untreated_cohort,
    window_statistics,
)


def _ls_slope(t: np.ndarray, y: np.ndarray) -> float:
    t = t - t.mean()
    return float(np.sum(t * (y - y.mean())) / np.sum(t * t))


def _period_slopes(data) -> pd.DataFrame:
    """Per-patient LS slope of the run-in (month <= 0) and of the treatment period (>= 0)."""
    out = {}
    for pid, g in data.visits.groupby("patient"):
        pre, post = g[g["month"] <= 0], g[g["month"] >= 0]
        out[pid] = (
            _ls_slope(pre["month"].to_numpy(), pre["value"].to_numpy()) if len(pre) > 1
            else np.nan,
            _ls_slope(post["month"].to_numpy(), post["value"].to_numpy()) if len(post) > 2
            else np.nan,
        )
    return pd.DataFrame.from_dict(out, orient="index", columns=["pre", "post"])


# ------------------------------------------------------------------ untreated cohorts
def test_cohort_shape_items_and_seed():
    v = simulate_untreated_cohort(40, months=12.0, random_seed=3)
    assert list(v.columns) == ["patient", "time", "alsfrs_r", *ALSFRS_ITEMS]
    assert v["patient"].nunique() == 40
    assert (v.groupby("patient").size() == 13).all()
    assert (v.groupby("patient")["time"].min() == 0).all()
    assert v["time"].between(0, 12).all()
    items = v[list(ALSFRS_ITEMS)].to_numpy()
    assert np.isin(items, [0, 1, 2, 3, 4]).all()
    np.testing.assert_array_equal(items.sum(axis=1), v["alsfrs_r"].to_numpy())
    pd.testing.assert_frame_equal(v, simulate_untreated_cohort(40, months=12.0, random_seed=3))
    assert not v.equals(simulate_untreated_cohort(40, months=12.0, random_seed=4))
    total_only = simulate_untreated_cohort(5, item_level=False)
    assert list(total_only.columns) == ["patient", "time", "alsfrs_r"]


def test_floors_occur_and_unknown_parameter():
    v = simulate_untreated_cohort(300, months=24.0, random_seed=1)
    items = v[list(ALSFRS_ITEMS)].to_numpy()
    domain_zero = np.column_stack(
        [items[:, list(idx)].sum(axis=1) == 0 for idx in ALSFRS_DOMAINS.values()]
    )
    assert domain_zero.any(axis=1).mean() > 0.02  # some domains reach 0 within two years
    assert (items == 0).any(axis=1).mean() > 0.1
    with pytest.raises(TypeError, match="unknown natural-history"):
        simulate_untreated_cohort(5, pace=1.0)
    assert set(DEFAULT_NATURAL_HISTORY) >= {"pace_median", "ou_sd", "acceleration"}


def test_window_statistics_on_exact_lines():
    t = np.arange(12.0)
    a = np.array([-0.2, -0.5, -1.0, -1.5, -2.0, -0.8])
    b = np.array([-0.4, -0.3, -0.6, -1.0, -2.5, -0.9])
    rows = []
    for i, (s1, s2) in enumerate(zip(a, b, strict=True)):
        y = np.where(t < 6, 40 + s1 * t, 40 + s2 * (t - 6))
        rows += [{"patient": f"X{i}", "time": tt + 2.0, "alsfrs_r": yy}
                 for tt, yy in zip(t, y, strict=True)]
    st = window_statistics(pd.DataFrame(rows))
    assert st["n_patients"] == 6
    assert st["median_slope"] == pytest.approx(np.median(a))
    assert st["residual_sd"] == pytest.approx(0.0, abs=1e-6)
    assert st["slope_correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert st["mean_change"] == pytest.approx(np.mean(b - a))
    assert st["share_slowing_25"] == pytest.approx(np.mean(b > 0.75 * a))
    assert st["share_worsening_25"] == pytest.approx(np.mean(b < 1.25 * a))
    assert st["share_rising"] == 0.0


#: Published figures of untreated patients (pooled placebo arms of ALS trials; MODEL.md
#: section 7), as named by window_statistics (the fastest quarter split into its two windows).
PUBLISHED = {"slope_correlation": 0.3, "mean_change": -0.14, "fastest_quarter_first": -1.95,
             "fastest_quarter_second": -1.40, "share_slowing_25": 0.38,
             "share_slowing_25_fast_half": 0.50, "share_worsening_25": 0.42}


def _near_published(st: dict, tolerance: dict) -> None:
    """Each figure of ``st`` (window_statistics) within its tolerance of the published one."""
    first, second = st["fastest_quarter"]
    got = st | {"fastest_quarter_first": first, "fastest_quarter_second": second}
    for name, tol in tolerance.items():
        assert got[name] == pytest.approx(PUBLISHED[name], abs=tol), name


# Published figures (pooled placebo arms of ALS trials; MODEL.md section 7) and the tolerance of
# each check. Monte Carlo SDs of the figures at 6,000 patients (measured over seeds): median and
# quartiles about 0.012-0.02 points/month, share rising 0.0015, residual SD 0.013, correlation
# 0.018, mean change 0.015 points/month, fastest-quarter means 0.03, shares 0.008 (fast half
# 0.009). Each tolerance is the generator's calibration miss (averaged over 10 seeds: median
# -0.75, IQR -1.25 to -0.40, correlation 0.28, mean change -0.11, fastest quarter -1.95 to -1.41,
# shares 0.376 / 0.49 / 0.431) plus about 3 Monte Carlo SDs.
def test_calibration_to_placebo_figures():
    v = simulate_untreated_cohort(6000, random_seed=2024, item_level=False)
    st = window_statistics(v)
    assert st["n_patients"] == 6000
    assert -0.9 - 0.04 <= st["median_slope"] <= -0.7 + 0.04
    lo, hi = st["iqr_slope"]
    assert lo == pytest.approx(-1.3, abs=0.12)
    assert hi == pytest.approx(-0.3, abs=0.14)  # misses by 0.1: see the module docstring
    assert st["share_rising"] < 0.03
    assert 1.5 <= st["residual_sd"] <= 1.9
    _near_published(st, {"slope_correlation": 0.075, "mean_change": 0.075,
                         "fastest_quarter_first": 0.1, "fastest_quarter_second": 0.1,
                         "share_slowing_25": 0.03, "share_slowing_25_fast_half": 0.04,
                         "share_worsening_25": 0.035})


def test_cohort_is_fast():
    import time

    start = time.perf_counter()
    simulate_untreated_cohort(3000, random_seed=0)
    assert time.perf_counter() - start < 5.0


# ------------------------------------------------------------------ trials
def test_trial_shapes_arms_and_seed():
    data, truth = simulate_realistic_trial(12, n_controls=6, gaps=(3.0, 3.0, 5.0),
                                           random_seed=7)
    tp = truth["patients"]
    assert len(tp) == 18
    assert (tp["arm"] == "treated").sum() == 12 and (tp["arm"] == "control").sum() == 6
    assert len(data.patients) == 18
    assert set(data.patients.index) == set(tp.index)
    if "arm" in data.patients:
        assert (data.patients["arm"] == tp["arm"].reindex(data.patients.index)).all()
    assert tp["n_injections"].between(1, 4).all()
    assert set(ALSFRS_DOMAINS) <= set(data.visits.columns)  # built from item-level visits
    assert data.visits["value"].between(0, 48).all()
    data2, truth2 = simulate_realistic_trial(12, n_controls=6, gaps=(3.0, 3.0, 5.0),
                                             random_seed=7)
    pd.testing.assert_frame_equal(data.visits, data2.visits)
    pd.testing.assert_frame_equal(tp, truth2["patients"])
    one, _ = simulate_realistic_trial(5, random_seed=1, item_level=False)
    assert "bulbar" not in one.visits.columns
    dated, _ = simulate_realistic_trial(5, random_seed=1, start_date="2021-03-01")
    assert dated.time_kind == "date"


def test_dropped_patients_have_no_later_visits_or_injections():
    data, truth = simulate_realistic_trial(150, gaps=(3.0, 3.0, 5.0), dropout=0.05,
                                           random_seed=2)
    tp = truth["patients"]
    dropped = tp[tp["dropout_month"].notna()]
    assert len(dropped) > 10
    last = data.visits.groupby("patient")["month"].max()
    last_inj = data.injections.groupby("patient")["month"].max()
    assert (last[dropped.index] < dropped["dropout_month"]).all()
    assert (last_inj[dropped.index] < dropped["dropout_month"]).all()
    # faster natural decline leaves more often
    fast = tp["rate_runin"] < tp["rate_runin"].median()
    assert tp.loc[fast, "dropout_month"].notna().mean() > tp.loc[~fast, "dropout_month"].notna(
    ).mean()


@pytest.mark.parametrize("rule", [-0.5, "median"])
def test_enrolment_on_runin_slope(rule):
    data, truth = simulate_realistic_trial(30, n_controls=10, enrolment_max_slope=rule,
                                           random_seed=11)
    thr = truth["enrolment_threshold"]
    if rule == "median":
        assert -1.2 < thr < -0.4
    else:
        assert thr == rule
    slopes = _period_slopes(data)["pre"]
    assert (slopes < thr).all()
    np.testing.assert_allclose(slopes.sort_index(), truth["patients"]["runin_slope"].sort_index(),
                               atol=1e-9)
    assert truth["n_screened"] > 40


def test_controls_have_no_effect_and_truth_is_consistent():
    _, truth = simulate_realistic_trial(20, n_controls=20, effect=0.5, effect_sd=0.2,
                                        interval_effect=-0.05, gaps=(3.0, 3.0, 5.0),
                                        random_seed=5)
    tp, sl = truth["patients"], truth["slowing"]
    ctrl = tp.index[tp["arm"] == "control"]
    assert (sl.loc[sl["patient"].isin(ctrl), "rho"] == 0).all()
    c = sl[sl["patient"].isin(ctrl)]
    np.testing.assert_allclose(c["slope"], c["natural_slope"])
    assert not tp.loc[ctrl, "responder"].any()
    assert (tp.loc[ctrl, "rho"].fillna(0) == 0).all()
    tr = sl[~sl["patient"].isin(ctrl)]
    # rho_ik = effect + interval_effect * (gap - ref) + u_i
    u = tp["u"].reindex(tr["patient"]).to_numpy()
    np.testing.assert_allclose(tr["rho"], 0.5 - 0.05 * (tr["gap"] - 3.0) + u)
    treated = tp[tp["arm"] == "treated"]
    assert (treated["responder"] == (treated["rho"] > 0.25)).all()


def test_regression_to_the_mean_without_effect():
    """Enrolled on a fast run-in slope, untreated patients look slower afterwards."""
    data, truth = simulate_realistic_trial(400, enrolment_max_slope="median", effect=0.0,
                                           effect_sd=0.0, gaps=(3.0,), random_seed=1)
    assert (truth["slowing"]["rho"] == 0).all()
    s = _period_slopes(data).dropna()
    # classical "slowing" with no treatment: about 0.15-0.3 points/month over seeds
    assert s["post"].mean() > s["pre"].mean() + 0.1
    assert (s["post"] > 0.75 * s["pre"]).mean() > 0.4  # many "> 25% slowing responders"


def test_true_effect_halves_slopes_against_controls():
    data, truth = simulate_realistic_trial(300, n_controls=300, effect=0.5, effect_sd=0.1,
                                           gaps=(3.0,), enrolment_max_slope=-0.3,
                                           random_seed=8)
    s = _period_slopes(data).join(truth["patients"]["arm"]).dropna()
    post = s.groupby("arm")["post"].mean()
    ratio = post["treated"] / post["control"]
    assert 0.35 < ratio < 0.65


def test_default_natural_history_priors_reproduce_the_published_figures():
    """The model's own natural history, at its prior means, against the published figures.

    Persistent rate ~ Normal(mu_beta, sd_beta), one independent drift per 6-month window
    (sd_drift), the acceleration, and the published scatter (SD 1.7 points), on monthly visits
    over two consecutive windows: what the default single-arm analysis assumes untreated
    patients do. The tolerances are looser than the simulator's above: the priors summarise
    the figures; they are not fitted to them (docs/model.md, "Natural change").
    """
    from slopeshift.priors import default_priors

    pri = default_priors("alsfrs_r")
    mu = pri["mu_beta"].params["mu"]
    sd_beta = np.exp(pri["sd_beta"].params["mu"])     # LogNormal medians
    sd_drift = np.exp(pri["sd_drift"].params["mu"])
    acc = pri["acceleration"].params["mu"]
    rng = np.random.default_rng(7)
    n, t = 20_000, np.arange(13.0)
    beta = rng.normal(mu, sd_beta, n)
    r1 = beta + rng.normal(0.0, sd_drift, n) + acc * 3.0
    r2 = beta + rng.normal(0.0, sd_drift, n) + acc * 9.0
    mean = 40.0 + np.where(t < 6, r1[:, None] * t, r1[:, None] * 6 + r2[:, None] * (t - 6))
    y = mean + rng.normal(0.0, 1.7, mean.shape)
    visits = pd.DataFrame({"patient": np.repeat(np.arange(n), t.size),
                           "time": np.tile(t, n), "alsfrs_r": y.ravel()})
    st = window_statistics(visits)
    assert -0.9 - 0.1 <= st["median_slope"] <= -0.7 + 0.1
    # regression to the mean priced in: the untreated "slowing" of the published figures
    _near_published(st, {"slope_correlation": 0.1, "mean_change": 0.05,
                         "fastest_quarter_first": 0.15, "fastest_quarter_second": 0.15,
                         "share_slowing_25": 0.06, "share_slowing_25_fast_half": 0.1,
                         "share_worsening_25": 0.05})
    # the figure it misses: 11% of first-window slopes rise, where fewer than 3% do. Normal
    # rates and drifts are symmetric; real slopes are skewed away from improvement.
    assert 0.05 < st["share_rising"] < 0.16
