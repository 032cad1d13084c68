"""The integrated-out slowing effects: exact marginal density and conditional draws."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from slopeshift import SlopeShiftModel, simulate_trial


@pytest.fixture(scope="module")
def trial():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_trial(6, n_untreated=1, random_seed=3)[0]


def _point(model, rng):
    n_p = model.design.sizes["patient"]
    n_k = model.design.sizes["cycle"]
    key = "rho_cycle" if model.config["parameterization"] == "ratio" else "delta_cycle"
    return {
        "alpha": rng.normal(30, 3, n_p), "beta_pre": rng.normal(-1, 0.3, n_p),
        f"{key}_at_mean_interval": rng.normal(0.3, 0.1, n_k), "theta": np.array(-0.05),
        "sd_patient": 0.25, "sd_patient_cycle": 0.15, "sigma": 1.7,
    }


def _dense(model, p):
    """Per-patient N(mu, sigma^2 I + X Sigma X') with the effects' prior covariance Sigma."""
    k = model._constants()
    ratio = model.config["parameterization"] == "ratio"
    key = "rho_cycle" if ratio else "delta_cycle"
    n_k = k["has"].shape[1]
    out = []
    for i in range(k["has"].shape[0]):
        sel = k["p_idx"] == i
        X = k["x_cycle"][sel]
        m = p[f"{key}_at_mean_interval"] + p["theta"] * k["g_dev"][i]
        b0 = p["beta_pre"][i]
        fixed = b0 * (1 - m) if ratio else b0 + m
        mu = p["alpha"][i] + b0 * k["x_pre"][sel] + X @ fixed
        s = -b0 if ratio else 1.0
        sigma_eff = s**2 * (p["sd_patient"] ** 2 * np.ones((n_k, n_k))
                            + p["sd_patient_cycle"] ** 2 * np.eye(n_k))
        cov = p["sigma"] ** 2 * np.eye(sel.sum()) + X @ sigma_eff @ X.T
        out.append((X, mu, s, cov))
    return out


@pytest.mark.parametrize("parameterization", ["ratio", "additive"])
def test_marginal_density_equals_dense_multivariate_normal(trial, parameterization):
    model = SlopeShiftModel(trial, parameterization=parameterization)
    pm_model = model.pymc_model
    p = _point(model, np.random.default_rng(1))
    point = pm_model.initial_point()
    point.update({k: v for k, v in p.items() if not k.startswith(("sd_", "sigma"))})
    point["sigma_log__"] = np.log(p["sigma"])
    total2 = p["sd_patient"] ** 2 + p["sd_patient_cycle"] ** 2  # SDs as total and share
    point["log_sd_effects"] = np.asarray(0.5 * np.log(total2))
    share = p["sd_patient"] ** 2 / total2
    point["logit_patient_share"] = np.asarray(np.log(share / (1 - share)))
    pot = next(v for v in pm_model.potentials if v.name == "y_marginal")
    fn = pm_model.compile_fn(pm_model.replace_rvs_by_values([pot]), inputs=pm_model.value_vars,
                             on_unused_input="ignore")
    y = model._constants()["y"]
    p_idx = model._constants()["p_idx"]
    expected = [stats.multivariate_normal(mu, cov).logpdf(y[p_idx == i])
                for i, (_, mu, _, cov) in enumerate(_dense(model, p))]
    assert float(fn(point)[0]) == pytest.approx(sum(expected), rel=1e-10)

    # the NumPy path (used for the log-likelihood group and the draws) gives the same numbers
    post = xr.Dataset({k: (("chain", "draw", *(("patient",) if k in ("alpha", "beta_pre") else
                                                 ("cycle",) if k.endswith("interval") else ())),
                           np.asarray(v)[None, None]) for k, v in p.items()},
                      coords={"chain": [0], "draw": [0]})
    _, loglik = model.draw_effects(post, random_seed=0)
    np.testing.assert_allclose(loglik.values[0, 0], expected, rtol=1e-10)


def test_conditional_draws_match_gaussian_conditioning(trial):
    model = SlopeShiftModel(trial)
    k = model._constants()
    p = _point(model, np.random.default_rng(2))
    n_draws = 20000
    dims = {"alpha": ("patient",), "beta_pre": ("patient",),
            "rho_cycle_at_mean_interval": ("cycle",)}
    post = xr.Dataset({n: (("chain", "draw", *dims.get(n, ())),
                           np.broadcast_to(np.asarray(v), (1, n_draws, *np.shape(v))))
                       for n, v in p.items()}, coords={"chain": [0], "draw": np.arange(n_draws)})
    effects, _ = model.draw_effects(post, random_seed=5)
    i = 0  # a treated patient with several cycles
    X, mu, s, _ = _dense(model, p)[i]
    n_k = X.shape[1]
    L = s * np.hstack([p["sd_patient_cycle"] * np.eye(n_k),
                       p["sd_patient"] * np.ones((n_k, 1))])
    r = k["y"][k["p_idx"] == i] - mu
    prec = np.eye(n_k + 1) + L.T @ X.T @ X @ L / p["sigma"] ** 2
    cov = np.linalg.inv(prec)
    mean = cov @ L.T @ X.T @ r / p["sigma"] ** 2
    zeta = np.column_stack([effects["z_patient_cycle"].values[0, :, i, :],
                            effects["z_patient"].values[0, :, i]])
    se = np.sqrt(np.diag(cov) / n_draws)
    assert np.all(np.abs(zeta.mean(axis=0) - mean) < 4.5 * se)
    np.testing.assert_allclose(np.cov(zeta.T), cov, atol=0.03)
    # rho = m + sd_patient z_i + sd_pc z_ik on the cycles the patient had, NaN elsewhere
    m = p["rho_cycle_at_mean_interval"] + p["theta"] * k["g_dev"][i]
    rho = effects["rho"].values[0, :, i, :]
    has = k["has"][i]
    expected = m + p["sd_patient"] * zeta[:, -1:] + p["sd_patient_cycle"] * zeta[:, :-1]
    np.testing.assert_allclose(rho[:, has], expected[:, has])
    assert np.isnan(rho[:, ~has]).all()
    # same seed, same draws
    again, _ = model.draw_effects(post, random_seed=5)
    xr.testing.assert_identical(effects, again)
