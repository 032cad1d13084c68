"""Predictions: mean trajectories and replicated scores checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from slopeshift.predict import (
    predictive_scores,
    trajectory_bands,
    trajectory_draws,
    visit_mean_draws,
)


def _with_posterior(idata: xr.DataTree, **variables: xr.DataArray) -> xr.DataTree:
    """A copy of the fit's tree with extra posterior variables (a synthetic posterior)."""
    tree = idata.copy()
    tree["posterior"] = xr.DataTree(idata["posterior"].to_dataset().assign(**variables))
    return tree


def _patient_with_cycles(fit, n: int) -> str:
    d = fit.design
    return str(d["patient"].values[int(np.flatnonzero(d["n_cycles"].values >= n)[0])])


def _untreated(fit) -> str:
    d = fit.design
    return str(d["patient"].values[int(np.flatnonzero(~d["treated"].values)[0])])


def test_trajectory_at_month_zero_is_alpha(small_fit):
    p = _patient_with_cycles(small_fit, 1)
    mu = trajectory_draws(small_fit.idata, p, months=[0.0])
    assert mu.dims == ("chain", "draw", "month")
    np.testing.assert_allclose(mu.isel(month=0).values,
                               small_fit.posterior["alpha"].sel(patient=p).values)


def test_trajectory_matches_hand_computation(small_fit):
    post = small_fit.posterior
    d = small_fit.design
    p = _patient_with_cycles(small_fit, 2)
    tau = d["injection_month"].sel(patient=p).values
    length = d["cycle_length"].sel(patient=p).values
    t_pre, t_c2 = -2.5, tau[1] + 0.5 * length[1]
    mu = trajectory_draws(small_fit.idata, p, months=[t_pre, t_c2])
    a = post["alpha"].sel(patient=p).values
    b = post["slope_runin"].sel(patient=p).values
    s1 = post["slope"].sel(patient=p, cycle=1).values
    s2 = post["slope"].sel(patient=p, cycle=2).values
    np.testing.assert_allclose(mu.isel(month=0).values, a + b * t_pre)
    np.testing.assert_allclose(mu.isel(month=1).values,
                               a + s1 * length[0] + s2 * (t_c2 - tau[1]))


def test_trajectory_at_visits_equals_visit_means(small_fit):
    d = small_fit.design
    p = _patient_with_cycles(small_fit, 3)
    pos = int(np.flatnonzero(d["patient"].values == p)[0])
    sel = d["patient_index"].values == pos
    mu_t = trajectory_draws(small_fit.idata, p, months=d["month"].values[sel])
    mu_v = visit_mean_draws(small_fit.idata).isel(visit=np.flatnonzero(sel))
    np.testing.assert_allclose(mu_t.values, mu_v.values, atol=1e-10)


def test_last_cycle_continues_after_last_visit(small_fit):
    d = small_fit.design
    p = _patient_with_cycles(small_fit, 2)
    k = int(d["n_cycles"].sel(patient=p))
    end = float(d["injection_month"].sel(patient=p, cycle=k) +
                d["cycle_length"].sel(patient=p, cycle=k))
    mu = trajectory_draws(small_fit.idata, p, months=[end, end + 2.0])
    slope = small_fit.posterior["slope"].sel(patient=p, cycle=k).values
    np.testing.assert_allclose((mu.isel(month=1) - mu.isel(month=0)).values, 2.0 * slope)


def test_untreated_trajectory_is_the_run_in_line(small_fit):
    p = _untreated(small_fit)
    mu = trajectory_draws(small_fit.idata, p, months=[-3.0, 0.0])
    post = small_fit.posterior
    np.testing.assert_allclose(mu.isel(month=0).values,
                               (post["alpha"] - 3.0 * post["slope_runin"]).sel(patient=p).values)


def test_default_grid_spans_visits_and_holds_injections(small_fit):
    d = small_fit.design
    p = _patient_with_cycles(small_fit, 2)
    pos = int(np.flatnonzero(d["patient"].values == p)[0])
    t = d["month"].values[d["patient_index"].values == pos]
    grid = trajectory_draws(small_fit.idata, p)["month"].values
    assert grid.min() == pytest.approx(t.min()) and grid.max() == pytest.approx(t.max())
    assert 100 <= grid.size <= 100 + d.sizes["cycle"]
    tau = d["injection_month"].sel(patient=p).values
    assert set(tau[np.isfinite(tau)]) <= set(grid)


def test_trajectory_bands_are_ordered(small_fit):
    bands = trajectory_bands(small_fit.idata, _patient_with_cycles(small_fit, 1))
    assert list(bands.columns) == ["month", "mean", "ci_2.5", "ci_25", "ci_75", "ci_97.5"]
    qs = bands[["ci_2.5", "ci_25", "ci_75", "ci_97.5"]].to_numpy()
    assert np.all(np.diff(qs, axis=1) >= 0)
    assert np.all((bands["mean"] > bands["ci_2.5"]) & (bands["mean"] < bands["ci_97.5"]))


def test_unknown_patient_and_bad_months_raise(small_fit):
    with pytest.raises(ValueError, match="unknown patient 'nobody'"):
        trajectory_draws(small_fit.idata, "nobody")
    with pytest.raises(ValueError, match="finite"):
        trajectory_draws(small_fit.idata, _untreated(small_fit), months=[np.nan])


def test_visit_means_match_hand_computation(small_fit):
    mu = visit_mean_draws(small_fit.idata)
    assert mu.dims == ("chain", "draw", "visit")
    post = small_fit.posterior
    d = small_fit.design
    idx = d["patient_index"].values
    slope = np.nan_to_num(post["slope"].values)  # NaN only where the patient has no cycle
    expected = (post["alpha"].values[..., idx] + post["slope_runin"].values[..., idx]
                * d["x_pre"].values
                + (slope[:, :, idx, :] * d["x_cycle"].values).sum(axis=-1))
    np.testing.assert_allclose(mu.values, expected, atol=1e-10)


def test_jumps_add_to_trajectory_and_visit_means(small_fit):
    has = small_fit.design["has_cycle"]
    jump = xr.full_like(small_fit.posterior["rho"], 2.0).where(has)
    tree = _with_posterior(small_fit.idata, jump_patient=jump)
    diff = visit_mean_draws(tree) - visit_mean_draws(small_fit.idata)
    expected = 2.0 * small_fit.design["x_jump"].sum("cycle").values
    np.testing.assert_allclose(diff.values, np.broadcast_to(expected, diff.shape))
    p = _patient_with_cycles(small_fit, 2)
    tau = small_fit.design["injection_month"].sel(patient=p).values
    months = [tau[0] - 0.5, tau[0], tau[1] + 0.1]
    step = trajectory_draws(tree, p, months) - trajectory_draws(small_fit.idata, p, months)
    np.testing.assert_allclose(step.values[0, 0], [0.0, 2.0, 4.0])


def test_predictive_scores_are_seeded_and_normal(small_fit):
    y1 = predictive_scores(small_fit.idata, 7)
    assert y1.dims == ("chain", "draw", "visit") and y1.name == "y_rep"
    np.testing.assert_array_equal(y1.values, predictive_scores(small_fit.idata, 7).values)
    assert not np.array_equal(y1.values, predictive_scores(small_fit.idata, 8).values)
    z = (y1 - visit_mean_draws(small_fit.idata)) / small_fit.posterior["sigma"]
    assert abs(float(z.mean())) < 0.02
    assert float(z.std()) == pytest.approx(1.0, abs=0.02)
    assert float((np.abs(z) > 4).mean()) < 1e-3


def test_predictive_scores_student_t_and_censoring(small_fit):
    tree = _with_posterior(small_fit.idata, nu=xr.full_like(small_fit.posterior["sigma"], 3.0))
    z = (predictive_scores(tree, 1) - visit_mean_draws(tree)) / small_fit.posterior["sigma"]
    tail = float((np.abs(z) > 4).mean())
    assert tail == pytest.approx(2 * stats.t.sf(4, 3), rel=0.2)
    y = predictive_scores(small_fit.idata, 1, censor_bounds=(0.0, 30.0))
    assert float(y.max()) == 30.0 and float(y.min()) >= 0.0
