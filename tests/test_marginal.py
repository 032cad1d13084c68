"""The integrated-out effects: exact marginal density and conditional draws.

The reference is written independently of :mod:`slopeshift.marginal`: every patient's scores are
a dense multivariate normal whose covariance holds the slowing effects (u_i, e_ik) and the
natural drift of each period (run-in and cycles), and the conditional draws are checked against
plain Gaussian conditioning of all those effects together. The models ignore dropout (its
selection model adds a term of its own, checked in ``test_dropout.py``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from coordinates import set_rates
from scipy import stats

from slopeshift import SlopeShiftModel, simulate_trial


@pytest.fixture(scope="module")
def trial():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_trial(6, n_untreated=1, random_seed=3)[0]


def _key(model):
    return "rho_cycle" if model.config["parameterization"] == "ratio" else "delta_cycle"


def _point(model, rng):
    n_p = model.design.sizes["patient"]
    n_k = model.design.sizes["cycle"]
    p = {
        "alpha": rng.normal(30, 3, n_p), "beta_pre": rng.normal(-1, 0.3, n_p),
        f"{_key(model)}_at_mean_interval": rng.normal(0.3, 0.1, n_k), "theta": np.array(-0.05),
        "sd_patient": 0.25, "sd_patient_cycle": 0.15, "sigma": 1.7,
    }
    if model.config["drift"]:
        p |= {"sd_drift": 0.45, "acceleration": np.array(-0.03),
              "natural_cycle": rng.normal(0.0, 0.15, n_k)}
    if model.config["jump"]:
        p |= {"jump": rng.normal(1.0, 0.5, n_k), "sd_jump": 0.8}
    # the stored cycle means at the reference interval (what the draws read)
    at_mean = p[f"{_key(model)}_at_mean_interval"]
    if model.config["drift"]:
        at_mean = model._at_mean(at_mean, np.asarray(p["acceleration"]), p["natural_cycle"])
    p[_key(model)] = at_mean - p["theta"] * model._constants()["g_mean"]
    return p


def _latent_map(model, p, i):
    """Scores of patient i = mu + X_i M xi, xi ~ N(0, I): M maps every effect to its exposure.

    Effects xi: z_i1..z_iK (patient-cycle slowing), z_i (patient slowing), then with drift
    w_i1..w_iK (cycle drift) and w_i0 (run-in drift), then with jumps j_i1..j_iK (the
    patient's jump deviations). Exposure columns: cycles 1..K, run-in, then with jumps the
    steps 1[t >= tau_ik].
    """
    k = model._constants()
    ratio = model.config["parameterization"] == "ratio"
    n_k = k["has"].shape[1]
    sel = k["p_idx"] == i
    jump = model.config["jump"]
    X = np.column_stack([k["x_cycle"][sel], k["x_pre"][sel]]
                        + ([k["x_jump"][sel]] if jump else []))
    at_mean = p[f"{_key(model)}_at_mean_interval"]
    if model.config["drift"]:  # the sampler's coordinate is sheared along the natural change
        at_mean = model._at_mean(at_mean, np.asarray(p["acceleration"]), p["natural_cycle"])
    m = at_mean + p["theta"] * k["g_dev"][i]
    b0 = p["beta_pre"][i]
    natural = b0 + (p["acceleration"] * k["natural_time"][i] + p["natural_cycle"]
                    if model.config["drift"] else 0.0)
    natural = natural * k["floor_factor"][i]
    T = k["effect"][i]
    fixed = natural * (1 - T * m) if ratio else natural + T * m
    mu = p["alpha"][i] + b0 * k["x_pre"][sel] + k["x_cycle"][sel] @ fixed
    if jump:
        mu = mu + k["x_jump"][sel] @ (p["jump"] * T)
    load = -natural * T if ratio else T * np.ones(n_k)
    drift = model.config["drift"]
    q = 2 * n_k + 2 if drift else n_k + 1
    M = np.zeros((X.shape[1], q + (n_k if jump else 0)))
    if jump:
        for j in range(n_k):
            M[n_k + 1 + j, q + j] = p["sd_jump"] * T[j]
    for j in range(n_k):
        M[j, j] = load[j] * p["sd_patient_cycle"]
        M[j, n_k] = load[j] * p["sd_patient"]
        if drift:
            M[j, n_k + 1 + j] = p["sd_drift"]
    if drift:
        M[n_k, 2 * n_k + 1] = p["sd_drift"]
    return X, mu, M, m, natural


def _conditional(model, p, i):
    """Plain Gaussian conditioning of patient i's effects xi on the scores: mean, covariance,
    the loading map M and (m, natural) of :func:`_latent_map`."""
    k = model._constants()
    X, mu, M, m, natural = _latent_map(model, p, i)
    r = k["y"][k["p_idx"] == i] - mu
    prec = np.eye(M.shape[1]) + M.T @ X.T @ X @ M / p["sigma"] ** 2
    cov = np.linalg.inv(prec)
    return cov @ M.T @ X.T @ r / p["sigma"] ** 2, cov, M, m, natural


def _posterior(model, p, n_draws=1):
    dims = {"alpha": ("patient",), "beta_pre": ("patient",)}
    out = {}
    for n, v in p.items():
        d = dims.get(n, ("cycle",) if n.endswith("interval")
                     or n in ("natural_cycle", "jump", "rho_cycle", "delta_cycle") else ())
        out[n] = (("chain", "draw", *d), np.broadcast_to(np.asarray(v), (1, n_draws,
                                                                          *np.shape(v))))
    return xr.Dataset(out, coords={"chain": [0], "draw": np.arange(n_draws)})


@pytest.mark.parametrize("options", [{"parameterization": "ratio"},
                                     {"parameterization": "additive"},
                                     {"drift": False},
                                     {"jump": True},
                                     {"jump": True, "drift": False}])
def test_marginal_density_equals_dense_multivariate_normal(trial, options):
    model = SlopeShiftModel(trial, dropout="ignore", **options)
    pm_model = model.pymc_model
    p = _point(model, np.random.default_rng(1))
    point = pm_model.initial_point()
    point.update({k: v for k, v in p.items() if k in point})
    point["sigma_log__"] = np.log(p["sigma"])
    if model.config["drift"]:
        point["sd_drift_log__"] = np.log(p["sd_drift"])
    if model.config["jump"]:
        point["sd_jump_log__"] = np.log(p["sd_jump"])
    assert model.marginal  # jumps are integrated out too
    total2 = p["sd_patient"] ** 2 + p["sd_patient_cycle"] ** 2  # SDs as total and share
    point["log_sd_effects"] = np.asarray(0.5 * np.log(total2))
    share = p["sd_patient"] ** 2 / total2
    point["logit_patient_share"] = np.asarray(np.log(share / (1 - share)))
    set_rates(model, point, p["beta_pre"])  # last: the coordinate depends on the rest
    pot = next(v for v in pm_model.potentials if v.name == "y_marginal")
    fn = pm_model.compile_fn(pm_model.replace_rvs_by_values([pot]), inputs=pm_model.value_vars,
                             on_unused_input="ignore")
    k = model._constants()
    expected = []
    for i in range(k["has"].shape[0]):
        X, mu, M, _, _ = _latent_map(model, p, i)
        cov = p["sigma"] ** 2 * np.eye(len(mu)) + X @ M @ M.T @ X.T
        expected.append(stats.multivariate_normal(mu, cov).logpdf(k["y"][k["p_idx"] == i]))
    assert float(fn(point)[0]) == pytest.approx(sum(expected), rel=1e-10)

    # the NumPy path (used for the log-likelihood group and the draws) gives the same numbers
    _, loglik = model.draw_effects(_posterior(model, p), random_seed=0)
    np.testing.assert_allclose(loglik.values[0, 0], expected, rtol=1e-10)


@pytest.mark.parametrize("drift", [True, False])
def test_conditional_draws_match_gaussian_conditioning(trial, drift):
    model = SlopeShiftModel(trial, dropout="ignore", drift=drift)
    k = model._constants()
    p = _point(model, np.random.default_rng(2))
    n_draws = 20000
    post = _posterior(model, p, n_draws)
    effects, _ = model.draw_effects(post, random_seed=5)
    i = 0  # a treated patient with several cycles
    mean, cov, M, m, natural = _conditional(model, p, i)
    n_k = k["has"].shape[1]
    has = k["has"][i]
    # the slowing effects (z_ik, z_i), and the cycles' drift, against Gaussian conditioning
    cols = list(range(n_k + 1))
    got = np.column_stack([effects["z_patient_cycle"].values[0, :, i, :],
                           effects["z_patient"].values[0, :, i]])
    if drift:
        drift_cols = [n_k + 1 + j for j in range(n_k) if has[j]]
        cols += drift_cols
        got = np.column_stack([got, effects["drift"].values[0, :, i, has] .T / p["sd_drift"]])
    se = np.sqrt(np.diag(cov)[cols] / n_draws)
    assert np.all(np.abs(got.mean(axis=0) - mean[cols]) < 4.5 * se)
    np.testing.assert_allclose(np.cov(got.T), cov[np.ix_(cols, cols)], atol=0.03)
    # rho = m + sd_patient z_i + sd_pc z_ik on the cycles the patient had, NaN elsewhere
    rho = effects["rho"].values[0, :, i, :]
    expected = m + p["sd_patient"] * got[:, n_k:n_k + 1] + p["sd_patient_cycle"] * got[:, :n_k]
    np.testing.assert_allclose(rho[:, has], expected[:, has])
    assert np.isnan(rho[:, ~has]).all()
    # the slope is the natural rate times (1 - rho) plus the drift
    slope = effects["slope"].values[0, :, i, :]
    drift_draws = effects["drift"].values[0, :, i, :] if drift else 0.0
    np.testing.assert_allclose(slope[:, has], (natural * (1 - rho) + drift_draws)[:, has])
    # same seed, same draws
    again, _ = model.draw_effects(post, random_seed=5)
    xr.testing.assert_identical(effects, again)


def test_conditional_jump_draws_match_gaussian_conditioning(trial):
    model = SlopeShiftModel(trial, dropout="ignore", jump=True)
    k = model._constants()
    p = _point(model, np.random.default_rng(4))
    n_draws = 20000
    effects, _ = model.draw_effects(_posterior(model, p, n_draws), random_seed=6)
    i = 0
    mean, cov, M, _, _ = _conditional(model, p, i)
    n_k = k["has"].shape[1]
    cell = k["has"][i] & (k["effect"][i] > 0)
    cols = [M.shape[1] - n_k + j for j in range(n_k) if cell[j]]
    got = effects["jump_patient"].values[0, :, i, cell]
    want_mean = p["jump"][cell] + p["sd_jump"] * mean[cols]
    se = p["sd_jump"] * np.sqrt(np.diag(cov)[cols] / n_draws)
    assert np.all(np.abs(got.T.mean(axis=0) - want_mean) < 4.5 * se)
    np.testing.assert_allclose(np.cov(got), p["sd_jump"] ** 2 * cov[np.ix_(cols, cols)],
                               atol=0.03)
    assert np.isnan(effects["jump_patient"].values[0, :, i, ~cell]).all()


class _PartlyCentred(SlopeShiftModel):
    """The marginal model with beta_i0 sampled partly centred (before 2026-12-07)."""

    _conditional_coordinates = False


@pytest.mark.parametrize("options", [{"parameterization": "ratio"},
                                     {"parameterization": "additive"},
                                     {"drift": False},
                                     {"jump": True}])
def test_conditional_coordinates_leave_the_posterior_unchanged(trial, options):
    """beta_i0 = c_i + s_i z_i (c, s functions of the population parameters) is a change of
    the sampler's coordinates only: at the same parameters and rates, the density less its
    Jacobian sum(log s_i) equals the partly centred model's less its own, sum((1 - lam_i)
    log sd_beta), and the Jacobian is the z -> beta derivative read off the graph."""
    cond = SlopeShiftModel(trial, dropout="ignore", **options)
    part = _PartlyCentred(trial, dropout="ignore", **options)
    assert "beta_pre_z" in cond.pymc_model.named_vars
    assert "beta_pre_pc" in part.pymc_model.named_vars
    lam = part._constants()["beta_centring"]
    pmc = cond.pymc_model
    jac = next(v for v in pmc.potentials if v.name == "beta_pre_jacobian")
    # compiled once (each compile of these graphs takes seconds), evaluated at three points
    jac_fn = pmc.compile_fn(pmc.replace_rvs_by_values([jac])[0], inputs=pmc.value_vars,
                            on_unused_input="ignore")
    beta_fn = pmc.compile_fn(pmc.replace_rvs_by_values([pmc["beta_pre"]])[0],
                             inputs=pmc.value_vars, on_unused_input="ignore")
    logp_cond = pmc.compile_logp()
    logp_part = part.pymc_model.compile_logp()
    base = pmc.initial_point()
    rng = np.random.default_rng(4)
    for _ in range(3):
        p = _point(cond, rng)
        point = {k: v for k, v in base.items() if k != "beta_pre_z"}
        point.update({k: v for k, v in p.items() if k in point})
        point["sigma_log__"] = np.log(p["sigma"])
        point["sd_beta_log__"] = np.log(rng.uniform(0.2, 0.8))
        point["mu_beta"] = np.asarray(rng.normal(-1.0, 0.2))
        if cond.config["drift"]:
            point["sd_drift_log__"] = np.log(p["sd_drift"])
        if cond.config["jump"]:
            point["sd_jump_log__"] = np.log(p["sd_jump"])
        point["log_sd_effects"] = np.asarray(rng.normal(-1.0, 0.3))
        point["logit_patient_share"] = np.asarray(rng.normal(0.0, 0.5))
        a = set_rates(cond, dict(point), p["beta_pre"])
        b = set_rates(part, dict(point), p["beta_pre"])
        sd_beta = float(np.exp(point["sd_beta_log__"]))
        s = beta_fn(a | {"beta_pre_z": a["beta_pre_z"] + 1.0}) - beta_fn(a)
        assert (s > 0).all()
        assert float(jac_fn(a)) == pytest.approx(np.log(s).sum(), rel=1e-10)
        np.testing.assert_allclose(beta_fn(a), p["beta_pre"], rtol=1e-10)
        logp_a = float(logp_cond(a)) - float(jac_fn(a))
        logp_b = (float(logp_part(b))
                  - float(((1.0 - lam) * np.log(sd_beta)).sum()))
        assert logp_a == pytest.approx(logp_b, abs=1e-8)


@pytest.mark.parametrize("slowing", ["per_cycle", "common"])
def test_ratio_shear_jacobian_is_the_derivative_of_the_cycle_means(trial, slowing):
    """Ratio form with drift: rho_k = 1 - (1 - s_k) exp(-(natural change) / b_k) of the sampled
    s_k; the density adds log |d rho_k / d s_k|, checked against a finite difference of the
    graph's own rho_k, so the posterior of rho_k is the model's."""
    model = SlopeShiftModel(trial, dropout="ignore", slowing=slowing)
    pmm = model.pymc_model
    name = ("rho_cycle_at_mean_interval" if slowing == "per_cycle"
            else "rho_cycle_common_at_mean_interval")
    jac = next(v for v in pmm.potentials if v.name == "rho_cycle_shear_jacobian")
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["rho_cycle"], jac]),
                        inputs=pmm.value_vars, on_unused_input="ignore")
    rng = np.random.default_rng(2)
    point = pmm.initial_point()
    point["acceleration"] = np.asarray(-0.05)
    point["natural_cycle"] = rng.normal(0.0, 0.3, point["natural_cycle"].shape)
    point[name] = rng.normal(0.3, 0.1, point[name].shape)
    rho, log_jac = fn(point)
    h = 1e-6
    deriv = []
    for j in range(point[name].size):
        up = point[name].copy()
        up.flat[j] += h
        deriv.append((fn(point | {name: up})[0] - rho) / h)
    deriv = np.array(deriv)  # (sampled, cycle)
    if slowing == "per_cycle":
        assert np.allclose(deriv - np.diag(np.diag(deriv)), 0.0, atol=1e-6)
        want = np.log(np.abs(np.diag(deriv))).sum()
    else:  # one sampled slowing moves every cycle alike
        want = np.log(abs(deriv[0, 0]))
    assert float(log_jac) == pytest.approx(want, abs=1e-5)
    assert abs(float(log_jac)) > 0.01  # the shear is not the identity here


def test_ratio_shear_keeps_the_treated_mean_slope(trial):
    """At a fixed sampled coordinate and no natural change, the treated patients' mean slope
    in a cycle, n_k (1 - rho_k) with n_k = b_k + natural_cycle_k, does not move to first order
    when the natural change does (the linear shear it replaced moved it by -rho_k per unit)."""
    model = SlopeShiftModel(trial, dropout="ignore")
    pmm = model.pymc_model
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["rho_cycle"]])[0],
                        inputs=pmm.value_vars, on_unused_input="ignore")
    point = pmm.initial_point()
    point["acceleration"] = np.asarray(0.0)
    point["rho_cycle_at_mean_interval"] = np.linspace(0.2, 0.5, point["natural_cycle"].size)
    b = model._constants()["shear_rate"]
    h = 1e-4

    def mean_slope(step):
        moved = point | {"natural_cycle": np.full(b.shape, step)}
        return (b + step) * (1.0 - fn(moved))

    slope_change = (mean_slope(h) - mean_slope(-h)) / (2 * h)
    np.testing.assert_allclose(slope_change, 0.0, atol=1e-6)
    assert (np.abs(point["rho_cycle_at_mean_interval"]) > 0.1).all()
