"""The four-domain model of ALSFRS-R items (SlopeShiftModel(domains=True))."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytensor
import pytest
from scipy import stats

from slopeshift import SlopeShiftModel, TrialData
from slopeshift.data import ALSFRS_DOMAINS
from slopeshift.model import DOMAIN_FLOOR
from slopeshift.priors import DOMAIN_KEYS, default_priors, resolve_priors


def _load_example():
    """examples/domain_floors.py as a module: its trial generator serves the tests too."""
    path = Path(__file__).resolve().parents[1] / "examples" / "domain_floors.py"
    spec = importlib.util.spec_from_file_location("domain_floors_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: No treatment effect; each patient's gross-motor domain (about 45% of the decline) reaches 0
#: 0.5-2 months after the first injection (injections at months 0 and 3), so the total
#: flattens without any treatment.
floor_trial = _load_example().floor_trial


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
    assert text.startswith("The four ALSFRS-R domain subscores (points")


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


def test_two_arm_trials_and_other_options_build_with_a_finite_density():
    from slopeshift import simulate_realistic_trial

    data, _ = simulate_realistic_trial(6, n_controls=6, gaps=(3.0,), random_seed=4)
    model = SlopeShiftModel(data, domains=True, parameterization="additive",
                            likelihood="student_t", floors="adjust")
    assert model._constants()["controls"]  # the control arm's natural change is in the model
    pm_model = model.pymc_model
    start = pm_model.initial_point()
    start.update({f"{k}": v for k, v in model.initial_values().items()
                  if k in start and np.shape(start[k]) == np.shape(v)})
    assert np.isfinite(pm_model.compile_logp()(start))
    assert np.isfinite(pm_model.compile_dlogp()(start)).all()
