"""Leave-one-patient-out cross-validation (PSIS-LOO) and a comparison of nested models.

A patient, not a visit, is the unit a new trial adds, so the predictive density that LOO
estimates is that of all of a left-out patient's scores given the other patients: p(y_i | y_-i).
Importance sampling from the full posterior needs, for each draw, the density of y_i given the
parameters shared by the patients only. With the patient's own intercept alpha_i, persistent
rate beta_i0 and effects in the draw, that density is too sharp: the ratios have heavy tails
(Pareto k above 0.7 for nearly every patient). :func:`integrated_log_likelihood` therefore
integrates every patient-level quantity out:

- the slowing effects, drift, jumps and lasting-floor deviations exactly, as in the model
  (:mod:`slopeshift.marginal`);
- the intercept alpha_i ~ N(mu_alpha, sd_alpha) exactly too: it is one more Normal effect, on
  a column of ones;
- the persistent rate beta_i0 ~ N(mu_beta, sd_beta), which scales the slowing in the ratio
  form, numerically: the trapezoidal rule on a grid of ``nodes`` points over +/- ``width``
  posterior SDs around the patient's posterior mean (spectrally accurate for a smooth
  integrand; the rule on every second node is computed too, and their difference is reported
  and warned about when it exceeds 0.05);
- and, for patients enrolled on their run-in, the selection term -log P(enrolled | theta) of
  the model's likelihood.

:func:`loo` passes it to :func:`arviz_stats.loo`; :func:`compare` runs
:func:`arviz_stats.compare` over fits of the same data, and :func:`ladder` refits the data under
the nested models of :data:`LADDER`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import arviz_stats
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import log_ndtr, logsumexp, ndtr

from slopeshift.errors import _PACKAGE_DIR, ConvergenceWarning
from slopeshift.fit import _constant

if TYPE_CHECKING:
    from slopeshift.fit import FitResult

__all__ = ["LADDER", "PARETO_K_MAX", "compare", "enrolment_log_likelihood", "format_comparison",
           "integrated_log_likelihood", "ladder", "loo", "loo_pit"]

#: Pareto k above which a patient's importance-sampling estimate is unreliable.
PARETO_K_MAX = 0.7

#: The default model ladder of :func:`ladder`: name -> options changed from the fit.
#: Each rung keeps the fit's enrolment rule, floors and priors, so that every rung is a model
#: of the same scores under the same likelihood.
LADDER: dict[str, dict[str, Any]] = {
    "no slowing": {"slowing": "none", "drift": False},
    "one common slowing": {"slowing": "common", "interval_effect": False, "drift": False},
    "slowing per cycle": {"slowing": "per_cycle", "interval_effect": False, "drift": False},
    "per cycle + interval": {"slowing": "per_cycle", "interval_effect": True, "drift": False},
    "+ natural change": {"slowing": "per_cycle", "interval_effect": True, "drift": True},
    "natural change, no slowing": {"slowing": "none", "drift": True},
}

_SAMPLED = ("mu_alpha", "sd_alpha", "mu_beta", "sd_beta", "theta", "sigma", "sd_patient",
            "sd_patient_cycle", "sd_drift", "acceleration", "natural_cycle", "natural_ratio",
            "jump", "sd_jump",
            "gamma", "rho_cycle", "delta_cycle")


def _model_of(fit: FitResult):
    from slopeshift.sensitivity import refit_model

    return refit_model(fit)


def integrated_log_likelihood(fit: FitResult, nodes: int = 31,
                              width: float = 6.0) -> xr.DataArray:
    """Each patient's log density with every patient-level quantity integrated out.

    Parameters
    ----------
    fit : FitResult
        A fit of the marginal model (Normal likelihood, no censoring).
    nodes : int, default 31
        Grid points of the integral over the persistent rate beta_i0 (odd).
    width : float, default 6.0
        Half-width of the grid in posterior SDs of beta_i0.

    Returns
    -------
    xarray.DataArray
        log p(y_i | population parameters) (chain, draw, patient), natural log. ``attrs``:
        ``quadrature_error``, an upper bound of the grid's error: the largest difference
        between the grid and its every-second-node rule. Where that exceeds 0.05 the grid
        is refined (twice the nodes less one, the old nodes among them) up to twice, and
        the bound is then the difference between the last two grids; a warning is given if
        it still exceeds 0.05. ``nodes`` holds the nodes used.
    """
    model = _model_of(fit)
    if not model.marginal:
        raise ValueError(
            "leave-one-patient-out needs the marginal model (likelihood='normal', "
            "censored=False): with Student-t or censored scores the patients' effects are "
            "sampled, and their integrated density is not available in closed form.")
    if nodes < 5 or nodes % 2 == 0:
        raise ValueError(f"nodes must be an odd number of at least 5, not {nodes}.")
    post = fit.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    par = model._posterior_arrays(post)
    enrol = enrolment_log_likelihood(model, par)
    out, err = _beta_integral(model, par, nodes, width)
    # the every-second-node bound is pessimistic (the half grid is far coarser than the grid):
    # refine, and bound the error by the change, before warning
    for _ in range(2):
        if err <= 0.05:
            break
        nodes = 2 * nodes - 1
        finer, _ = _beta_integral(model, par, nodes, width)
        err, out = float(np.max(np.abs(finer - out))), finer
    if err > 0.05:
        warnings.warn(
            f"the integral over the persistent rates may be inaccurate (grids of {nodes} and "
            f"{(nodes + 1) // 2} nodes differ by up to {err:.3f} in log density): raise "
            "nodes= or lower width=.", ConvergenceWarning, skip_file_prefixes=_PACKAGE_DIR)
    return xr.DataArray(
        (out + enrol).reshape(n_chain, n_draw, -1), dims=("chain", "draw", "patient"),
        coords={"chain": post["chain"].values, "draw": post["draw"].values,
                "patient": model.design["patient"].values},
        name="y_patient", attrs={"quadrature_error": err, "nodes": nodes},
    )


def _beta_integral(model, par: dict, nodes: int, width: float) -> tuple[np.ndarray, float]:
    """log of the integral over beta_i0 (grid of ``nodes`` over +-``width`` posterior SDs)
    of each patient's conditional density times beta_i0's population density, (draw,
    patient), and the largest difference from the every-second-node rule."""
    k = model._constants()
    n_p = k["has"].shape[0]
    total = len(par["sigma"])
    beta = par["beta_pre"]
    centre = beta.mean(axis=0)
    scale = np.maximum(beta.std(axis=0), 1e-3 * np.maximum(np.abs(centre), 1.0))
    x = np.linspace(-width, width, nodes)
    h = x[1] - x[0]
    out = np.empty((total, n_p))
    err = 0.0
    chunk = max(1, int(2e7 // max(len(k["p_idx"]) * (k["x_all"].shape[1] + 1), 1)))
    for lo in range(0, total, chunk):
        sl = slice(lo, min(lo + chunk, total))
        p = {n: v[sl] for n, v in par.items()}
        n = sl.stop - sl.start
        alpha = np.broadcast_to(p["mu_alpha"][:, None], (n, n_p))
        sd_alpha = p["sd_alpha"][:, None]
        lp = np.empty((nodes, n, n_p))
        for j, xj in enumerate(x):
            b = np.broadcast_to(centre + scale * xj, (n, n_p))
            terms = model._conditional_terms(p, alpha, b, sd_alpha=sd_alpha)["terms"]
            prior = (-0.5 * ((b - p["mu_beta"][:, None]) / p["sd_beta"][:, None]) ** 2
                     - np.log(p["sd_beta"][:, None]) - 0.5 * np.log(2 * np.pi))
            lp[j] = terms.logp + prior
        full = logsumexp(lp, axis=0) + np.log(h * scale)
        half = logsumexp(lp[::2], axis=0) + np.log(2 * h * scale)
        err = max(err, float(np.max(np.abs(full - half))))
        out[sl] = full
    return out, err


def enrolment_log_likelihood(model, par: dict) -> np.ndarray:
    """The selection term -log P(enrolled | parameters) of each patient, per draw.

    ``par``: :meth:`SlopeShiftModel._posterior_arrays`. Returns (draw, patient); 0 for
    patients the enrolment rule does not concern (see ``SlopeShiftModel._enrolment_potential``).
    """
    k = model._constants()
    out = np.zeros((len(par["sigma"]), k["has"].shape[0]))
    if k["enrolled"].any():
        sel = k["enrolled"]
        var = par["sd_beta"][:, None] ** 2 + par["sigma"][:, None] ** 2 / k["runin_sxx"][sel]
        if "sd_drift" in par:
            var = var + par["sd_drift"][:, None] ** 2
        z = (k["enrol_threshold"] - par["mu_beta"][:, None]) / np.sqrt(var)
        out[:, sel] = -log_ndtr(z)
    return out


def _loo_tree(fit: FitResult) -> xr.DataTree:
    """The posterior's population parameters and the integrated log-likelihood."""
    if "log_likelihood" in fit.idata.children and \
            "y_patient" in fit.idata["log_likelihood"].data_vars:
        ll = fit.idata["log_likelihood"]["y_patient"]
    else:
        ll = integrated_log_likelihood(fit)
        group = fit.idata["log_likelihood"].to_dataset() if "log_likelihood" in \
            fit.idata.children else xr.Dataset()
        fit.idata["log_likelihood"] = xr.DataTree(group.assign(y_patient=ll))
    post = fit.posterior
    keep = [v for v in _SAMPLED if v in post and not _constant(post[v])]
    return xr.DataTree.from_dict({"posterior": post[keep],
                                  "log_likelihood": xr.Dataset({"y_patient": ll})})


def loo(fit: FitResult, **kwargs: Any) -> arviz_stats.ELPDData:
    """Leave-one-patient-out PSIS-LOO of a fit.

    Parameters
    ----------
    fit : FitResult
        A fit of the marginal model (Normal likelihood, no censoring).
    **kwargs
        Passed to :func:`arviz_stats.loo` (e.g. ``reff``).

    Returns
    -------
    arviz_stats.ELPDData
        ``elpd`` (expected log predictive density of a new patient's scores, summed over
        patients), ``se``, ``p`` (effective number of parameters), pointwise ``elpd_i`` and
        ``pareto_k`` per patient. Patients with Pareto k above :data:`PARETO_K_MAX` are
        flagged by :func:`compare` (their estimate leans on one or a few draws).
    """
    kwargs.setdefault("pointwise", True)
    with warnings.catch_warnings():
        # arviz warns about high Pareto k in its own words; compare() reports them by patient
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        warnings.filterwarnings("ignore", message=".*shape parameter.*")
        tree = _loo_tree(fit)
        kwargs.setdefault("reff", _reff(tree))
        return arviz_stats.loo(tree, var_name="y_patient", **kwargs)


def loo_pit(fit: FitResult, kind: str = "slope", nodes: int = 24,
            max_draws: int | None = None) -> xr.DataArray:
    """Leave-one-patient-out PIT: each patient's course after the first injection against
    the predictive distribution of a new patient like them, given the other patients.

    ``kind="slope"`` (default): one value per patient with at least 3 visits at or after the
    first injection, the PIT of the least-squares slope of those scores (points/month);
    patients are independent given the population, so uniformity can be tested honestly.
    ``kind="score"``: one value per score at or after the first injection (a patient's scores
    share the patient's level, so they are correlated and a uniformity envelope drawn as if
    they were independent is too narrow).

    A new patient "like i" has i's visit times, injections and arm. Given the population
    parameters and the persistent rate beta_i0, any linear statistic of its scores is Normal
    (every other patient-level quantity enters linearly), and, for scores at or after the first
    injection, it does not depend on the run-in slope that enrolment selected on. So the PIT
    is exact up to the integral over beta_i0 (Gauss-Hermite, ``nodes`` points, over its
    population distribution times the probability of enrolment, for enrolled patients) and
    the PSIS weights of :func:`loo`.

    Parameters
    ----------
    fit : FitResult
        A fit of the marginal model.
    kind : {"slope", "score"}, default "slope"
    nodes : int, default 24
        Gauss-Hermite nodes over beta_i0.
    max_draws : int, optional
        Use at most this many posterior draws (evenly spaced in each chain) for the weights
        and the predictive: faster (the report uses 1,000), and the fit's stored integrated
        log-likelihood is then neither used nor kept.

    Returns
    -------
    xarray.DataArray
        PIT values in [0, 1]: dim ``patient`` (slope) or ``visit`` with coordinate
        ``patient`` (score). ``attrs["high_pareto_k"]``: patients whose PSIS weights are
        unreliable (Pareto k > 0.7); ``attrs["kind"]``.
    """
    if kind not in ("slope", "score"):
        raise ValueError(f"kind must be 'slope' or 'score', not {kind!r}.")
    post = fit.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    if max_draws is not None and n > max_draws:
        from slopeshift.fit import FitResult

        step = -(-n // max_draws)
        thin = xr.DataTree.from_dict({"posterior": post.isel(draw=slice(None, None, step))})
        return loo_pit(FitResult(thin, fit.data, fit.config, fit.fit_info, design=fit.design),
                       kind, nodes)
    model = _model_of(fit)
    tree = _loo_tree(fit)
    ll = tree["log_likelihood"]["y_patient"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")  # reported in attrs below
        warnings.filterwarnings("ignore", message=".*shape parameter.*")
        lw, k_hat = ll.azstats.psislw(r_eff=_reff(tree), dim=["chain", "draw"])
    lw = lw.stack(__sample__=("chain", "draw")).transpose("__sample__", "patient").values
    w = np.exp(lw - logsumexp(lw, axis=0))  # (draw, patient), normalised per patient
    stats = _statistics(model, kind)
    pit = _weighted_predictive_cdf(model, model._posterior_arrays(fit.posterior), w, stats,
                                   nodes)
    high = [str(pid) for pid in k_hat["patient"].values[k_hat.values > PARETO_K_MAX]]
    ids = model.design["patient"].values[stats["patient"]]
    if kind == "slope":
        coords = {"patient": ids}
        dims = ("patient",)
    else:
        coords = {"visit": model.design["visit"].values[stats["visits"]], "patient": ("visit",
                                                                                     ids)}
        dims = ("visit",)
    return xr.DataArray(np.clip(pit, 0.0, 1.0), dims=dims, coords=coords, name="loo_pit",
                        attrs={"high_pareto_k": high, "kind": kind})


def _statistics(model, kind: str) -> dict[str, np.ndarray]:
    """Linear statistics of the scores at or after the first injection, as contiguous
    segments of visits: ``visits`` (index), ``coef``, ``starts`` (of each statistic's
    segment) and ``patient`` (index, per statistic)."""
    k = model._constants()
    p_idx = k["p_idx"]
    after = np.flatnonzero(k["x_pre"] == 0)  # run-in exposure 0: at or after the injection
    if kind == "score":
        return {"visits": after, "coef": np.ones(len(after)), "starts": np.arange(len(after)),
                "patient": p_idx[after]}
    month = model.design["month"].values
    visits, coef, starts, patients = [], [], [], []
    for i in np.unique(p_idx[after]):
        v = after[p_idx[after] == i]
        if len(v) < 3:
            continue
        t = month[v] - month[v].mean()
        starts.append(len(visits))
        visits.extend(v)
        coef.extend(t / (t @ t))
        patients.append(i)
    return {"visits": np.asarray(visits, dtype=int), "coef": np.asarray(coef),
            "starts": np.asarray(starts, dtype=int), "patient": np.asarray(patients, dtype=int)}


def _weighted_predictive_cdf(model, par: dict, w: np.ndarray, stats: dict,
                             nodes: int) -> np.ndarray:
    """sum_s w_si P(T~ <= T | parameters of draw s, enrolled) for each linear statistic T of
    :func:`_statistics`; ``w`` is (draw, patient)."""
    k = model._constants()
    p_idx = k["p_idx"]
    vis, coef, starts, stat_p = stats["visits"], stats["coef"], stats["starts"], stats["patient"]
    observed = np.add.reduceat(coef * k["y"][vis], starts) if len(vis) else np.zeros(0)
    x_gh, w_gh = np.polynomial.hermite_e.hermegauss(nodes)
    w_gh = w_gh / w_gh.sum()
    n_p = k["has"].shape[0]
    pit = np.zeros(len(starts))
    if not len(starts):
        return pit

    def combine(x: np.ndarray) -> np.ndarray:  # sum_j a_j x_j over each statistic's visits
        return np.add.reduceat(coef.reshape(-1, *[1] * (x.ndim - 1)) * x[vis], starts)

    # each statistic a'y lies within one patient, and the scores' mean and the effects'
    # loadings are linear in per-patient quantities, so they are combined over the visits
    # once here instead of per draw and node: the mean at the combined design rows, and the
    # exposure columns (with the intercept's column of ones) combined the same way
    rows = {"patient": stat_p, "one": combine(np.ones(len(p_idx))),
            "x_pre": combine(k["x_pre"]), "x_cycle": combine(k["x_cycle"]),
            "x_jump": combine(k["x_jump"])}
    xa = combine(np.column_stack([k["x_all"], np.ones(len(p_idx))]))
    chunk = max(1, int(2e6 // max(len(p_idx) * nodes, 1)))
    total = len(par["sigma"])
    for lo in range(0, total, chunk):
        sl = slice(lo, min(lo + chunk, total))
        p = {n: v[sl] for n, v in par.items()}
        n = sl.stop - sl.start
        mu_b, sd_b = p["mu_beta"][:, None], p["sd_beta"][:, None]
        logq = np.log(w_gh)[:, None, None] + np.zeros((nodes, n, n_p))
        if k["enrolled"].any():  # a new patient like i passed the enrolment rule too
            sel = k["enrolled"]
            sd_sel = np.sqrt(p["sigma"][:, None] ** 2 / k["runin_sxx"][sel]
                             + (p["sd_drift"][:, None] ** 2 if "sd_drift" in p else 0.0))
            for j, xj in enumerate(x_gh):
                logq[j][:, sel] += log_ndtr((k["enrol_threshold"] - (mu_b + sd_b * xj))
                                            / sd_sel)
        q = np.exp(logq - logsumexp(logq, axis=0))
        cdf = np.zeros((n, len(starts)))
        alpha = np.broadcast_to(p["mu_alpha"][:, None], (n, n_p))
        for j, xj in enumerate(x_gh):
            b = np.broadcast_to(mu_b + sd_b * xj, (n, n_p))
            cond = model._conditional_terms(p, alpha, b, sd_alpha=p["sd_alpha"][:, None],
                                            density=False, rows=rows)
            # Var(a'y) = sigma^2 a'a + sum over effects e of (sum_r (sum_j a_j x_jr) L_re)^2
            by_effect: dict[int, np.ndarray] = {}
            for (r, e), value in cond["loadings"].items():
                v = np.broadcast_to(value, (n, n_p))[:, stat_p] * xa[:, r]
                by_effect[e] = by_effect.get(e, 0.0) + v
            var = p["sigma"][:, None] ** 2 * np.add.reduceat(coef**2, starts)
            for v in by_effect.values():
                var = var + v**2
            mean = cond["mu"]
            cdf += q[j][:, stat_p] * ndtr((observed - mean) / np.sqrt(var))
        pit += (w[sl][:, stat_p] * cdf).sum(axis=0)
    return pit


def _reff(tree: xr.DataTree) -> float:
    """ArviZ's relative efficiency of the population parameters (1 when none is sampled)."""
    from arviz_stats.loo.loo_helper import _get_r_eff

    if not tree["posterior"].data_vars:
        return 1.0
    ll = tree["log_likelihood"]["y_patient"]
    return float(_get_r_eff(tree, ll.sizes["chain"] * ll.sizes["draw"]))


def compare(fits: Mapping[str, FitResult]) -> pd.DataFrame:
    """Compare fits of the same data by leave-one-patient-out PSIS-LOO.

    Parameters
    ----------
    fits : mapping of str to FitResult
        Named fits of the same patients (at least two).

    Returns
    -------
    pandas.DataFrame
        One row per model, best first (:func:`arviz_stats.compare`, unrounded): ``rank``,
        ``elpd`` (sum over patients of the log predictive density of a left-out patient's
        scores) and its ``se``, ``p`` (effective number of parameters), ``elpd_diff`` and
        ``dse`` (the difference from the best model, 0 or negative, and its standard error),
        ``p_worse`` (normal approximation), ``diag_diff`` (ArviZ's caution, e.g. "N < 100"
        patients), ``weight`` (stacking), plus ``high_pareto_k`` (patients whose Pareto k
        exceeds 0.7, comma-separated) and ``max_pareto_k``. A difference smaller than about
        2 ``dse`` does not separate the models.
    """
    if len(fits) < 2:
        raise ValueError("compare needs at least two fits.")
    patients = {name: tuple(f.design["patient"].values) for name, f in fits.items()}
    first = next(iter(patients.values()))
    other = [n for n, p in patients.items() if p != first]
    if other:
        raise ValueError(f"fit(s) {other} are of other patients: compare fits of the same data.")
    results = {name: loo(f) for name, f in fits.items()}
    table = arviz_stats.compare(results, method="stacking", round_to="none")
    flags, kmax = {}, {}
    for name, res in results.items():
        k = res.pareto_k
        kmax[name] = float(k.max())
        flags[name] = ", ".join(str(p) for p in k["patient"].values[k.values > PARETO_K_MAX])
    table["max_pareto_k"] = pd.Series(kmax)
    table["high_pareto_k"] = pd.Series(flags)
    table.index.name = "model"
    return table


def ladder(fit: FitResult, rungs: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
           ) -> dict[str, FitResult]:
    """Refit ``fit``'s data under a ladder of nested models (same sampler settings and seed).

    Parameters
    ----------
    fit : FitResult
        The primary fit (its enrolment rule, floors and priors are kept on every rung).
    rungs : mapping or sequence of str, optional
        ``{name: options}`` (options of :class:`~slopeshift.model.SlopeShiftModel` changed
        from the fit), or names of :data:`LADDER`; default all of :data:`LADDER`. A rung
        whose options are the fit's own reuses the fit.

    Returns
    -------
    dict of str to FitResult
    """
    from slopeshift.sensitivity import refit

    if rungs is None:
        rungs = LADDER
    elif not isinstance(rungs, Mapping):
        unknown = [r for r in rungs if r not in LADDER]
        if unknown:
            raise ValueError(f"unknown rung(s) {unknown}; use names of {list(LADDER)} or a "
                             "mapping of name to options.")
        rungs = {r: LADDER[r] for r in rungs}
    cfg = fit.config
    out = {}
    for name, options in rungs.items():
        changes = {key: v for key, v in options.items()
                   if cfg.get(key, _DEFAULTS.get(key)) != v}
        out[name] = fit if not changes else refit(fit, **changes)
    return out


_DEFAULTS = {"slowing": "per_cycle", "interval_effect": True, "drift": True}


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table for print: ELPD to one decimal, weights to two.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`compare`.

    Returns
    -------
    pandas.DataFrame
        ``Model``, ``ELPD (SE)``, ``Difference from best (SE)``, ``Effective parameters``,
        ``Stacking weight``, ``P(worse than best)`` and ``Pareto k > 0.7`` (the patients, or
        "none").
    """
    rows = []
    for name, r in table.iterrows():
        diff = ("best" if r["rank"] == 0
                else f"{r['elpd_diff']:.1f} ({r['dse']:.1f})")
        rows.append({
            "Model": name,
            "ELPD (SE)": f"{r['elpd']:.1f} ({r['se']:.1f})",
            "Difference from best (SE)": diff,
            "Effective parameters": f"{r['p']:.1f}",
            "Stacking weight": f"{r['weight']:.2f}",
            "P(worse than best)": "" if r["rank"] == 0 else f"{r['p_worse']:.2f}",
            "Pareto k > 0.7": r["high_pareto_k"] or "none",
        })
    out = pd.DataFrame(rows)
    out.attrs["note"] = (
        "Leave-one-patient-out PSIS-LOO: ELPD is the sum over patients of the log predictive "
        "density of a left-out patient's scores (higher is better). A difference smaller than "
        "about twice its SE does not separate two models; with fewer than 100 patients the "
        "normal approximation behind P(worse) is rough. Every model keeps the primary "
        "analysis's enrolment rule, floors and priors.")
    return out
