"""The selection model of dropout (``dropout="selection"``): its rule, its exact draws, its fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import log_ndtr, ndtr
from scipy.stats import norm

from slopeshift import SlopeShiftModel, simulate_realistic_trial
from slopeshift.classical import followed_for_less, followup_table
from slopeshift.marginal import draw_effects as marginal_draws


@pytest.fixture(scope="module")
def trial():
    """20 fast decliners, sham injections at months 0 and 3, heavy informative dropout."""
    data, _ = simulate_realistic_trial(20, effect=0.0, effect_sd=0.0, gaps=(3.0,),
                                       enrolment_max_slope="median", dropout=0.05,
                                       random_seed=11)
    return data


@pytest.fixture(scope="module")
def model(trial):
    return SlopeShiftModel(trial, dropout="selection")


def test_option_is_checked_and_stored(trial):
    m = SlopeShiftModel(trial, dropout="selection")
    assert m.config["dropout"] == "selection" and "dropout_auto" not in m.config
    assert {"dropout_intercept", "dropout_slope"} <= set(m.priors)
    ignored = SlopeShiftModel(trial, dropout="ignore")
    assert ignored.config["dropout"] == "ignore"
    assert not set(ignored.priors) & {"dropout_intercept", "dropout_slope"}
    assert "last_cycle" not in ignored._constants()
    with pytest.raises(ValueError, match="dropout must be 'auto', 'selection' or 'ignore'"):
        SlopeShiftModel(trial, dropout="mnar")
    with pytest.raises(ValueError, match="needs the marginal model"):
        SlopeShiftModel(trial, dropout="selection", likelihood="student_t")


def test_auto_models_dropout_only_in_single_arm_trials_where_someone_left(trial):
    """dropout="auto" (the default): selection for a single-arm marginal model with patients
    followed for less; ignore with controls, with nobody followed for less, with latent
    effects; a dropout prior it cannot use is an error, not silently dropped."""
    auto = SlopeShiftModel(trial)
    assert auto.config["dropout"] == "selection" and auto.config["dropout_auto"]
    assert {"dropout_intercept", "dropout_slope"} <= set(auto.priors)
    # the same graph as asking for it: one compiled structure
    assert auto._constants()["dropout_sign"].tolist() == \
        SlopeShiftModel(trial, dropout="selection")._constants()["dropout_sign"].tolist()
    latent = SlopeShiftModel(trial, likelihood="student_t")
    assert latent.config["dropout"] == "ignore" and latent.config["dropout_auto"]
    with pytest.raises(ValueError, match=r"dropout='auto' did not choose.*dropout='selection'"):
        SlopeShiftModel(trial, likelihood="student_t",
                        priors={"dropout_slope": {"dist": "Normal", "mu": 0, "sigma": 1}})
    two_arm, _ = simulate_realistic_trial(12, n_controls=12, effect=0.0, effect_sd=0.0,
                                          gaps=(3.0,), dropout=0.05, random_seed=3)
    assert followed_for_less(two_arm)["for_less"].any()
    assert SlopeShiftModel(two_arm).config["dropout"] == "ignore"
    assert SlopeShiftModel(two_arm, dropout="selection").config["dropout"] == "selection"
    stayed, _ = simulate_realistic_trial(12, effect=0.0, effect_sd=0.0, gaps=(3.0,),
                                         dropout=False, random_seed=4)
    assert not followed_for_less(stayed)["for_less"].any()
    assert SlopeShiftModel(stayed).config["dropout"] == "ignore"


def test_followed_for_less_and_last_cycle_follow_the_followup_table(trial, model):
    k = model._constants()
    table = followup_table(trial).set_index("followed")
    sign = k["dropout_sign"]
    assert (sign == 1).sum() == table.loc["for less", "patients"]
    assert (sign == -1).sum() == table.loc["to the end", "patients"]
    has = k["has"]
    # one last cycle per patient with a cycle: the latest with data
    assert (k["last_cycle"].sum(axis=1) == has.any(axis=1)).all()
    for i in np.flatnonzero(has.any(axis=1)):
        assert k["last_cycle"][i, np.flatnonzero(has[i]).max()] == 1


def test_selection_draws_are_exact(model):
    """Given the scores, the last cycle's slope b is Normal(m, v); given also whether the
    patient was followed for less (s = +1) or to the end (s = -1), its density is
    N(b; m, v) Phi(s (a + c (b - b_ref))): a skew normal whose mean and variance are known.
    The moved draws must have them."""
    k = model._constants()
    n_p, n_k = k["has"].shape
    reps = 20_000
    rng = np.random.default_rng(5)
    p = {
        "alpha": np.tile(k["period_slope"][:, 0] * 0 + 35.0, (reps, 1)),
        "beta_pre": np.tile(np.minimum(k["period_slope"][:, 0], -0.3), (reps, 1)),
        "theta": np.zeros(reps), "sd_patient": np.full(reps, 0.15),
        "sd_patient_cycle": np.full(reps, 0.1), "sigma": np.full(reps, 1.6),
        "sd_drift": np.full(reps, 0.5), "acceleration": np.full(reps, -0.02),
        "natural_cycle": np.zeros((reps, n_k)),
        "m_at_mean": np.full((reps, n_k), 0.1),
        "dropout_intercept": np.full(reps, -0.3), "dropout_slope": np.full(reps, -1.2),
    }
    cond = model._conditional_terms(p, p["alpha"], p["beta_pre"])
    terms, loadings, q = cond["terms"], cond["loadings"], cond["q"]
    sigma = p["sigma"][:, None]
    zeta = marginal_draws(terms, sigma, rng.standard_normal((q, reps, n_p)))
    model._select_draws(zeta, terms, loadings, q, cond["fixed"], sigma, p, k, rng)
    t = model._last_slope_terms(terms, loadings, q, cond["fixed"], sigma, k)
    b = (cond["fixed"] * k["last_cycle"]).sum(axis=-1) + sum(t["w"][i] * zeta[i]
                                                             for i in range(q))
    m, v = t["mean"][0], t["var"][0]
    a, c, s = -0.3, -1.2, k["dropout_sign"]
    sd_u = np.sqrt(1.0 + c**2 * v)
    kappa = s * (a + c * (m - k["rate_ref"])) / sd_u
    mills = norm.pdf(kappa) / ndtr(kappa)
    want_mean = m + s * c * v / sd_u * mills
    want_var = v - (c * v / sd_u) ** 2 * mills * (mills + kappa)
    ok = s != 0
    got_mean, got_sd = b.mean(axis=0), b.std(axis=0)
    se = np.sqrt(want_var / reps)
    assert np.all(np.abs(got_mean - want_mean)[ok] < 5 * se[ok])
    assert np.allclose(got_sd[ok], np.sqrt(want_var[ok]), rtol=0.03)
    # the selection moved the draws, by more than the Monte Carlo error
    assert ok.all() and np.abs(want_mean - m).max() > 10 * se.max()
    # and it is log P(s | y) the log likelihood gains
    ll = model._select_draws([z.copy() for z in zeta], terms, loadings, q, cond["fixed"],
                             sigma, p, k, rng)
    assert np.allclose(ll[0][ok], log_ndtr(kappa[ok]))


def test_fit_report_and_refit_carry_the_selection_model(trial, tmp_path):
    """A short fit: the selection parameters are sampled, the effects drawn, the report says
    what was assumed, and a refit keeps the option and a changed prior."""
    from slopeshift.sensitivity import refit_model

    m = SlopeShiftModel(trial, dropout="selection",
                        priors={"dropout_slope": {"dist": "Normal", "mu": 0.0, "sigma": 0.5}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(draws=100, tune=150, chains=2, random_seed=1, progressbar=False,
                    check=False)
    assert {"dropout_intercept", "dropout_slope"} <= set(fit.posterior)
    assert np.isfinite(fit.patients(0.25)["mean"].dropna()).all()
    assert np.isfinite(fit.idata["log_likelihood"]["y"].values).all()
    again = refit_model(fit)
    assert again.config["dropout"] == "selection"
    assert again.priors["dropout_slope"].params["sigma"] == 0.5
    text = fit.report(tmp_path).read_text(encoding="utf-8")
    assert "Dropout was modelled as possibly informative" in text
    assert "this fit models that (dropout=&#x27;selection&#x27;)" in text or \
        "this fit models that (dropout='selection')" in text


def test_refit_chooses_again_under_auto_and_keeps_older_configs_as_fitted(trial):
    """A refit of an automatic choice chooses again for the new options (inherited dropout
    priors are kept only where the new model uses them); a config saved before "auto"
    (no key) refits with dropout ignored, as it was fitted."""
    from types import SimpleNamespace

    from slopeshift.sensitivity import refit_model

    auto = SlopeShiftModel(trial)
    fit = SimpleNamespace(config=auto.to_config(), data=trial)
    again = refit_model(fit)
    assert again.config["dropout"] == "selection" and again.config["dropout_auto"]
    latent = refit_model(fit, likelihood="student_t")
    assert latent.config["dropout"] == "ignore"
    assert "dropout_slope" not in latent.priors
    old = {k: v for k, v in SlopeShiftModel(trial, dropout="ignore").to_config().items()
           if k != "dropout"}
    assert refit_model(SimpleNamespace(config=old, data=trial)).config["dropout"] == "ignore"
