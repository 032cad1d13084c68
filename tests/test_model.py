"""Model building and wiring: no sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from coordinates import set_rates
from scipy import stats

from slopeshift import Prior, SlopeShiftModel, TrialData, default_priors, effect_priors


def _tiny_data() -> TrialData:
    visits = pd.DataFrame({
        "patient": ["A"] * 7 + ["B"] * 4 + ["C"] * 3,
        "time": [-4, -2, 0, 2, 3, 5, 8, -3, 0, 2, 4, -2, -1, 0],
        "alsfrs_r": [40, 38, 36, 35, 34, 33, 31, 30, 27, 26, 25, 20, 19, 18],
    })
    injections = pd.DataFrame({"patient": ["A", "A", "B"], "time": [0, 3, 0]})
    return TrialData.from_frames(visits, injections)


def _expected_mean(data, alpha, beta0, rho):
    """Broken-stick mean computed straight from the tables (independent of design.py)."""
    mu = []
    for pid, t in zip(data.visits["patient"], data.visits["month"], strict=True):
        i = data.patient_ids.index(pid)
        taus = data.injections.loc[data.injections["patient"] == pid, "month"].to_numpy()
        last = data.visits.loc[data.visits["patient"] == pid, "month"].max()
        m = alpha[i] + beta0[i] * min(t, 0.0)
        for k, tau in enumerate(taus):
            end = taus[k + 1] if k + 1 < len(taus) else last
            m += beta0[i] * (1 - rho[k]) * np.clip(t - tau, 0.0, end - tau)
        mu.append(m)
    return np.array(mu)


def test_coords_are_patient_ids_and_cycles():
    model = SlopeShiftModel(_tiny_data(), effects="latent")
    pm_model = model.pymc_model
    assert list(pm_model.coords["patient"]) == ["A", "B", "C"]
    assert list(pm_model.coords["cycle"]) == [1, 2]
    assert pm_model.named_vars_to_dims["rho"] == ("patient", "cycle")
    names = {rv.name for rv in pm_model.free_RVs}
    assert {"alpha", "beta_pre_pc", "theta", "sigma", "z_patient", "z_patient_cycle"} <= names
    assert "beta_pre" in {v.name for v in pm_model.deterministics}


def test_effects_are_integrated_out_by_default_when_exact():
    data = _tiny_data()
    model = SlopeShiftModel(data)
    assert model.config["effects"] == "marginal"
    names = {rv.name for rv in model.pymc_model.free_RVs}
    assert "z_patient" not in names and "z_patient_cycle" not in names
    assert SlopeShiftModel(data, likelihood="student_t").config["effects"] == "latent"
    assert SlopeShiftModel(data, censored=True).config["effects"] == "latent"
    # jumps are linear-Gaussian too: integrated out, drawn afterwards
    jump = SlopeShiftModel(data, jump=True)
    assert jump.config["effects"] == "marginal"
    assert "z_jump" not in {rv.name for rv in jump.pymc_model.free_RVs}
    with pytest.raises(ValueError, match="effects='marginal' needs the Normal likelihood"):
        SlopeShiftModel(data, censored=True, effects="marginal")


@pytest.mark.parametrize("likelihood", ["normal", "student_t"])
def _partly_centred(model, point, beta):
    """beta_pre_pc (the sampled coordinate) of persistent rates beta, at point's mu and sd."""
    return model._partly_centred(beta, float(point["mu_beta"]),
                                 float(np.exp(point["sd_beta_log__"])))


def _rates(model, point):
    """beta_pre (points/month) at point."""
    pmm = model.pymc_model
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["beta_pre"]])[0],
                        inputs=pmm.value_vars, on_unused_input="ignore")
    return fn(point)


@pytest.mark.parametrize("likelihood", ["normal", "student_t"])
def test_likelihood_matches_hand_computed_broken_stick(likelihood):
    data = _tiny_data()
    model = SlopeShiftModel(data, likelihood=likelihood, effects="latent")
    pm_model = model.pymc_model
    point = pm_model.initial_point()
    alpha = np.array([36.0, 27.0, 18.0])
    beta0 = np.array([-1.0, -1.5, -1.0])
    rho = np.array([0.5, 0.2])
    point.update({
        "alpha": alpha, "beta_pre_pc": _partly_centred(model, point, beta0),
        "theta": np.array(0.0),
        "rho_cycle_at_mean_interval": rho, "z_patient": np.zeros(3),
        "z_patient_cycle": np.zeros((3, 2)), "sigma_log__": np.log(2.0),
    })
    point["acceleration"] = np.array(0.0)  # no natural change: the plain broken stick
    if likelihood == "student_t":
        point["nu_log__"] = np.log(5.0)
    logp = pm_model.compile_logp(vars=pm_model.observed_RVs)(point)
    mu = _expected_mean(data, alpha, beta0, rho)
    y = data.visits["value"].to_numpy()
    if likelihood == "normal":
        expected = stats.norm.logpdf(y, mu, 2.0).sum()
    else:
        expected = stats.t.logpdf(y, 5.0, mu, 2.0).sum()
    assert logp == pytest.approx(expected, rel=1e-9)


def test_slowing_hierarchy_with_interval_covariate():
    data = _tiny_data()
    model = SlopeShiftModel(data, interval_ref=3.0, effects="latent")
    pm_model = model.pymc_model
    point = pm_model.initial_point()
    rho_at_mean = np.array([0.4, 0.1])
    point["acceleration"] = np.array(0.0)  # no shear of the sampled cycle means
    point.update({"theta": np.array(-0.1), "rho_cycle_at_mean_interval": rho_at_mean,
                  "z_patient": np.zeros(3), "z_patient_cycle": np.zeros((3, 2))})
    outs = pm_model.replace_rvs_by_values([pm_model["rho"], pm_model["rho_cycle"]])
    fn = pm_model.compile_fn(outs, inputs=pm_model.value_vars, on_unused_input="ignore")
    rho, rho_cycle = fn(point)
    g = model.design["interval"].values
    # A: 3 months to its second injection, then an open cycle; B: one open cycle. Open
    # cycles have no interval: they sit at their cycle's mean and do not inform theta.
    np.testing.assert_array_equal(np.isnan(g[:2]), [[False, True], [True, True]])
    # rho_k at g_ref = 3: the sampled value at the cycle's mean interval minus theta * offset
    g_mean = np.array([3.0 - 3.0, 0.0])
    np.testing.assert_allclose(rho_cycle, rho_at_mean + 0.1 * g_mean)
    np.testing.assert_allclose(rho[0], [rho_cycle[0] - 0.1 * (3.0 - 3.0), rho_at_mean[1]])
    np.testing.assert_allclose(rho[1, 0], rho_at_mean[0])
    assert np.isnan(rho[1, 1]) and np.isnan(rho[2]).all()
    # with the protocol's planned interval the open cycles get one (5 months here)
    planned = SlopeShiftModel(data, planned_interval=5.0).design["interval"].values
    np.testing.assert_array_equal(planned[:2], [[3.0, 5.0], [5.0, np.nan]])


def test_additive_jump_censored_and_covariates_build():
    visits = pd.DataFrame({
        "patient": ["A"] * 5 + ["B"] * 5 + ["C"] * 5,
        "time": [-2, -1, 0, 2, 4] * 3,
        "alsfrs_r": [10, 8, 5, 2, 0, 30, 29, 28, 28, 27, 40, 39, 38, 36, 35],
    })
    injections = pd.DataFrame({"patient": ["A", "B", "C"], "time": [0, 0, 0]})
    patients = pd.DataFrame({"patient": ["A", "B", "C"], "age": [40, 50, 61]})
    data = TrialData.from_frames(visits, injections, patients)
    model = SlopeShiftModel(data, parameterization="additive", jump=True, censored=True,
                            covariates=["age"])
    pm_model = model.pymc_model
    names = {v.name for v in pm_model.free_RVs}
    assert {"delta_cycle_at_mean_interval", "jump", "sd_jump", "z_jump", "gamma"} <= names
    assert np.isfinite(pm_model.compile_logp()(pm_model.initial_point()))
    # a score at the floor (0) is censored: its logp is a log-probability, never above 0
    assert model.config["censored"] is True


def test_priors_merge_and_validation():
    data = _tiny_data()
    user = {"mu_beta": Prior("Normal", mu=-0.5, sigma=0.5)}
    model = SlopeShiftModel(data, priors=user)
    assert model.priors["mu_beta"].params == {"mu": -0.5, "sigma": 0.5}
    assert model.priors["sigma"] == default_priors("alsfrs_r")["sigma"]
    assert user == {"mu_beta": Prior("Normal", mu=-0.5, sigma=0.5)}  # not mutated
    model = SlopeShiftModel(data, priors={"theta": {"dist": "Normal", "mu": 0, "sigma": 0.05}})
    assert model.priors["theta"].params["sigma"] == 0.05
    with pytest.raises(ValueError, match=r"unknown prior name\(s\) \['rho'\].*valid names"):
        SlopeShiftModel(data, priors={"rho": Prior("Normal", mu=0, sigma=1)})
    with pytest.raises(ValueError, match="HalfNormal prior takes parameters"):
        Prior("HalfNormal", mu=1.0)
    with pytest.raises(ValueError, match="unknown prior distribution"):
        Prior("Cauchy", alpha=0, beta=1)


def test_generic_outcome_needs_scale_priors():
    visits = pd.DataFrame({"patient": ["A"] * 4, "time": [-2, -1, 0, 2],
                           "grip": [10.0, 9.5, 9.0, 8.8]})
    injections = pd.DataFrame({"patient": ["A"], "time": [0]})
    data = TrialData.from_frames(visits, injections, outcome="grip")
    with pytest.raises(ValueError, match=r"no default priors for \['mu_alpha'"):
        SlopeShiftModel(data)
    priors = {k: Prior("Normal", mu=0.0, sigma=1.0) for k in ("mu_alpha", "mu_beta", "jump")}
    priors |= {k: Prior("HalfNormal", sigma=1.0) for k in ("sd_alpha", "sd_beta", "sigma",
                                                           "sd_jump")}
    # natural drift needs the outcome's scale too, unless it is switched off
    assert SlopeShiftModel(data, priors=priors, drift=False).pymc_model is not None
    with pytest.raises(ValueError, match=r"no default priors for \['sd_drift'"):
        SlopeShiftModel(data, priors=priors)
    priors |= {"sd_drift": Prior("HalfNormal", sigma=0.5),
               "acceleration": Prior("Normal", mu=0.0, sigma=0.01),
               "natural_cycle": Prior("Normal", mu=0.0, sigma=0.5)}
    with pytest.raises(ValueError, match=r"no default priors for \['natural_shift'"):
        SlopeShiftModel(data, priors=priors)
    priors["natural_shift"] = Prior("Normal", mu=0.0, sigma=0.1)
    assert SlopeShiftModel(data, priors=priors).pymc_model is not None


def test_fvc_defaults():
    pri = default_priors("fvc", natural=False)
    assert pri["mu_beta"].params == {"mu": -2.5, "sigma": 2.0}
    # with natural drift (the default), the screened population comes from natural history
    assert default_priors("fvc")["mu_beta"].params == {"mu": -1.6, "sigma": 0.8}
    assert default_priors("alsfrs_r")["sd_beta"].dist == "LogNormal"
    assert pri["sigma"].params == {"sigma": 8.0}


def test_slowing_priors_are_weakly_informative_with_named_alternatives():
    # MODEL.md section 5: the sceptical set is a named alternative, not the silent default
    pri = default_priors("alsfrs_r")
    assert {k: pri[k] for k in ("rho_cycle", "sd_patient", "sd_patient_cycle")} == \
        effect_priors("default")
    assert pri["rho_cycle"].params == {"mu": 0.0, "sigma": 1.0}
    sceptical = effect_priors("sceptical")
    assert sceptical["rho_cycle"].params["sigma"] == 0.5
    assert sceptical["sd_patient"].params["sigma"] == 0.3
    assert sceptical["sd_patient_cycle"].params["sigma"] == 0.2
    # additive: the same sets in the outcome's units (FVC: 2.5 %/month)
    add = effect_priors("wide", "fvc", "additive")
    assert add["delta_cycle"].params["sigma"] == pytest.approx(3.75)
    assert default_priors("fvc", "additive")["sd_patient"].params["sigma"] == 1.25
    with pytest.raises(ValueError, match="unknown set"):
        effect_priors("optimistic")
    with pytest.raises(ValueError, match="typical slope"):
        effect_priors("default", "grip_strength", "additive")
    # recognised again (the methods paragraph names the set), up to rounding
    from slopeshift.priors import effect_prior_set
    assert effect_prior_set(pri) == "default"
    assert effect_prior_set({k: v.to_dict() for k, v in add.items()}, "fvc", "additive") == "wide"
    scaled = sceptical | {"sd_patient_cycle": Prior("HalfNormal", sigma=0.3 * (0.2 / 0.3))}
    assert effect_prior_set(scaled) == "sceptical"
    assert effect_prior_set(sceptical | {"sd_patient": Prior("HalfNormal", sigma=0.4)}) is None
    assert effect_prior_set(pri, "grip_strength", "additive") is None
    # usable as they are
    model = SlopeShiftModel(_tiny_data(), priors=sceptical)
    assert model.priors["sd_patient_cycle"] == sceptical["sd_patient_cycle"]


def test_bad_options_are_rejected():
    data = _tiny_data()
    with pytest.raises(ValueError, match="parameterization"):
        SlopeShiftModel(data, parameterization="log")
    with pytest.raises(ValueError, match="likelihood"):
        SlopeShiftModel(data, likelihood="cauchy")
    with pytest.raises(ValueError, match="interval"):
        SlopeShiftModel(data, interval="dose")
    with pytest.raises(TypeError, match="TrialData"):
        SlopeShiftModel(pd.DataFrame())


def test_initial_values_start_at_runin_least_squares():
    model = SlopeShiftModel(_tiny_data())
    init = model.initial_values()
    slope_a = np.polyfit([-4, -2, 0], [40, 38, 36], 1)[0]
    assert init["beta_pre"][0] == pytest.approx(slope_a)
    assert init["alpha"][0] == pytest.approx(36.0)


def test_effect_sd_prior_has_the_right_jacobian():
    """Sampling (log T, logit f) must leave the priors on sd_patient and sd_patient_cycle."""
    model = SlopeShiftModel(_tiny_data())
    pm_model = model.pymc_model
    pot = next(v for v in pm_model.potentials if v.name == "effect_sd_prior")
    outs = pm_model.replace_rvs_by_values([pot, pm_model["sd_patient"],
                                           pm_model["sd_patient_cycle"]])
    fn = pm_model.compile_fn(outs, inputs=pm_model.value_vars, on_unused_input="ignore")
    point = pm_model.initial_point()

    def sds(a, x):
        point.update(log_sd_effects=np.asarray(a), logit_patient_share=np.asarray(x))
        _, sp, sc = fn(point)
        return np.array([sp, sc])

    a, x, h = np.log(0.3), 0.4, 1e-6
    jac = np.column_stack([(sds(a + h, x) - sds(a - h, x)) / (2 * h),
                           (sds(a, x + h) - sds(a, x - h)) / (2 * h)])
    sp, sc = sds(a, x)
    point.update(log_sd_effects=np.asarray(a), logit_patient_share=np.asarray(x))
    scales = [model.priors[k].params["sigma"] for k in ("sd_patient", "sd_patient_cycle")]
    expected = (stats.halfnorm.logpdf(sp, scale=scales[0])
                + stats.halfnorm.logpdf(sc, scale=scales[1])
                + np.log(abs(np.linalg.det(jac))))
    assert float(fn(point)[0]) == pytest.approx(expected, rel=1e-6)


def test_ratio_starts_never_on_the_wrong_side_of_zero():
    visits = pd.DataFrame({
        "patient": ["A"] * 5 + ["B"] * 5 + ["C"] * 5,
        "time": [-3, -2, -1, 0, 2] * 3,
        "alsfrs_r": [40, 39, 38, 37, 36, 30, 28, 26, 24, 23, 20, 21, 20, 21, 19],  # C rises
    })
    injections = pd.DataFrame({"patient": ["A", "B", "C"], "time": [0, 0, 0]})
    data = TrialData.from_frames(visits, injections)
    ratio = SlopeShiftModel(data).initial_values()["beta_pre"]
    assert ratio[2] < 0 and ratio[2] == pytest.approx(-0.5 * 1.0)  # half the median slope
    assert ratio[1] == pytest.approx(-2.0)
    additive = SlopeShiftModel(data, parameterization="additive").initial_values()["beta_pre"]
    assert additive[2] == pytest.approx(np.polyfit([-3, -2, -1, 0], [20, 21, 20, 21], 1)[0])


def test_additive_slowing_scale_is_the_treated_patients_natural_rate(example_data):
    """Additive delta_k becomes a fraction of the treated patients' mean natural rate, not of
    the screened population's mu_beta (enrolment on fast decline makes those differ)."""
    model = SlopeShiftModel(example_data, parameterization="additive", drift=False)
    pmm = model.pymc_model
    point = pmm.initial_point()
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["effect_scale"]])[0],
                        inputs=pmm.value_vars, on_unused_input="ignore")
    k = model._constants()
    beta = _rates(model, point)
    natural = beta[:, None] * k["floor_factor"]
    want = abs((natural * k["effect"]).sum() / k["effect"].sum())
    assert float(fn(point)) == pytest.approx(want, rel=1e-10)
    # the patients' rates, not mu_beta: move them and the scale follows
    set_rates(model, point, np.linspace(-2.5, -0.5, len(beta)))
    natural = np.linspace(-2.5, -0.5, len(beta))[:, None] * k["floor_factor"]
    want = abs((natural * k["effect"]).sum() / k["effect"].sum())
    assert float(fn(point)) == pytest.approx(want, rel=1e-10)
    assert want != pytest.approx(abs(float(point["mu_beta"])), rel=0.01)


def _one_visit_trial() -> tuple[TrialData, str]:
    """A simulated trial of 12 in which the one untreated patient keeps a single visit."""
    import warnings

    from slopeshift import simulate_trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate_trial(12, n_untreated=1, random_seed=3)
    v = data.visits
    untreated = data.patients.index[~data.patients["treated"]][0]
    first = v[v["patient"] == untreated].index[0]
    keep = v[(v["patient"] != untreated) | (v.index == first)]
    one_visit = TrialData.from_frames(
        keep[["patient", "time", "value"]].rename(columns={"value": "alsfrs_r"}),
        data.injections[["patient", "time", "cycle"]])
    return one_visit, untreated


def test_no_parameter_starts_with_a_zero_gradient():
    """A patient whose scores say nothing about the slope (an untreated patient with one
    visit) must not start at the population's own start: nutpie rejects a zero gradient
    ("All initialization points failed")."""
    one_visit, _ = _one_visit_trial()
    model = SlopeShiftModel(one_visit)
    pm_model = model.pymc_model
    start = model._sampler_starts(model.initial_values())
    point = pm_model.initial_point() | start
    point["sd_beta_log__"] = np.log(point.pop("sd_beta"))
    grad = pm_model.compile_dlogp()(point)
    assert np.isfinite(grad).all()
    # the patients' parameters start unjittered (the others are jittered by the sampler)
    offset = 0
    for var in pm_model.value_vars:
        size = point[var.name].size
        if var.name in ("alpha", "beta_pre_pc", "beta_pre_z"):
            assert (grad[offset:offset + size] != 0).all(), var.name
        offset += size


def test_partly_centred_rates_have_the_population_prior(example_data):
    """beta_i0 is sampled as beta_pre_pc ~ N(lam_i mu, sd^lam_i) and rebuilt as
    mu + sd^(1 - lam_i) (beta_pre_pc - lam_i mu): whatever lam_i, beta_i0 ~ N(mu, sd)."""
    import pymc as pm

    model = SlopeShiftModel(example_data, effects="latent")  # (the marginal model: below)
    lam = model._constants()["beta_centring"]
    assert ((lam > 0) & (lam < 1)).all() and lam.max() - lam.min() > 0.05
    pmm = model.pymc_model
    mu, sd, beta = pm.draw([pmm["mu_beta"], pmm["sd_beta"], pmm["beta_pre"]], draws=4000,
                           random_seed=1)
    z = (beta - mu[:, None]) / sd[:, None]
    for i in (int(lam.argmin()), int(lam.argmax())):
        assert abs(z[:, i].mean()) < 0.05 and abs(z[:, i].std() - 1.0) < 0.04
    assert stats.kstest(z.ravel(), "norm").pvalue > 0.001


def test_centring_follows_what_a_patients_scores_say_about_the_rate():
    """lam_i -> 0 (non-centred) for a patient whose visits cannot pin the rate down, and grows
    with the visits."""
    one_visit, untreated = _one_visit_trial()
    model = SlopeShiftModel(one_visit)
    lam = model._constants()["beta_centring"]
    pats = list(model.design["patient"].values)
    assert lam[pats.index(untreated)] == 0.0
    assert (np.delete(lam, pats.index(untreated)) > 0.3).all()


def test_sampler_starts_are_the_run_in_fits(example_data):
    """The starts in the sampler's coordinates rebuild exactly the least-squares run-in rates
    (partly centred rates; the marginal model: below)."""
    model = SlopeShiftModel(example_data, effects="latent")
    pmm = model.pymc_model
    init = model.initial_values()
    point = pmm.initial_point() | model._sampler_starts(init)
    point["sd_beta_log__"] = np.log(point.pop("sd_beta"))
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["beta_pre"]])[0],
                        inputs=pmm.value_vars, on_unused_input="ignore")
    np.testing.assert_allclose(fn(point), init["beta_pre"], rtol=1e-12)


def test_marginal_starts_sit_near_the_conditional_mean(example_data):
    """The marginal model starts each rate a tenth of its conditional SD off its approximate
    conditional posterior mean (beta_pre_z = -0.1), on the population's side of zero, where
    the run-in and the cycles' slopes put it."""
    model = SlopeShiftModel(example_data)
    pmm = model.pymc_model
    init = model.initial_values()
    point = pmm.initial_point() | model._sampler_starts(init)
    point["sd_beta_log__"] = np.log(point.pop("sd_beta"))
    assert (point["beta_pre_z"] == -0.1).all()
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["beta_pre"]])[0],
                        inputs=pmm.value_vars, on_unused_input="ignore")
    start = fn(point)
    assert (start < 0).all()
    assert np.corrcoef(start, init["beta_pre"])[0, 1] > 0.8


@pytest.mark.parametrize("prior, median", [
    (Prior("LogNormal", mu=np.log(0.45), sigma=0.35), 0.45),
    (Prior("HalfNormal", sigma=2.0), stats.halfnorm(scale=2.0).median()),
    (Prior("HalfStudentT", nu=3.0, sigma=2.0), 2.0 * stats.t(3.0).ppf(0.75)),
    (Prior("Exponential", lam=2.0), stats.expon(scale=0.5).median()),
    (Prior("Gamma", alpha=2.0, beta=4.0), stats.gamma(2.0, scale=0.25).median()),
])
def test_prior_median_of_scale_priors(prior, median):
    """The scale at which lambda_i is computed is the prior's median."""
    from slopeshift.model import _prior_median

    assert _prior_median(prior) == pytest.approx(median, rel=1e-3)
