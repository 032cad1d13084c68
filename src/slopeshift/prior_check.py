"""Prior predictive check: what the priors say about slowing and slopes before any score.

The model's cycle means have a prior written as a potential on a flat coordinate (so that the
sampler can work at each cycle's own mean interval), which PyMC cannot sample forward. This
module draws the model's generative path directly: population parameters from their priors,
then each patient's persistent rate, drift and slowing on the trial's own design (its
patients, cycles, intervals and months), and summarises what that implies for the quantities a
paper cites. It samples no posterior and takes a few seconds (PyMC's forward draws).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pymc as pm

from slopeshift.design import evaluable_cells

if TYPE_CHECKING:
    from slopeshift.data import TrialData
    from slopeshift.model import SlopeShiftModel

__all__ = ["prior_predictive", "prior_predictive_draws", "prior_trial"]


def prior_predictive_draws(model: SlopeShiftModel, draws: int = 4000,
                           random_seed: int = 0) -> dict[str, np.ndarray]:
    """Draws of the model's quantities from the priors alone, on the trial's design.

    Parameters
    ----------
    model : SlopeShiftModel
        The model (its priors, options and design); nothing is sampled from the data.
    draws : int, default 4000
        Prior draws.
    random_seed : int, default 0
        Seed; the same seed gives the same draws.

    Returns
    -------
    dict of str to ndarray
        ``rho_cycle`` (draw, cycle) and, on the cells that count for slowing (treated arm,
        observed), ``rho`` (draw, cell) and ``slope`` (draw, cell, points/month), with the
        natural rate ``natural`` (draw, cell); ``beta_pre`` (draw, patient), ``rho_bar``
        (draw), ``theta`` (draw).
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, not {draws}.")
    cfg = model.config
    pr = model.priors
    k = model._constants()
    d = model.design
    ratio = cfg["parameterization"] == "ratio"
    seeds = np.random.SeedSequence(random_seed).spawn(16)
    it = iter(seeds)

    def draw(name: str, shape: tuple[int, ...] = ()) -> np.ndarray:
        out = pm.draw(pr[name].as_dist(), draws=draws * int(np.prod(shape, dtype=int)),
                      random_seed=np.random.default_rng(next(it)))
        return np.asarray(out, dtype=float).reshape((draws, *shape))

    rng = np.random.default_rng(next(it))
    n_p, n_k = k["has"].shape
    key = "rho_cycle" if ratio else "delta_cycle"
    eff_k = draw(key, (n_k,))
    theta = draw("theta").reshape(draws)
    sd_p = draw("sd_patient").reshape(draws)
    sd_c = draw("sd_patient_cycle").reshape(draws)
    # the model's slowing options: one mean for every cycle, or no treatment effect at all
    slowing = cfg.get("slowing", "per_cycle")
    if slowing == "common":
        eff_k = np.repeat(eff_k[:, :1], n_k, axis=1)
    if slowing == "none":
        eff_k, sd_p, sd_c = np.zeros_like(eff_k), np.zeros_like(sd_p), np.zeros_like(sd_c)
    if slowing == "none" or not cfg.get("interval_effect", True):
        theta = np.zeros_like(theta)
    mu_beta = draw("mu_beta").reshape(draws)
    sd_beta = draw("sd_beta").reshape(draws)
    beta = mu_beta[:, None] + sd_beta[:, None] * rng.standard_normal((draws, n_p))
    natural = np.repeat(beta[:, :, None], n_k, axis=2)
    drift = np.zeros((draws, n_p, n_k))
    if cfg["drift"]:
        accel = draw("acceleration").reshape(draws)
        shift = draw("natural_cycle" if k["controls"] else "natural_shift", (n_k,))
        sd_d = draw("sd_drift").reshape(draws)
        natural = natural + accel[:, None, None] * k["natural_time"] + shift[:, None, :]
        if k["comparison"]:
            ratio_k = draw("natural_ratio", (n_k,))
            natural = natural + ratio_k[:, None, :] * (beta[:, :, None] - k["rate_ref"])
        drift = sd_d[:, None, None] * rng.standard_normal((draws, n_p, n_k))
    natural_free = natural
    natural = natural * k["floor_factor"]
    u = sd_p[:, None] * rng.standard_normal((draws, n_p))
    e = sd_c[:, None, None] * rng.standard_normal((draws, n_p, n_k))
    # m_ik = rho_k + theta (g_ik - g_ref), as in the model (g_dev is 0 where g is unknown)
    m = eff_k[:, None, :] + theta[:, None, None] * (k["g_dev"] + k["g_mean"])
    n_cov = d.sizes["covariate"]
    if n_cov and slowing != "none":
        m = m + (draw("gamma", (n_cov,)) @ k["x_std"].T)[:, :, None]
    eff = m + u[:, :, None] + e
    if ratio:
        rho = eff
        slope = natural * (1.0 - rho) + drift
    else:
        # the floor factor scales the slowing as it scales the natural rate (as in the model)
        slope = natural + eff * k["floor_factor"] + drift
        rho = eff / np.abs(natural_free)
    cells = evaluable_cells(d, flat_runin=True).values & k["has"]
    if not cells.any():
        cells = k["has"] & (k["effect"] > 0)
    rho_k = eff_k if ratio else eff_k / model._effect_scale(natural_free, mu_beta,
                                                              np.abs)[:, None]
    return {
        "rho_cycle": rho_k,
        "rho_bar": rho_k @ k["weights"],
        "theta": theta,
        "beta_pre": beta,
        "rho": rho[:, cells],
        "slope": slope[:, cells],
        "natural": natural[:, cells],
        # every patient x cycle, and the population draws (for simulating scores)
        "rho_all": np.where(k["has"] & (k["effect"] > 0), rho, np.nan),
        "slope_all": slope,
        "mu_beta": mu_beta,
        "sd_patient": sd_p,
        "sd_drift": sd_d if cfg["drift"] else np.zeros(draws),
    }


def prior_trial(model: SlopeShiftModel, random_seed: int) -> tuple[TrialData, dict]:
    """A trial simulated from the model's priors, on ``model``'s visits and injections.

    One draw of every parameter from its prior (:func:`prior_predictive_draws`), then each
    patient's intercept, run-in drift and scores from the model's own formulas (Normal noise;
    scores neither rounded nor clipped): the generative model that simulation-based
    calibration needs (:func:`slopeshift.study.calibrate`). Lasting-floor deviations and
    jumps are not simulated: use it with ``floors="include"`` and ``jump=False``.

    Parameters
    ----------
    model : SlopeShiftModel
        The template: its design (visit times, injections, arms) and priors.
    random_seed : int

    Returns
    -------
    (TrialData, dict)
        The trial (the template's tables with new scores) and the truth: ``rho_bar``,
        ``theta``, ``mu_beta``, ``sd_patient`` (floats), ``rho_cycle`` (cycle,) and ``rho``
        (patient, cycle; NaN where no cell with an effect).
    """
    import dataclasses

    dr = prior_predictive_draws(model, draws=1, random_seed=random_seed)
    k = model._constants()
    pr = model.priors
    rng = np.random.default_rng([random_seed, 1])

    def one(name: str) -> float:
        return float(pm.draw(pr[name].as_dist(), random_seed=rng))

    n_p = k["has"].shape[0]
    alpha = one("mu_alpha") + one("sd_alpha") * rng.standard_normal(n_p)
    sigma = one("sigma")
    pre = dr["beta_pre"][0] + dr["sd_drift"][0] * rng.standard_normal(n_p)
    p_idx = k["p_idx"]
    y = (alpha[p_idx] + pre[p_idx] * k["x_pre"]
         + (dr["slope_all"][0][p_idx] * k["x_cycle"]).sum(axis=1)
         + sigma * rng.standard_normal(len(p_idx)))
    visits = model.data.visits.copy()
    visits.loc[model.design["visit"].values, "value"] = y
    data = dataclasses.replace(model.data, visits=visits)
    truth = {"rho_bar": float(dr["rho_bar"][0]), "theta": float(dr["theta"][0]),
             "mu_beta": float(dr["mu_beta"][0]), "sd_patient": float(dr["sd_patient"][0]),
             "rho_cycle": dr["rho_cycle"][0], "rho": dr["rho_all"][0]}
    return data, truth


def prior_predictive(model: SlopeShiftModel, draws: int = 4000, random_seed: int = 0,
                     threshold: float = 0.25) -> pd.DataFrame:
    """What the priors imply, before the scores: ranges and tail probabilities.

    Parameters
    ----------
    model : SlopeShiftModel
        The model (priors, options and the trial's design).
    draws : int, default 4000
        Prior draws.
    random_seed : int, default 0
        Seed.
    threshold : float, default 0.25
        Slowing threshold (fraction of the pre-treatment rate) for ``p_gt_threshold``.

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``rho_cycle`` (a cycle's population slowing at the reference
        interval), ``rho_bar`` (over all cycles), ``rho_ik`` (a patient's slowing in a cycle),
        ``theta`` (per month), ``beta_pre`` (a persistent natural rate, points/month) and
        ``slope_ik`` (a treated cycle's slope, points/month). Columns ``q05``, ``median``,
        ``q95``, ``p_gt_0``, ``p_gt_threshold`` (P(> threshold); for slopes and rates
        P(> 0): a rise) and ``p_gt_1`` (slowing above 100%: improvement).
    """
    dr = prior_predictive_draws(model, draws, random_seed)
    rows = []
    for name, values in (("rho_cycle", dr["rho_cycle"]), ("rho_bar", dr["rho_bar"]),
                         ("rho_ik", dr["rho"]), ("theta", dr["theta"]),
                         ("beta_pre", dr["beta_pre"]), ("slope_ik", dr["slope"])):
        v = np.asarray(values, dtype=float).ravel()
        v = v[np.isfinite(v)]
        slowing = name.startswith("rho")
        rows.append({
            "quantity": name,
            "q05": float(np.quantile(v, 0.05)),
            "median": float(np.median(v)),
            "q95": float(np.quantile(v, 0.95)),
            "p_gt_0": float(np.mean(v > 0)),
            "p_gt_threshold": float(np.mean(v > threshold)) if slowing else np.nan,
            "p_gt_1": float(np.mean(v > 1)) if slowing else np.nan,
        })
    out = pd.DataFrame(rows)
    out.attrs["note"] = (
        "Prior predictive: population parameters drawn from their priors, then each "
        "patient's persistent rate, drift and slowing on this trial's design. rho: fractions "
        "of the pre-treatment rate; theta per month; beta_pre and slope_ik in outcome "
        "units/month (negative = decline), their p_gt_0 the probability of a rise.")
    return out
