"""Posterior predictions: mean trajectories and replicated scores, pure functions of a fit.

Every function takes a fit's ``xarray.DataTree`` (``FitResult.idata``; groups ``posterior``
and ``design``) and returns labelled xarray or pandas objects. The mean score of patient i at
month t (months since the patient's first injection; for an untreated patient, since the last
visit) is the model's piecewise-linear mean::

    mu_i(t) = alpha_i + beta_i0 * min(t, 0) + sum_k beta_ik * clip(t - tau_ik, 0, L_ik)
              [+ sum_k J_ik * 1(t >= tau_ik)   when the model has acute jumps]

in outcome units (ALSFRS-R points). Beyond the patient's last visit the last cycle is open-ended
(its slope continues), which leaves the mean at every observed month unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "BAND_PROBS",
    "predictive_scores",
    "trajectory_bands",
    "trajectory_draws",
    "visit_mean_draws",
]

SAMPLE = ("chain", "draw")
#: Quantiles of the trajectory bands: the 95% and 50% equal-tailed intervals.
BAND_PROBS = (0.025, 0.25, 0.75, 0.975)
_N_GRID = 100


def _posterior(idata: xr.DataTree) -> xr.Dataset:
    return idata["posterior"].to_dataset()


def _design(idata: xr.DataTree) -> xr.Dataset:
    return idata["design"].to_dataset()


def _patient_label(design: xr.Dataset, patient: str) -> str:
    ids = [str(p) for p in design["patient"].values]
    if str(patient) not in ids:
        shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
        raise ValueError(f"unknown patient {patient!r}; the fit has patients {shown}.")
    return str(patient)


def _month_grid(design: xr.Dataset, patient: str) -> np.ndarray:
    """~100 evenly spaced months from the first to the last visit, plus the injection months."""
    pos = int(np.flatnonzero(design["patient"].values == patient)[0])
    t = design["month"].values[design["patient_index"].values == pos]
    tau = design["injection_month"].sel(patient=patient).values
    tau = tau[np.isfinite(tau) & (tau >= t.min()) & (tau <= t.max())]
    return np.unique(np.concatenate([np.linspace(t.min(), t.max(), _N_GRID), tau]))


def _patient_draws(var: xr.DataArray, pos: int) -> np.ndarray:
    """Draws of one patient's element(s) of a posterior variable: (chain, draw[, cycle])."""
    order = [*SAMPLE, "patient", *[dim for dim in var.dims if dim not in (*SAMPLE, "patient")]]
    return np.asarray(var.transpose(*order).values[:, :, pos])


def _trajectory_values(post: xr.DataTree | xr.Dataset, d: xr.Dataset, patient: str,
                       grid: np.ndarray) -> np.ndarray:
    """mu_i(t) draws on ``grid`` (chain x draw x month), in NumPy: one patient's bands are
    computed for every panel of the trajectory figure, and xarray's per-operation cost was
    most of their time."""
    pos = int(np.flatnonzero(d["patient"].values == patient)[0])
    t = np.asarray(grid, dtype=float)
    mu = (_patient_draws(post["alpha"], pos)[..., None]
          + _patient_draws(_runin_slope(post), pos)[..., None] * np.minimum(t, 0.0))
    has = d["has_cycle"].transpose("patient", "cycle").values[pos].astype(bool)
    if has.any():
        tau = d["injection_month"].transpose("patient", "cycle").values[pos]
        length = d["cycle_length"].transpose("patient", "cycle").values[pos].astype(float)
        length = np.where(np.arange(has.size) == np.flatnonzero(has)[-1], np.inf, length)
        exposure = np.where(has[:, None],
                            np.clip(t[None, :] - tau[:, None], 0.0, length[:, None]), 0.0)
        slope = np.where(has, _patient_draws(post["slope"], pos), 0.0)
        mu = mu + np.einsum("cdk,km->cdm", slope, exposure)
        if "jump_patient" in post:
            after = (has[:, None] & (t[None, :] >= tau[:, None])).astype(float)
            jump = np.where(has, _patient_draws(post["jump_patient"], pos), 0.0)
            mu = mu + np.einsum("cdk,km->cdm", jump, after)
    return mu


def trajectory_draws(
    idata: xr.DataTree, patient: str, months: Sequence[float] | np.ndarray | None = None
) -> xr.DataArray:
    """Posterior draws of a patient's mean score mu_i(t) on a grid of months.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit's DataTree (``FitResult.idata``) with groups ``posterior`` and ``design``.
    patient : str
        Patient id (a label of the ``patient`` dimension).
    months : array-like of float, optional
        Months since the patient's first injection (for an untreated patient: since the last
        visit) at which to evaluate the mean. Default: 100 evenly spaced months from the
        patient's first to last visit, plus the injection months, so that the kinks of the
        broken stick fall on the grid.

    Returns
    -------
    xarray.DataArray
        Dims ``chain``, ``draw``, ``month`` (coordinate: months); the mean score in outcome
        units (points for ALSFRS-R), without visit-to-visit noise. Beyond the last visit the
        last cycle's slope continues.

    Raises
    ------
    ValueError
        If ``patient`` is not in the fit or ``months`` is empty or not finite.
    """
    d = _design(idata)
    p = _patient_label(d, patient)
    grid = _month_grid(d, p) if months is None else np.asarray(months, dtype=float).ravel()
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("months must be a non-empty sequence of finite numbers (months).")
    post = idata["posterior"]
    values = _trajectory_values(post, d, p, grid)
    mu = xr.DataArray(values, dims=(*SAMPLE, "month"),
                      coords={"chain": post["chain"].values, "draw": post["draw"].values,
                              "month": grid})
    mu.name = "mu"
    mu.attrs = {"patient": p, "units": "outcome units (ALSFRS-R points)",
                "month_units": "months since the patient's first injection"}
    return mu


def trajectory_bands(
    idata: xr.DataTree, patient: str, months: Sequence[float] | np.ndarray | None = None
) -> pd.DataFrame:
    """Posterior mean and 50% / 95% bands of a patient's mean score over time.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit's DataTree (``FitResult.idata``).
    patient : str
        Patient id.
    months : array-like of float, optional
        Months since the patient's first injection; see :func:`trajectory_draws`.

    Returns
    -------
    pandas.DataFrame
        One row per month: ``month``, ``mean`` and the equal-tailed quantiles ``ci_2.5``,
        ``ci_25``, ``ci_75``, ``ci_97.5`` of mu_i(t), all in outcome units (ALSFRS-R points).
    """
    draws = trajectory_draws(idata, patient, months)
    flat = draws.values.reshape(-1, draws.sizes["month"])
    q = np.quantile(flat, list(BAND_PROBS), axis=0)
    out = pd.DataFrame({"month": draws["month"].values, "mean": flat.mean(axis=0)})
    for prob, row in zip(BAND_PROBS, q, strict=True):
        out[f"ci_{100 * prob:g}"] = row
    return out


def visit_mean_draws(idata: xr.DataTree) -> xr.DataArray:
    """Posterior draws of the mean score mu at every observed visit.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit's DataTree (``FitResult.idata``).

    Returns
    -------
    xarray.DataArray
        Dims ``chain``, ``draw``, ``visit``: the model's mean score (outcome units, ALSFRS-R
        points) at each visit of the design, the location of the likelihood.
    """
    d = _design(idata)
    post = _posterior(idata)
    idx = d["patient_index"]
    has = d["has_cycle"]
    mu = post["alpha"].isel(patient=idx) + _runin_slope(post).isel(patient=idx) * d["x_pre"]
    for k in d["cycle"].values:
        slope = post["slope"].sel(cycle=k).where(has.sel(cycle=k), 0.0)
        mu = mu + slope.isel(patient=idx) * d["x_cycle"].sel(cycle=k)
        if "jump_patient" in post:
            jump = post["jump_patient"].sel(cycle=k).where(has.sel(cycle=k), 0.0)
            mu = mu + jump.isel(patient=idx) * d["x_jump"].sel(cycle=k)
    mu = mu.drop_vars(["patient", "cycle"], errors="ignore").transpose(*SAMPLE, "visit")
    mu.name = "mu"
    mu.attrs = {"units": "outcome units (ALSFRS-R points)"}
    return mu


def predictive_scores(
    idata: xr.DataTree,
    random_seed: int | np.random.Generator,
    *,
    censor_bounds: tuple[float | None, float | None] | None = None,
) -> xr.DataArray:
    """Replicated scores y_rep at the observed visits, one per posterior draw.

    y_rep ~ Normal(mu, sigma), or Student-t(nu, mu, sigma) when the posterior has ``nu``, with
    mu from :func:`visit_mean_draws`. For the four-domain model (``domains=True``) each domain
    is replicated with its own share of the latent path and noise SD, censored at 0 as the
    model's likelihood is, and the replicate is their sum (the total).

    Parameters
    ----------
    idata : xarray.DataTree
        A fit's DataTree (``FitResult.idata``).
    random_seed : int or numpy.random.Generator
        Seed (or generator) of the noise: the same seed gives identical replicates.
    censor_bounds : (float or None, float or None), optional
        Floor and ceiling of the scale (0 and 48 for ALSFRS-R) when the model was fitted with
        ``censored=True``: replicates beyond them are set to the bound, as censored scores are
        recorded. ``None`` (default) leaves them unbounded.

    Returns
    -------
    xarray.DataArray
        ``y_rep`` with dims ``chain``, ``draw``, ``visit``, in outcome units (ALSFRS-R points).
    """
    rng = np.random.default_rng(random_seed)
    post = _posterior(idata)
    mu = visit_mean_draws(idata)
    if "alpha_domain" in post:
        return _domain_replicates(idata, post, mu, rng)
    sigma = post["sigma"].broadcast_like(mu).values
    if "nu" in post:
        noise = rng.standard_t(post["nu"].broadcast_like(mu).values)
    else:
        noise = rng.standard_normal(mu.shape)
    y = mu.values + sigma * noise
    if censor_bounds is not None:
        lo, hi = censor_bounds
        y = np.clip(y, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    out = mu.copy(data=y)
    out.name = "y_rep"
    out.attrs = {"units": "outcome units (ALSFRS-R points)"}
    return out


def _domain_replicates(idata: xr.DataTree, post: xr.Dataset, mu: xr.DataArray,
                       rng: np.random.Generator) -> xr.DataArray:
    """Replicated totals of the four-domain model: the sum of censored domain replicates.

    Domain d at visit v: alpha_id + w_id (run-in path + sum_k f_ikd x slope_ik x exposure
    + eps_v) + its own noise, censored at 0, with eps_v the visit's shared deviation and f_ikd
    the domain's floor factor (``design["domain_floor_factor"]``).
    """
    from slopeshift.model import DOMAIN_FLOOR

    d = _design(idata)
    idx = d["patient_index"]
    has = d["has_cycle"]
    runin = (_runin_slope(post).isel(patient=idx) * d["x_pre"]).drop_vars("patient",
                                                                            errors="ignore")
    shared = runin + post["sigma_visit"] * xr.DataArray(rng.standard_normal(mu.shape),
                                                        dims=mu.dims)
    # each cycle's decline so far at every visit, gathered once for all domains
    drop = ["patient", "cycle", "domain"]
    cycles = [(post["slope"].sel(cycle=k).where(has.sel(cycle=k), 0.0).isel(patient=idx)
               .drop_vars(drop, errors="ignore") * d["x_cycle"].sel(cycle=k)
               .drop_vars(drop, errors="ignore"), k) for k in d["cycle"].values]
    total = np.zeros(mu.shape)
    for dom in post["domain"].values:
        path = shared
        for part, k in cycles:
            f = d["domain_floor_factor"].sel(cycle=k, domain=dom).isel(patient=idx)
            path = path + part * f.drop_vars(drop, errors="ignore")
        mu_d = (post["alpha_domain"].sel(domain=dom).isel(patient=idx)
                + post["share"].sel(domain=dom).isel(patient=idx) * path)
        mu_d = mu_d.drop_vars(["patient", "domain", "cycle"], errors="ignore")
        mu_d = mu_d.transpose(*mu.dims).values
        sd = post["sigma_domain"].sel(domain=dom).values[..., None]
        noise = (rng.standard_t(np.broadcast_to(post["nu"].values[..., None], mu.shape))
                 if "nu" in post else rng.standard_normal(mu.shape))
        total += np.maximum(mu_d + sd * noise, DOMAIN_FLOOR)
    out = mu.copy(data=total)
    out.name = "y_rep"
    out.attrs = {"units": "outcome units (ALSFRS-R points)"}
    return out


def _runin_slope(post: xr.Dataset | xr.DataTree) -> xr.DataArray:
    """The run-in slope (points/month): persistent rate plus run-in drift, where modelled."""
    return post["slope_runin"] if "slope_runin" in post else post["beta_pre"]
