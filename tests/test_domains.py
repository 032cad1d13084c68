"""The four-domain model of ALSFRS-R items (SlopeShiftModel(domains=True))."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytest
from scipy import stats

from slopeshift import SlopeShiftModel, TrialData
from slopeshift.data import ALSFRS_DOMAINS, ALSFRS_ITEMS
from slopeshift.model import DOMAIN_FLOOR
from slopeshift.priors import DOMAIN_KEYS, default_priors, resolve_priors


def floor_trial(n: int = 20, seed: int = 0, runin: int = 6, follow: int = 6) -> TrialData:
    """No treatment effect; each patient's gross-motor domain reaches 0 0.5-2 months after the
    first injection (injections at months 0 and 3), while the other domains keep declining.

    Each domain declines linearly at its share of the patient's constant total rate (0.8-1.4
    points/month), is observed with noise, rounded and clipped to 0-12, and split over its
    three items. The total then flattens after month 0-2 without any treatment.
    """
    rng = np.random.default_rng(seed)
    rows, inj = [], []
    for i in range(n):
        pid = f"F{i:02d}"
        rate = rng.uniform(0.8, 1.4)
        share = np.array([0.15, 0.25, 0.45, 0.15]) * np.exp(rng.normal(0.0, 0.15, 4))
        share /= share.sum()
        start = np.array([11.0, 9.0, 0.0, 11.0])
        start[2] = share[2] * rate * (runin + rng.uniform(0.5, 2.0))
        for m in range(-runin, follow + 1):
            t = 0.0 if m == 0 else m + rng.normal(0.0, 0.1)
            dom = start - share * rate * (t + runin) + rng.normal(0.0, 0.5, 4)
            dom = np.clip(np.round(dom), 0, 12).astype(int)
            items = [v // 3 + (j < v % 3) for v in dom for j in range(3)]
            rows.append({"patient": pid, "time": t, **dict(zip(ALSFRS_ITEMS, items, strict=True))})
        inj += [{"patient": pid, "time": 0.0}, {"patient": pid, "time": 3.0}]
    return TrialData.from_frames(pd.DataFrame(rows), pd.DataFrame(inj), outcome="alsfrs_r")


@pytest.fixture(scope="module")
def items_data() -> TrialData:
    return floor_trial(n=8, seed=1)


def total_data() -> TrialData:
    visits = pd.DataFrame({"patient": ["A"] * 4 + ["B"] * 4, "time": [-2, -1, 1, 2] * 2,
                           "alsfrs_r": [40, 39, 37, 36, 30, 29, 27, 26]})
    inj = pd.DataFrame({"patient": ["A", "B"], "time": [0, 0]})
    return TrialData.from_frames(visits, inj)


def test_needs_items_and_rejects_options_it_cannot_take(items_data):
    with pytest.raises(ValueError, match="needs the 12 items"):
        SlopeShiftModel(total_data(), domains=True)
    with pytest.raises(ValueError, match="jump=True"):
        SlopeShiftModel(items_data, domains=True, jump=True)
    with pytest.raises(ValueError, match="latent"):
        SlopeShiftModel(items_data, domains=True, effects="marginal")


def test_priors_replace_the_totals_intercept_and_noise():
    pri = default_priors("alsfrs_r", domains=True, data_centre=32.0)
    assert set(DOMAIN_KEYS) <= set(pri)
    assert not {"mu_alpha", "sd_alpha", "sigma"} & set(pri)
    assert pri["mu_alpha_domain"].params["mu"] == pytest.approx(8.0)
    with pytest.raises(ValueError, match="unknown prior name"):
        resolve_priors("alsfrs_r", "ratio", {"sigma": {"dist": "HalfNormal", "sigma": 1}},
                       32.0, domains=True)


def test_config_and_methods_name_the_domain_model(items_data):
    model = SlopeShiftModel(items_data, domains=True)
    assert model.config["domains"] is True and model.config["effects"] == "latent"
    assert "domains" not in SlopeShiftModel(items_data).config  # total configs unchanged
    # floors are censored, not adjusted: every cell's floor factor is 1
    np.testing.assert_array_equal(model._constants()["floor_factor"], 1.0)


def test_likelihood_is_each_domain_censored_at_its_bounds(items_data):
    """The model's log-likelihood equals one computed by hand from its own parameters."""
    model = SlopeShiftModel(items_data, domains=True)
    pm_model = model.pymc_model
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.3, np.shape(v))
             for k, v in pm_model.initial_point().items()}
    names = ["alpha_domain", "share", "sigma_domain", "slope", "slope_runin", "sigma_visit",
             "z_visit"]
    outs = pm_model.replace_rvs_by_values([pm_model[n] for n in names])
    fn = pytensor.function(pm_model.value_vars, outs, on_unused_input="ignore")
    got = dict(zip(names, fn(*[point[v.name] for v in pm_model.value_vars]), strict=True))
    d = model.design
    idx = d["patient_index"].values
    f = d["domain_floor_factor"].values  # (patient, cycle, domain)
    assert (f < 1).any()  # the gross-motor items reach 0: some factors are below 1
    cycles = np.nan_to_num(got["slope"])[idx] * d["x_cycle"].values  # (visit, cycle)
    path = ((got["slope_runin"][idx] * d["x_pre"].values
             + got["sigma_visit"] * got["z_visit"])[:, None]
            + np.einsum("vk,vkd->vd", cycles, f[idx]))
    mu = got["alpha_domain"][idx] + got["share"][idx] * path
    sd = got["sigma_domain"][None, :]
    y = items_data.visits[list(ALSFRS_DOMAINS)].to_numpy(float)
    want = np.where(y <= DOMAIN_FLOOR, stats.norm.logcdf((DOMAIN_FLOOR - mu) / sd),
                    stats.norm.logpdf(y, mu, sd))
    assert (y == DOMAIN_FLOOR).any() and (y == 12).any()  # floor and (uncensored) ceiling
    logp = pm_model.compile_logp(vars=[pm_model["y"]])(point)
    assert logp == pytest.approx(want.sum(), rel=1e-9)
    # the shares sum to 1 and alpha is the domains' sum
    np.testing.assert_allclose(got["share"].sum(axis=1), 1.0)


@pytest.fixture(scope="module")
def domain_fit(items_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SlopeShiftModel(items_data, domains=True).fit(
            draws=100, tune=150, chains=2, random_seed=3, progressbar=False, check=False)


def test_fit_tables_predictive_and_methods(domain_fit, items_data):
    assert {"alpha_domain", "share", "sigma_domain", "sigma_visit", "rho", "slope"} <= set(
        domain_fit.posterior)
    np.testing.assert_allclose(domain_fit.posterior["alpha"].values,
                               domain_fit.posterior["alpha_domain"].sum("domain").values)
    assert len(domain_fit.patients()) == items_data.patients.shape[0]
    rep = domain_fit.predictive(random_seed=1)
    assert rep.dims == ("chain", "draw", "visit")
    assert float(rep.min()) >= 0.0 and float(rep.max()) <= 48.0
    np.testing.assert_array_equal(rep.values, domain_fit.predictive(random_seed=1).values)
    from slopeshift.report import methods_paragraph

    text = methods_paragraph(domain_fit)
    assert "four ALSFRS-R domains" in text and "censored at 0" in text


@pytest.mark.slow
def test_a_domain_at_its_floor_is_not_read_as_slowing():
    """No effect, gross motor at 0 from month 0.5-2: the total flattens by about 45%.

    Modelling the total as it is (floors="include") reads that as slowing; the domain model,
    whose gross-motor domain is censored at 0, does not.
    """
    data = floor_trial(n=20, seed=0)
    out = {}
    for name, kw in (("total", {"floors": "include"}),
                     ("domains", {"domains": True, "floors": "include"})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = SlopeShiftModel(data, **kw).fit(draws=500, tune=500, random_seed=1,
                                                  progressbar=False, check=False)
        out[name] = fit.population().set_index("quantity").loc["rho_bar"]
    assert out["total"]["mean"] > 0.2 and out["total"]["p_gt_0"] > 0.9
    assert abs(out["domains"]["mean"]) < 0.15 and out["domains"]["p_gt_0.25"] < 0.1
