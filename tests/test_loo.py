"""Leave-one-patient-out LOO, the model ladder, and power-scaling sensitivity.

The integrated log-likelihood is checked against an independent reference: each patient's
scores as a dense multivariate normal (from :mod:`test_marginal`) with the intercept's variance
added, integrated over the persistent rate by adaptive quadrature (scipy).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats
from scipy.special import log_ndtr
from test_marginal import _latent_map, _point

from slopeshift import FitResult, SlopeShiftModel, simulate_trial
from slopeshift.loo import (
    LADDER,
    _statistics,
    _weighted_predictive_cdf,
    compare,
    format_comparison,
    integrated_log_likelihood,
    loo_pit,
)
from slopeshift.sensitivity import format_power_scaling, log_prior, power_scaling


@pytest.fixture(scope="module")
def trial():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_trial(6, n_untreated=1, random_seed=3)[0]


def _fake_fit(model, p, beta_draws):
    """A FitResult whose draws share the population parameters and vary beta_pre only."""
    n = len(beta_draws)
    dims = {"alpha": ("patient",), "beta_pre": ("patient",)}
    out = {}
    for name, v in p.items():
        d = dims.get(name, ("cycle",) if name.endswith("interval")
                     or name in ("natural_cycle", "jump", "rho_cycle", "delta_cycle") else ())
        out[name] = (("chain", "draw", *d), np.broadcast_to(np.asarray(v), (1, n, *np.shape(v))))
    out["beta_pre"] = (("chain", "draw", "patient"), np.asarray(beta_draws)[None])
    post = xr.Dataset(out, coords={"chain": [0], "draw": np.arange(n),
                                   "patient": model.design["patient"].values})
    tree = xr.DataTree.from_dict({"posterior": post})
    return FitResult(tree, model.data, model.to_config(), {}, design=model.design)


@pytest.mark.parametrize("options", [{"enrolment": None}, {"enrolment": "auto"},
                                     {"drift": False, "enrolment": None},
                                     {"parameterization": "additive"}])
def test_integrated_density_equals_quadrature_of_the_dense_normal(trial, options):
    model = SlopeShiftModel(trial, **options)
    rng = np.random.default_rng(4)
    p = _point(model, rng)
    p |= {"mu_alpha": 31.0, "sd_alpha": 4.0, "mu_beta": -0.9, "sd_beta": 0.45}
    n_p = model.design.sizes["patient"]
    k = model._constants()
    expected, moments = [], []
    for i in range(n_p):
        y = k["y"][k["p_idx"] == i]

        def density(b, power, i=i, y=y):
            q = dict(p, alpha=np.full(n_p, p["mu_alpha"]), beta_pre=np.full(n_p, b))
            X, mu, M, _, _ = _latent_map(model, q, i)
            cov = (p["sigma"] ** 2 * np.eye(len(mu)) + X @ M @ M.T @ X.T
                   + p["sd_alpha"] ** 2 * np.ones((len(mu), len(mu))))
            return b**power * np.exp(stats.multivariate_normal(mu, cov).logpdf(y) + 60.0) \
                * stats.norm(p["mu_beta"], p["sd_beta"]).pdf(b)

        opts = {"points": [-2, -1, 0], "limit": 400, "epsabs": 0, "epsrel": 1e-10}
        m0, m1, m2 = (integrate.quad(density, -6.0, 4.0, args=(a,), **opts)[0]
                      for a in (0, 1, 2))
        moments.append((m1 / m0, np.sqrt(m2 / m0 - (m1 / m0) ** 2)))
        e = np.log(m0) - 60.0
        if k["enrolled"][i]:  # the selection term of patients enrolled on their run-in
            var = p["sd_beta"] ** 2 + p["sigma"] ** 2 / k["runin_sxx"][i]
            var += p["sd_drift"] ** 2 if model.config["drift"] else 0.0
            e -= log_ndtr((k["enrol_threshold"] - p["mu_beta"]) / np.sqrt(var))
        expected.append(e)
    # draws of beta_pre with each patient's conditional mean and SD, as a fit would have
    z = rng.standard_normal((40, n_p))
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    mean, sd = np.array(moments).T
    fit = _fake_fit(model, p, mean + sd * z)
    ll = integrated_log_likelihood(fit)
    np.testing.assert_allclose(ll.values[0], np.broadcast_to(expected, (40, n_p)), atol=1e-6)
    assert ll.attrs["quadrature_error"] < 1e-4


def test_loo_needs_the_marginal_model(trial):
    model = SlopeShiftModel(trial, likelihood="student_t")
    fit = FitResult(xr.DataTree(), trial, model.to_config(), {}, design=model.design)
    with pytest.raises(ValueError, match="marginal model"):
        integrated_log_likelihood(fit)


def test_slowing_options_build_the_models_they_name(trial):
    none = SlopeShiftModel(trial, slowing="none").pymc_model
    names = {v.name for v in none.free_RVs}
    assert "rho_cycle_at_mean_interval" not in names and "theta" not in names
    assert "log_sd_effects" not in names
    common = SlopeShiftModel(trial, slowing="common", interval_effect=False).pymc_model
    names = {v.name for v in common.free_RVs}
    assert "rho_cycle_common_at_mean_interval" in names and "theta" not in names
    assert "rho_cycle_at_mean_interval" not in names
    with pytest.raises(ValueError, match="slowing must be one of"):
        SlopeShiftModel(trial, slowing="per_patient")
    # the prior predictive follows the options
    pp = SlopeShiftModel(trial, slowing="none").prior_predictive(draws=200)
    assert (pp.set_index("quantity").loc["rho_bar", ["q05", "q95"]] == 0).all()
    dr = SlopeShiftModel(trial, slowing="common", interval_effect=False).prior_predictive(
        draws=200).set_index("quantity")
    assert dr.loc["theta", "q05"] == dr.loc["theta", "q95"] == 0
    assert dr.loc["rho_bar", "q95"] > dr.loc["rho_bar", "q05"]


def test_ladder_names():
    assert list(LADDER) == ["no slowing", "one common slowing", "slowing per cycle",
                            "per cycle + interval", "+ natural change",
                            "natural change, no slowing"]


@pytest.fixture(scope="module")
def compared(small_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return small_fit.compare(ladder=["natural change, no slowing"])


def test_compare_ranks_the_ladder_and_flags_patients(compared, small_fit):
    assert set(compared.index) == {"this fit", "natural change, no slowing"}
    assert list(compared["rank"]) == [0, 1]
    assert compared["elpd_diff"].iloc[0] == 0 and compared["elpd_diff"].iloc[1] < 0
    assert {"elpd", "se", "dse", "p", "weight", "high_pareto_k", "max_pareto_k"} <= set(
        compared.columns)
    # every patient-level quantity integrated out: Pareto k stays low for almost everyone
    res = small_fit.loo()
    assert (res.pareto_k.values <= 0.7).mean() >= 0.9
    assert "y_patient" in small_fit.idata["log_likelihood"].data_vars
    printed = format_comparison(compared)
    assert printed["Difference from best (SE)"].iloc[0] == "best"
    assert "leave-one-patient-out" in printed.attrs["note"].lower()
    with pytest.raises(ValueError, match="at least two"):
        compare({"one": small_fit})


def test_loo_pit_of_a_fit(small_fit):
    pit = loo_pit(small_fit, kind="score")
    after = small_fit.design["x_pre"].values == 0
    assert pit.sizes["visit"] == after.sum()
    assert ((pit >= 0) & (pit <= 1)).all()
    assert set(pit["patient"].values) <= set(small_fit.design["patient"].values)
    slope = loo_pit(small_fit)
    assert slope.dims == ("patient",) and slope.attrs["kind"] == "slope"
    assert 10 <= slope.sizes["patient"] <= small_fit.design.sizes["patient"]
    # a plausible model: PITs spread over (0, 1), not piled at the ends
    for values in (pit, slope):
        assert 0.25 < float(values.mean()) < 0.75 and float(values.std()) > 0.15
    with pytest.raises(ValueError, match="kind must be"):
        loo_pit(small_fit, kind="visit")


def test_log_prior_is_the_priors_density(small_fit):
    lp = log_prior(small_fit)
    post = small_fit.posterior
    sigma_prior = small_fit.config["priors"]["sigma"]
    assert sigma_prior["dist"] == "HalfNormal"
    expected = stats.halfnorm(scale=sigma_prior["sigma"]).logpdf(post["sigma"].values)
    np.testing.assert_allclose(lp["sigma"].values, expected, rtol=1e-6)
    rho = small_fit.config["priors"]["rho_cycle"]
    expected = stats.norm(rho["mu"], rho["sigma"]).logpdf(post["rho_cycle"].values).sum(-1)
    np.testing.assert_allclose(lp["rho_cycle"].values, expected, rtol=1e-6)
    assert "theta" in lp and "sd_drift" in lp


def test_power_scaling_table(small_fit):
    table = power_scaling(small_fit)
    assert "rho_bar_given" in table.index and "sd_drift" in table.index
    assert {"prior", "likelihood", "diagnosis"} <= set(table.columns)
    assert (table[["prior", "likelihood"]] >= 0).all().all()
    printed = format_power_scaling(table)
    assert list(printed.columns) == ["Quantity", "Prior sensitivity", "Likelihood sensitivity",
                                     "Diagnosis"]
    with pytest.raises(ValueError, match="no posterior quantity"):
        power_scaling(small_fit, var_names=["rho_everything"])


@pytest.mark.slow
def test_loo_prefers_slowing_only_where_there_is_slowing():
    """A trial with a 60% slowing: the per-cycle model predicts new patients clearly better
    than natural change alone; on the same patients without slowing it does not."""
    out = {}
    for rho in (0.6, 0.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, _ = simulate_trial(40, rho=rho, theta=0.0, sd_patient=0.15, random_seed=8)
            fit = SlopeShiftModel(data).fit(draws=500, tune=700, random_seed=8,
                                            progressbar=False, check=False)
            out[rho] = fit.compare(ladder=["natural change, no slowing"])
    def diff(table):  # elpd of the per-cycle model minus that of natural change alone
        d = table["elpd"]["this fit"] - table["elpd"]["natural change, no slowing"]
        return d, float(table["dse"].max())

    d_effect, se_effect = diff(out[0.6])
    d_null, se_null = diff(out[0.0])
    # measured (seed 8): effect +4.7 (SE 2.6); LOO over 40 patients separates a 60% slowing
    # from natural change by about two SEs, no more
    assert d_effect > se_effect
    # without slowing the extra parameters do not predict better
    assert d_null < min(se_null, 0.5 * d_effect)


def test_loo_pit_is_the_predictive_cdf_of_a_new_patient(trial):
    """With one set of population parameters the PIT of a score is the CDF of the score of a
    new patient with the same visits: checked by simulating such patients (dense normal),
    enrolled only when their run-in least-squares slope passes the rule."""
    model = SlopeShiftModel(trial, enrolment="auto")
    rng = np.random.default_rng(6)
    p = _point(model, rng)
    p |= {"mu_alpha": 31.0, "sd_alpha": 4.0, "mu_beta": -0.9, "sd_beta": 0.45}
    n_p = model.design.sizes["patient"]
    fit = _fake_fit(model, p, p["beta_pre"] + 0.2 * rng.standard_normal((3, n_p)))
    par = model._posterior_arrays(fit.posterior)
    w = np.full((3, n_p), 1 / 3)
    scores = _statistics(model, "score")
    pit = _weighted_predictive_cdf(model, par, w, scores, nodes=40)
    slopes = _statistics(model, "slope")
    pit_slope = _weighted_predictive_cdf(model, par, w, slopes, nodes=40)
    k = model._constants()
    i = int(np.flatnonzero(k["enrolled"])[0])
    sel = k["p_idx"] == i
    t_pre = k["x_pre"][sel]
    after = t_pre == 0
    n_sim = 100_000
    b = rng.normal(p["mu_beta"], p["sd_beta"], n_sim)
    sims = []
    for lo in range(0, n_sim, 2000):
        for bb in b[lo:lo + 2000]:
            q = dict(p, alpha=np.full(n_p, p["mu_alpha"]), beta_pre=np.full(n_p, bb))
            X, mu, M, _, _ = _latent_map(model, q, i)
            L = np.column_stack([X @ M, np.ones(len(mu)) * p["sd_alpha"]])
            sims.append(mu + L @ rng.standard_normal(L.shape[1])
                        + p["sigma"] * rng.standard_normal(len(mu)))
        if len(sims) >= 20_000:
            break
    sims = np.array(sims)
    run = ~after
    tc = t_pre[run] - t_pre[run].mean()
    slope = (sims[:, run] - sims[:, run].mean(axis=1, keepdims=True)) @ tc / (tc @ tc)
    kept = sims[slope < k["enrol_threshold"]][:, after]
    y = k["y"][sel][after]
    expected = (kept <= y).mean(axis=0)
    got = pit[scores["patient"] == i]
    se = np.sqrt(expected * (1 - expected) / len(kept))
    np.testing.assert_array_less(np.abs(got - expected), 4 * se + 1e-3)
    # the least-squares slope of those scores (points/month)
    tc = k["month"][sel][after] if "month" in k else model.design["month"].values[sel][after]
    tc = tc - tc.mean()
    sim_slope = kept @ tc / (tc @ tc)
    expected = (sim_slope <= y @ tc / (tc @ tc)).mean()
    got = pit_slope[slopes["patient"] == i][0]
    assert abs(got - expected) < 4 * np.sqrt(expected * (1 - expected) / len(kept)) + 1e-3


def test_report_shows_a_given_comparison(small_fit, compared, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from slopeshift.report import write_report

    html = write_report(small_fit, tmp_path, comparison=compared).read_text()
    assert "11. Model comparison (leave one patient out)" in html
    assert "natural change, no slowing" in html
    assert (tmp_path / "comparison_formatted.csv").is_file()
