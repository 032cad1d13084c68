"""Prior predictive check: the model's generative path drawn from the priors alone."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from slopeshift import SlopeShiftModel
from slopeshift.prior_check import prior_predictive, prior_predictive_draws
from slopeshift.priors import Prior


def test_cycle_means_follow_their_prior(example_model):
    draws = prior_predictive_draws(example_model, draws=8000, random_seed=1)
    rho_k = draws["rho_cycle"]
    assert rho_k.shape == (8000, 4)
    # Normal(0, 1): quantiles within Monte Carlo error
    np.testing.assert_allclose(np.quantile(rho_k, [0.05, 0.95]), [-1.645, 1.645], atol=0.08)
    assert stats.kstest(rho_k[:, 0], stats.norm(0, 1.0).cdf).pvalue > 0.001
    # the same seed gives the same draws
    again = prior_predictive_draws(example_model, draws=8000, random_seed=1)
    np.testing.assert_array_equal(again["rho"], draws["rho"])


def test_patient_slowing_and_slopes_follow_the_generative_path(example_data):
    # no spread between patients or cycles, no drift: rho_ik is the cycle mean at its
    # interval, and the slope is the natural rate times (1 - rho)
    tiny = {"sd_patient": Prior("HalfNormal", sigma=1e-9),
            "sd_patient_cycle": Prior("HalfNormal", sigma=1e-9),
            "theta": Prior("Normal", mu=0.0, sigma=1e-9)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SlopeShiftModel(example_data, drift=False, priors=tiny)
    d = prior_predictive_draws(model, draws=200, random_seed=2)
    np.testing.assert_allclose(d["slope"], d["natural"] * (1 - d["rho"]), atol=1e-6)
    # every cell's slowing equals one of its draw's cycle means
    for i in range(5):
        assert np.isin(np.round(d["rho"][i], 6), np.round(d["rho_cycle"][i], 6)).all()


def test_summary_reports_the_tails_a_reader_needs(example_model):
    tab = prior_predictive(example_model, draws=4000).set_index("quantity")
    assert list(tab.index) == ["rho_cycle", "rho_bar", "rho_ik", "theta", "beta_pre",
                               "slope_ik"]
    # the default cycle prior: P(rho_k > 1) about 16%; averaging cycles makes rho_bar's
    # implied prior tighter (about 2%)
    assert tab.loc["rho_cycle", "p_gt_1"] == pytest.approx(0.159, abs=0.02)
    assert tab.loc["rho_bar", "p_gt_1"] == pytest.approx(0.022, abs=0.01)
    assert tab.loc["rho_bar", "p_gt_threshold"] < tab.loc["rho_cycle", "p_gt_threshold"]
    # persistent rates: the natural-history prior puts a few percent above 0
    assert 0.02 < tab.loc["beta_pre", "p_gt_0"] < 0.12
    assert np.isnan(tab.loc["slope_ik", "p_gt_1"])
