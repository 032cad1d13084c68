"""Refits under named alternatives (sensitivity of the headline)."""

from __future__ import annotations

import warnings

import pytest

from slopeshift.sensitivity import ALTERNATIVES, alternative_options, refit_model


def _config(**over):
    cfg = {"parameterization": "ratio", "jump": False, "drift": True,
           "priors": {"rho_cycle": {"dist": "Normal", "mu": 0.0, "sigma": 1.0},
                      "sd_patient": {"dist": "HalfNormal", "sigma": 0.5},
                      "sd_patient_cycle": {"dist": "HalfNormal", "sigma": 0.3}}}
    return cfg | over


def test_alternatives_change_what_they_say():
    cfg = _config()
    assert alternative_options(cfg, "jumps allowed") == {"jump": True}
    # from the defaults, the named sets exactly
    sceptical = alternative_options(cfg, "sceptical prior")["priors"]
    assert {k: v["sigma"] for k, v in sceptical.items()} == pytest.approx(
        {"rho_cycle": 0.5, "sd_patient": 0.3, "sd_patient_cycle": 0.2})
    wide = alternative_options(cfg, "wide priors")["priors"]
    assert wide["rho_cycle"]["sigma"] == pytest.approx(1.5)
    assert wide["sd_patient"]["sigma"] == pytest.approx(1.0)
    assert wide["sd_patient_cycle"]["sigma"] == pytest.approx(0.6)
    # a user's priors are moved by the same factors
    user = _config(priors={"rho_cycle": {"dist": "Normal", "mu": 0.1, "sigma": 0.4},
                           "sd_patient": {"dist": "HalfNormal", "sigma": 0.2},
                           "sd_patient_cycle": {"dist": "HalfNormal", "sigma": 0.6}})
    moved = alternative_options(user, "sceptical prior")["priors"]
    assert moved["rho_cycle"] == {"dist": "Normal", "mu": 0.1, "sigma": pytest.approx(0.2)}
    assert moved["sd_patient"]["sigma"] == pytest.approx(0.12)
    assert moved["sd_patient_cycle"]["sigma"] == pytest.approx(0.4)
    assert alternative_options(cfg, "no natural change") == {
        "drift": False, "enrolment": None, "floors": "include"}
    # the primary config is not modified
    assert cfg["priors"]["rho_cycle"]["sigma"] == 1.0
    with pytest.raises(ValueError, match="unknown alternative"):
        alternative_options(cfg, "optimistic")
    assert alternative_options(cfg, "additive") == {"parameterization": "additive"}
    assert set(ALTERNATIVES) == {"jumps allowed", "sceptical prior", "wide priors",
                                 "no natural change", "additive"}


def test_refit_model_changes_options_and_keeps_the_other_priors(small_fit):
    sceptical = refit_model(small_fit, **alternative_options(small_fit.config,
                                                             "sceptical prior"))
    assert sceptical.priors["rho_cycle"].params == {"mu": 0.0, "sigma": 0.5}
    assert sceptical.priors["sd_patient"].params == {"sigma": pytest.approx(0.3)}
    assert sceptical.priors["mu_beta"].to_dict() == small_fit.config["priors"]["mu_beta"]
    assert sceptical.config["drift"] and sceptical.config["effects"] == "marginal"
    # without drift: no drift priors, and the wide mu_beta/sd_beta of that model
    old = refit_model(small_fit, **alternative_options(small_fit.config, "no natural change"))
    assert not old.config["drift"] and "sd_drift" not in old.priors
    assert old.priors["mu_beta"].params == {"mu": -1.0, "sigma": 1.0}
    assert old.config["floors"] == "include" and old.config["enrolment"] is None
    # additive: its own effect prior replaces rho_cycle's
    add = refit_model(small_fit, **alternative_options(small_fit.config, "additive"))
    assert "delta_cycle" in add.priors and "rho_cycle" not in add.priors


@pytest.mark.slow  # a refit: compiles and samples a second model
def test_sceptical_prior_pulls_the_headline_toward_zero(small_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = small_fit.sensitivity(alternatives=["sceptical prior"])
    assert table["analysis"].tolist() == ["primary", "sceptical prior"]
    assert table.loc[1, "changes"] == ("rho_cycle Normal(mu=0, sigma=0.5), "
                                       "sd_patient HalfNormal(sigma=0.3), "
                                       "sd_patient_cycle HalfNormal(sigma=0.2)")
    primary, sceptical = table["rho_bar_mean"]
    assert primary > 0 and 0 < sceptical < primary
    assert table.loc[0, "shift"] == 0.0
    assert table.loc[1, "shift"] == pytest.approx(sceptical - primary)
    assert table["n_evaluable"].tolist() == [17, 17]


@pytest.mark.slow
def test_refit_keeps_the_data_settings_and_other_priors(small_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = small_fit.refit(jump=True)
    assert other.config["jump"] and other.config["effects"] == "marginal"
    assert other.fit_info["draws"] == small_fit.fit_info["draws"]
    assert other.fit_info["random_seed"] == small_fit.fit_info["random_seed"]
    assert other.config["priors"]["mu_beta"] == small_fit.config["priors"]["mu_beta"]
    assert "jump_patient" in other.posterior


def _table():
    import pandas as pd

    return pd.DataFrame({
        "analysis": ["primary", "jumps allowed"], "changes": ["as fitted", "jump=True"],
        "rho_bar_mean": [0.267, 0.308], "rho_bar_ci_2.5": [0.021, 0.039],
        "rho_bar_ci_97.5": [0.48, 0.532], "shift": [0.0, 0.041], "p_gt_0": [0.984, 0.986],
        "p_gt_0.25": [0.58, 0.701], "responders_median": [10, 11], "n_evaluable": [17, 17],
        "max_r_hat": [1.006, 1.004], "healthy": [True, False]})


def test_sensitivity_prints_in_percent():
    from slopeshift.sensitivity import format_sensitivity

    out = format_sensitivity(_table(), 0.25)
    assert out.loc[1, "Population slowing, % (95% CrI)"] == "30.8 (3.9 to 53.2)"
    assert out.loc[1, "Shift, percentage points"] == "+4.1"
    assert out.loc[1, "P(slowing > 25%)"] == "0.70"
    assert out["Responders"].tolist() == ["10/17", "11/17"]
    assert out["Sampling"].tolist() == ["healthy", "check"]


def test_report_shows_a_given_sensitivity_table(small_fit, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from slopeshift.report import write_report

    path = write_report(small_fit, tmp_path, sensitivity=_table())
    html = path.read_text()
    assert "10. Sensitivity of the headline" in html and "jumps allowed" in html
    assert (tmp_path / "sensitivity_formatted.csv").is_file()
    assert "Power-scaling of the priors" in html
    assert (tmp_path / "power_scaling_formatted.csv").is_file()
    # without it, no refit table: the section says how to add one, and keeps power-scaling
    plain = write_report(small_fit, tmp_path / "plain").read_text()
    assert "<h3>Refits under other analyses</h3>" not in plain and "sensitivity=True" in plain
    assert "Power-scaling of the priors" in plain
    # a comparison table given is shown in its own section
    assert "Model comparison" not in plain


@pytest.mark.parametrize("prior", [
    {"dist": "Normal", "mu": 0.3, "sigma": 0.5}, {"dist": "HalfNormal", "sigma": 0.7},
    {"dist": "StudentT", "nu": 4, "mu": -1, "sigma": 2},
    {"dist": "HalfStudentT", "nu": 3, "sigma": 1.5},
    {"dist": "LogNormal", "mu": -0.69, "sigma": 0.25}, {"dist": "Gamma", "alpha": 2, "beta": 0.1},
    {"dist": "Exponential", "lam": 2.0}])
def test_prior_log_density_is_pymcs(prior):
    """log_prior's densities (SciPy, no compile per call) equal PyMC's, support included."""
    import numpy as np
    import pymc as pm

    from slopeshift.priors import Prior

    p = Prior.from_value(prior)
    x = np.array([-1.5, -0.1, 0.0, 0.02, 0.7, 3.0, 40.0])
    ours, theirs = p.log_density(x), np.asarray(pm.logp(p.as_dist(), x).eval())
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-7, atol=1e-7)
