"""Posterior summaries: pure functions of a fitted model's ``xarray.DataTree``.

Every function takes the DataTree (groups ``posterior`` and ``design``) and returns a tidy
``pandas.DataFrame``. Slowing rho is a fraction of the patient's own pre-treatment rate of decline
(0.25 = 25% slower); probabilities are posterior probabilities, e.g. ``p_gt_0.25`` = P(rho > 0.25).

Without a control arm, slowing is relative to each patient's own run-in: regression to the mean
and natural deceleration of decline can both look like a treatment effect.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from slopeshift.design import design_weights, evaluable_cells, given_interval_shift

__all__ = [
    "CAVEAT",
    "arm_contrast_table",
    "cycle_table",
    "natural_history_note",
    "interval_effect_draws",
    "interval_table",
    "patient_slowing_draws",
    "patient_table",
    "population_table",
    "responder_table",
    "PRIMARY_ESTIMAND",
    "estimand_role",
    "slope_change_draws",
    "slowing_table",
]

#: The note every table carries: what the slowing is relative to.
CAVEAT = (
    "Slowing is relative to each patient's natural rate of decline: the run-in rate, carried "
    "forward with the natural-history drift and acceleration (and, with a control arm, the "
    "change the controls showed). Without controls that natural change comes from published "
    "natural history, not from this trial: a population that slows naturally more than "
    "untreated ALS patients do can still look treated, and so can later cycles from which the "
    "fastest decliners have dropped out."
)


def natural_history_note(config: dict) -> str:
    """One sentence naming the natural-history assumption a fit used (for tables and report).

    Parameters
    ----------
    config : dict
        A fit's configuration (``FitResult.config``).

    Returns
    -------
    str
    """
    pri = config.get("priors", {})
    if not config.get("drift", False):
        text = ("No natural drift: each patient's run-in rate is assumed to continue unchanged "
                "without treatment (regression to the mean and drift count as slowing).")
    else:
        text = (f"Natural drift of each patient's rate from period to period, SD prior "
                f"{_prior_text(pri.get('sd_drift'))} per month, and a systematic change of the "
                f"natural rate with prior {_prior_text(pri.get('acceleration'))} per month "
                "(published natural history of placebo-treated ALS patients; docs/model.md); "
                "without controls, each cycle's natural change may stray from it with prior "
                f"{_prior_text(pri.get('natural_shift'))} per month; with controls, the controls "
                "measured each cycle's natural change, both at the median run-in rate and how "
                "it grew with the patient's own rate (prior "
                f"{_prior_text(pri.get('natural_ratio'))} per unit of rate), and the slowing is "
                "what the treated showed beyond it.")
        if config.get("domains"):
            text += (" Floors: the four ALSFRS-R domains were modelled, each censored at 0, so a "
                     "domain at its floor did not flatten the decline.")
        elif config.get("floors", "exclude") != "include":
            text += (" With item-level ALSFRS-R, items at 0 scale each cycle's natural rate by the "
                     "share of the run-in decline the other items can still carry.")
            if config.get("floors", "exclude") == "exclude":
                text += (" Cycles in which a whole domain sat at its lasting floor carried no "
                         "treatment effect, stayed out of responder counts and had a vague slope "
                         "deviation of their own, so that they did not inform the natural change.")
    rule = config.get("enrolment")
    if rule == "auto":
        text += (" Enrolment: patients assumed enrolled on a run-in slope below the slowest "
                 "enrolled patient's (the most selective rule the data allow).")
    elif rule is not None:
        text += f" Enrolment: run-in slope below {rule:g} per month, modelled."
    else:
        text += " Enrolment: not modelled (all-comers)."
    return text


def _prior_text(p: dict | None) -> str:
    if not p:
        return "(none)"
    from slopeshift.priors import Prior

    return repr(Prior.from_value(p))


def _evaluable(d: xr.Dataset) -> xr.DataArray:
    """Patient x cycle cells in responder counts (see :func:`design.evaluable_cells`)."""
    return evaluable_cells(d)
SAMPLE = ("chain", "draw")
CI = (0.025, 0.975)


def _thresholds(threshold: float | Sequence[float]) -> list[float]:
    values = [threshold] if np.isscalar(threshold) else list(threshold)
    if not values:
        raise ValueError("give at least one threshold, e.g. threshold=0.25.")
    out = []
    for v in values:
        if not np.isfinite(float(v)):
            raise ValueError(f"thresholds must be finite numbers; got {v!r}.")
        out.append(float(v))
    return out


def _pcol(c: float, op: str = "gt") -> str:
    return f"p_{op}_{c:g}"


def _stats(draws: xr.DataArray, thresholds: Sequence[float], zero: bool = False) -> pd.DataFrame:
    """Mean, SD, 95% equal-tailed interval and P(> c) over the sample dims of ``draws``."""
    dims = [d for d in SAMPLE if d in draws.dims]
    with warnings.catch_warnings():  # cells without a cycle are all-NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        return _stats_table(draws, dims, thresholds, zero)


def _stats_table(draws, dims, thresholds, zero) -> pd.DataFrame:
    cols = {
        "mean": draws.mean(dims),
        "sd": draws.std(dims),
        "ci_2.5": draws.quantile(CI[0], dims).drop_vars("quantile"),
        "ci_97.5": draws.quantile(CI[1], dims).drop_vars("quantile"),
    }
    valid = draws.notnull()
    if zero:
        cols[_pcol(0)] = (draws > 0).where(valid).mean(dims)
    for c in thresholds:
        cols[_pcol(c)] = (draws > c).where(valid).mean(dims)
    ds = xr.Dataset(cols)
    if ds["mean"].ndim == 0:
        return pd.DataFrame([{k: float(v) for k, v in ds.items()}])
    return ds.to_dataframe().reset_index()


def _posterior(idata: xr.DataTree) -> xr.Dataset:
    return idata["posterior"].to_dataset()


def _design(idata: xr.DataTree) -> xr.Dataset:
    return idata["design"].to_dataset()


def patient_slowing_draws(idata: xr.DataTree) -> xr.DataArray:
    """Draws of each patient's overall slowing rho_i (chain, draw, patient).

    rho_i = 1 - (sum_k L_ik beta_ik / sum_k L_ik) / beta_i0: the cycle slowings weighted by the
    months of each cycle, over the cycles with at least one visit. NaN for untreated patients and
    for patients with no observed cycle.
    """
    d = _design(idata)
    rho = _posterior(idata)["rho"]
    r = _cells(rho)
    return _cycle_average(lambda k: r[..., k], rho, d["cycle_length"] * _evaluable(d))


def _cycle_average(cell: Callable[[int], np.ndarray], like: xr.DataArray,
                   weight: xr.DataArray) -> xr.DataArray:
    """sum_k w_ik x_ik / sum_k w_ik per draw and patient, with ``cell(k)`` the draws x_ik of
    cycle k (chain, draw, patient, in the order of ``like``'s patients and cycles) and NaN
    cells counted as 0; NaN for patients whose weights sum to 0. One cycle at a time: no
    temporary the size of all the cell draws (at 10,000 patients, 1.3 GB each)."""
    w = weight.astype(float).sel(patient=like["patient"], cycle=like["cycle"])
    total = w.sum("cycle")
    wn = (w / total.where(total > 0)).fillna(0.0).transpose("patient", "cycle").values
    out = np.zeros((like.sizes["chain"], like.sizes["draw"], like.sizes["patient"]))
    for k in range(wn.shape[1]):
        x = cell(k)
        out += np.where(np.isnan(x), 0.0, x) * wn[:, k]
    out[..., ~(total.values > 0)] = np.nan
    return xr.DataArray(out, dims=("chain", "draw", "patient"),
                        coords={c: like[c] for c in ("chain", "draw", "patient")})


def _cells(draws: xr.DataArray) -> np.ndarray:
    """The (chain, draw, patient, cycle) values of cell draws (a view where possible)."""
    return draws.transpose("chain", "draw", "patient", "cycle").values


def slope_change_draws(idata: xr.DataTree) -> xr.DataArray | None:
    """Draws of each patient's slope change beyond the natural rate (chain, draw, patient).

    The slowing on the additive scale, points/month (positive = slower decline): per cell
    rho_ik |n_ik|, with n_ik the natural rate expected without treatment (drift excluded),
    weighted by the months of each cycle over the cells that carry an effect, whether or not
    the run-in established decline. None for fits without ``natural_slope`` draws.
    """
    post = _posterior(idata)
    if "natural_slope" not in post:
        return None
    d = _design(idata)
    r, n = _cells(post["rho"]), _cells(post["natural_slope"])
    return _cycle_average(lambda k: r[..., k] * np.abs(n[..., k]), post["rho"],
                          d["cycle_length"] * evaluable_cells(d, flat_runin=True))


def slowing_table(idata: xr.DataTree, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
    """Slowing rho_ik per patient and cycle.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit's DataTree (``FitResult.idata``).
    threshold : float or sequence of float, default 0.25
        Slowing thresholds c (fractions): columns ``p_gt_<c>`` hold P(rho_ik > c).

    Returns
    -------
    pandas.DataFrame
        One row per patient x cycle received: ``patient``, ``cycle``, ``injection_month``
        (months since the first injection), ``cycle_length`` (months), ``interval`` (the
        interval covariate, months), ``observed`` (a visit during the cycle; unobserved cycles
        stay out of responder counts), ``slope_mean`` (points/month in the cycle), ``floor``
        (an ALSFRS-R domain sat at its lasting floor during the cycle; such cycles carry no
        slowing by default), ``natural_slope_mean`` and ``drift_mean`` (the natural rate
        expected without treatment and the cycle's natural drift, points/month; models with
        drift), ``mean``, ``sd``, ``ci_2.5``, ``ci_97.5`` of rho_ik and ``p_gt_<c>`` (NaN for
        controls and floored cycles).
    """
    th = _thresholds(threshold)
    post = _posterior(idata)
    d = _design(idata)
    table = _stats(post["rho"], th)
    keys = ["patient", "cycle"]
    extra = {"floor": d["floor"]} if "floor" in d else {}
    if "natural_slope" in post:
        extra["natural_slope_mean"] = post["natural_slope"].mean(SAMPLE)
    if "drift" in post:
        extra["drift_mean"] = post["drift"].mean(SAMPLE)
    info = xr.Dataset({
        "has_cycle": d["has_cycle"], "injection_month": d["injection_month"],
        "cycle_length": d["cycle_length"], "interval": d["interval"],
        "observed": d["observed"], "slope_mean": post["slope"].mean(SAMPLE), **extra,
    }).to_dataframe().reset_index()
    info = info[info["has_cycle"]].drop(columns="has_cycle")
    out = info.merge(table, on=keys, how="left")
    out.attrs["note"] = CAVEAT
    return out.reset_index(drop=True)


def patient_table(idata: xr.DataTree, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
    """Each patient's overall slowing and probability of being a responder.

    Parameters
    ----------
    idata : xarray.DataTree
    threshold : float or sequence of float, default 0.25
        A patient is a responder at threshold c when rho_i > c; ``p_gt_<c>`` is the posterior
        probability of that.

    Returns
    -------
    pandas.DataFrame
        One row per patient: ``patient``, ``status`` ("treated", "untreated", "not
        evaluable": treated but no visit after an injection, "control" or "external"),
        ``n_cycles``, ``pre_slope_mean``, ``pre_slope_ci_2.5``, ``pre_slope_ci_97.5`` (the
        patient's persistent natural rate, points/month), ``runin_ls_slope`` and
        ``decline_established`` (the run-in's own least-squares slope, points/month, and
        whether its one-sided 95% upper bound is below 0), ``floored_cycles`` (cycles spent
        with an ALSFRS-R domain at its lasting floor, left out of the slowing by default),
        ``change_mean``, ``change_ci_2.5``, ``change_ci_97.5`` (the slowing on the additive
        scale: points/month slower than the natural rate, months-weighted over the cycles),
        ``mean``, ``sd``, ``ci_2.5``, ``ci_97.5`` of rho_i and ``p_gt_<c>``. Untreated,
        not-evaluable and (by default) "flat run-in" patients, whose run-in did not establish
        decline, have no ratio slowing (NaN) and are never counted as responders or
        non-responders; flat run-in patients keep their slope change.
    """
    th = _thresholds(threshold)
    d = _design(idata)
    post = _posterior(idata)
    rho_i = patient_slowing_draws(idata)
    table = _stats(rho_i, th)
    beta = post["beta_pre"]
    evaluable = (d["cycle_length"] * d["observed"]).sum("cycle") > 0
    status = np.where(~d["treated"].values, "untreated",
                      np.where(evaluable.values, "treated", "not evaluable"))
    established = (d["decline_established"].values if "decline_established" in d
                   else np.ones(len(status), bool))
    if d.attrs.get("flat_runin", "exclude") == "exclude":
        status = np.where((status == "treated") & ~established, "flat run-in", status)
    if "arm" in d:
        status = np.where(d["arm"].values != "treated", d["arm"].values, status)
    floored = d["floor"].sum("cycle").values if "floor" in d else np.zeros(len(status), int)
    nan = np.full(len(status), np.nan)
    info = pd.DataFrame({
        "patient": d["patient"].values,
        "status": status,
        "n_cycles": d["n_cycles"].values,
        "pre_slope_mean": beta.mean(SAMPLE).values,
        "pre_slope_ci_2.5": beta.quantile(CI[0], SAMPLE).values,
        "pre_slope_ci_97.5": beta.quantile(CI[1], SAMPLE).values,
        "runin_ls_slope": d["runin_slope"].values if "runin_slope" in d else nan,
        "decline_established": established,
        "floored_cycles": floored,
    })
    change = slope_change_draws(idata)
    if change is not None:
        with warnings.catch_warnings():  # patients without a cycle: all-NaN draws, NaN row
            warnings.simplefilter("ignore", RuntimeWarning)
            info["change_mean"] = change.mean(SAMPLE).values
            info["change_ci_2.5"] = change.quantile(CI[0], SAMPLE).values
            info["change_ci_97.5"] = change.quantile(CI[1], SAMPLE).values
    out = info.merge(table, on="patient", how="left")
    out.attrs["note"] = CAVEAT
    return out


def _count_draws(exceed: xr.DataArray, evaluable: xr.DataArray, dim: str) -> np.ndarray:
    """Draws of the number of responders: sum over evaluable units of 1[rho > c]."""
    return exceed.where(evaluable, False).sum(dim).values.reshape(-1)


def responder_table(idata: xr.DataTree, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
    """Posterior distribution of the number of responders, overall and per cycle.

    Parameters
    ----------
    idata : xarray.DataTree
    threshold : float or sequence of float, default 0.25

    Returns
    -------
    pandas.DataFrame
        Columns ``scope`` ("overall" or "cycle k"), ``threshold``, ``n_evaluable`` (treated
        patients with a visit after the injection(s) in scope), ``responders`` (r = 0..n),
        ``p_eq`` = P(R = r) and ``p_ge`` = P(R >= r). Overall, a responder has overall slowing
        rho_i > c; in cycle k, rho_ik > c.
    """
    th = _thresholds(threshold)
    d = _design(idata)
    rho = _posterior(idata)["rho"]
    rho_i = patient_slowing_draws(idata)
    rows = []
    scopes = [("overall", rho_i, rho_i.notnull().all(SAMPLE), "patient")]
    for k in d["cycle"].values:
        scopes.append((f"cycle {k}", rho.sel(cycle=k), _evaluable(d).sel(cycle=k), "patient"))
    for c in th:
        for scope, draws, evaluable, dim in scopes:
            n = int(evaluable.sum())
            counts = _count_draws(draws > c, evaluable, dim)
            pmf = np.bincount(counts, minlength=n + 1)[: n + 1] / counts.size
            ge = pmf[::-1].cumsum()[::-1]
            for r in range(n + 1):
                rows.append({"scope": scope, "threshold": c, "n_evaluable": n, "responders": r,
                             "p_eq": pmf[r], "p_ge": ge[r]})
    out = pd.DataFrame(rows)
    out.attrs["note"] = CAVEAT
    return out


def cycle_table(idata: xr.DataTree, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
    """Population slowing per cycle, with the number of responders in that cycle.

    Parameters
    ----------
    idata : xarray.DataTree
    threshold : float or sequence of float, default 0.25

    Returns
    -------
    pandas.DataFrame
        One row per cycle: ``cycle``, ``n_patients`` (treated-arm patients with a visit
        during the cycle and no domain at its floor), ``n_floor_excluded`` (left out for a
        floor),
        ``patient_months`` (months observed), ``mean``, ``sd``, ``ci_2.5``, ``ci_97.5`` of the
        population slowing rho_k (at the reference interval), ``p_gt_0`` and ``p_gt_<c>``, and
        per threshold ``responders_mean_<c>``, ``responders_median_<c>`` (posterior mean and
        median number of patients with rho_ik > c) and ``responders_ci_<c>`` (95% interval,
        "lo-hi"); the median and interval are quantiles of the count (whole numbers: the
        smallest r with P(R <= r) >= q).
    """
    th = _thresholds(threshold)
    d = _design(idata)
    post = _posterior(idata)
    table = _stats(post["rho_cycle"], th, zero=True)
    obs = _evaluable(d)
    table.insert(1, "n_patients", obs.sum("patient").values)
    if "floor" in d:
        eff = d["effect"] if "effect" in d else d["treated"]
        table.insert(2, "n_floor_excluded", (d["observed"] & eff & d["floor"]).sum(
            "patient").values)
    table.insert(2, "patient_months", (d["cycle_length"] * obs).sum("patient").values)
    for c in th:
        means, meds, cis = [], [], []
        for k in d["cycle"].values:
            counts = _count_draws(post["rho"].sel(cycle=k) > c, obs.sel(cycle=k), "patient")
            means.append(counts.mean())
            # quantiles of a count: the smallest r with P(R <= r) >= q, always a whole number
            med, lo, hi = np.quantile(counts, (0.5, *CI), method="inverted_cdf")
            meds.append(int(med))
            cis.append(f"{lo:.0f}-{hi:.0f}")
        table[f"responders_mean_{c:g}"] = means
        table[f"responders_median_{c:g}"] = meds
        table[f"responders_ci_{c:g}"] = cis
    table.attrs["note"] = CAVEAT
    return table


def population_table(
    idata: xr.DataTree, threshold: float | Sequence[float] = 0.25
) -> pd.DataFrame:
    """Population slowing: over all cycles, per cycle, and for a new patient.

    Parameters
    ----------
    idata : xarray.DataTree
    threshold : float or sequence of float, default 0.25

    Returns
    -------
    pandas.DataFrame
        Rows ``rho_bar`` (population slowing over all cycles at the reference interval g_ref,
        e.g. 3 months: the cycle slowings weighted by the patient-months observed in each),
        ``rho_cycle[k]`` (each cycle, at the reference interval), ``new_patient`` (the
        predictive overall slowing of a new patient at the reference interval: its
        ``p_gt_<c>`` is the probability that a new patient responds), then
        ``rho_bar_given`` and ``rho_cycle_given[k]``: the same at the intervals the patients
        actually had (each cycle at its own mean interval; what the trial delivered, and
        the better-determined number, since the data identify each cycle at its own interval).
        Columns ``quantity``, ``role``, ``mean``, ``sd``, ``ci_2.5``, ``ci_97.5``,
        ``p_gt_0``, ``p_gt_<c>``; ``attrs["interval_ref"]`` (months),
        ``attrs["given_interval"]`` (each cycle's mean interval, months; NaN without one) and
        ``attrs["primary"]`` (:data:`PRIMARY_ESTIMAND`, in words). ``role`` is "primary" for
        ``rho_bar_given`` (the primary estimand: the population slowing over all cycles at the
        intervals the patients had, read as P(rho_bar > threshold)), "secondary" for the same
        at the reference interval and for a new patient, and "exploratory" for each cycle:
        a trial is not powered for four cycle-wise claims.
    """
    th = _thresholds(threshold)
    post = _posterior(idata)
    parts = [_stats(post["rho_bar"], th, zero=True).assign(quantity="rho_bar")]
    per = _stats(post["rho_cycle"], th, zero=True)
    per["quantity"] = [f"rho_cycle[{k}]" for k in per.pop("cycle")]
    parts.append(per)
    parts.append(_stats(post["rho_new"], th, zero=True).assign(quantity="new_patient"))
    given, bar_given, g_ref, g_mean = given_interval_draws(idata)
    parts.append(_stats(bar_given, th, zero=True).assign(quantity="rho_bar_given"))
    per = _stats(given, th, zero=True)
    per["quantity"] = [f"rho_cycle_given[{k}]" for k in per.pop("cycle")]
    parts.append(per)
    out = pd.concat(parts, ignore_index=True)
    out["role"] = [estimand_role(q) for q in out["quantity"]]
    out = out[["quantity", "role"] + [c for c in out.columns if c not in ("quantity", "role")]]
    out.attrs["note"] = CAVEAT
    out.attrs["interval_ref"] = g_ref
    out.attrs["given_interval"] = g_mean
    out.attrs["primary"] = PRIMARY_ESTIMAND
    return out


#: The primary estimand, declared before the data are seen (the population table's "primary"
#: row; per-cycle results are exploratory).
PRIMARY_ESTIMAND = ("the population slowing over all cycles, at the intervals the patients "
                    "had (rho_bar_given), exceeding the responder threshold")


def estimand_role(quantity: str) -> str:
    """"primary", "secondary" or "exploratory" for a row of :func:`population_table`."""
    if quantity == "rho_bar_given":
        return "primary"
    if quantity in ("rho_bar", "new_patient"):
        return "secondary"
    return "exploratory"


def given_interval_draws(idata: xr.DataTree) -> tuple[xr.DataArray, xr.DataArray, float, list]:
    """Population slowing at the intervals the patients actually had.

    rho_k(given) = rho_k + theta * (mean g_k - g_ref), each cycle at the mean interval of its
    patients with a known interval (the model's sampled coordinate), and their patient-month
    weighted mean. Cycles without a known interval (an open last cycle) stay at g_ref.

    Returns
    -------
    given : xarray.DataArray
        (chain, draw, cycle).
    bar : xarray.DataArray
        (chain, draw).
    interval_ref : float
        g_ref, months.
    given_interval : list of float
        Each cycle's mean interval, months (NaN where no patient's interval is known).
    """
    post = _posterior(idata)
    d = _design(idata)
    g_ref = float(d.attrs.get("interval_ref", 3.0))
    shift = given_interval_shift(d, g_ref)
    given = post["rho_cycle"] + interval_effect_draws(idata) * shift.fillna(0.0)
    bar = given.dot(design_weights(d), dim="cycle")
    return given, bar, g_ref, (g_ref + shift).values.tolist()


def interval_effect_draws(idata: xr.DataTree) -> xr.DataArray:
    """Draws of theta on the slowing scale (change of slowing per extra month of interval)."""
    post = _posterior(idata)
    d = _design(idata)
    if d.attrs.get("parameterization", "ratio") == "additive":
        # the model's scale: the treated patients' mean natural rate (older fits: |mu_beta|)
        scale = post["effect_scale"] if "effect_scale" in post else np.abs(post["mu_beta"])
        return post["theta"] / scale
    return post["theta"]


def interval_table(
    idata: xr.DataTree,
    threshold: float | Sequence[float] = 0.25,
    intervals: Sequence[float] = (3.0, 4.0, 5.0, 6.0),
) -> pd.DataFrame:
    """Effect of the injection interval on slowing.

    Parameters
    ----------
    idata : xarray.DataTree
    threshold : float or sequence of float, default 0.25
    intervals : sequence of float, default (3, 4, 5, 6)
        Intervals (months) at which to predict population slowing.

    Returns
    -------
    pandas.DataFrame
        First row ``theta`` (change of slowing per extra month of interval; ``p_lt_0`` =
        P(theta < 0), i.e. longer intervals work less well), then one row per interval g with
        the population slowing rho_bar + theta (g - g_ref): ``quantity``, ``interval_months``,
        ``mean``, ``sd``, ``ci_2.5``, ``ci_97.5``, ``p_lt_0`` (theta only), ``p_gt_0`` and
        ``p_gt_<c>`` (predictions only).
    """
    th = _thresholds(threshold)
    post = _posterior(idata)
    d = _design(idata)
    ref = float(d.attrs.get("interval_ref", 3.0))
    theta = interval_effect_draws(idata)
    head = _stats(theta, [])
    head.insert(0, "interval_months", np.nan)
    head.insert(0, "quantity", "theta")
    head["p_lt_0"] = float((theta < 0).mean())
    rows = [head]
    for g in intervals:
        pred = post["rho_bar"] + theta * (float(g) - ref)
        s = _stats(pred, th, zero=True)
        s.insert(0, "interval_months", float(g))
        s.insert(0, "quantity", f"rho_bar at {g:g} months")
        rows.append(s)
    out = pd.concat(rows, ignore_index=True)
    out.attrs["note"] = CAVEAT + f" Reference interval g_ref = {ref:g} months."
    return out


def arm_contrast_table(idata: xr.DataTree) -> pd.DataFrame:
    """Two-arm comparison: the difference in slope change between the treated and control arms.

    For every posterior draw, the change of slope from the run-in (cycle slope minus run-in
    slope, points/month) is averaged over the observed cycles of each arm's patients, and the
    control arm's average is subtracted from the treated arm's: a positive difference means
    decline slowed more on treatment than on sham. Per cycle and over all cycles (weighted by
    the months observed). This is the comparison a randomised two-arm trial reports; the model's
    rho_k is the same contrast on the fractional scale.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit of data with ``arm="control"`` patients.

    Returns
    -------
    pandas.DataFrame
        Rows ``all cycles`` and ``cycle k``: ``scope``, ``n_treated``, ``n_control`` (patients
        with an observed cycle in scope), ``mean``, ``sd``, ``ci_2.5``, ``ci_97.5`` of the
        difference (points/month) and ``p_gt_0``. Empty when the fit has no control patient.
    """
    d = _design(idata)
    post = _posterior(idata)
    cols = ["scope", "n_treated", "n_control", "mean", "sd", "ci_2.5", "ci_97.5", "p_gt_0"]
    if "arm" not in d or "slope_runin" not in post:
        return pd.DataFrame(columns=cols)
    arm = d["arm"]
    obs = d["observed"] & d["has_cycle"]
    if "floor" in d and d.attrs.get("floors", "exclude") == "exclude":
        obs = obs & ~d["floor"]
    change = (post["slope"] - post["slope_runin"]).fillna(0.0)
    w = (d["cycle_length"] * obs).astype(float)
    rows = []
    for scope, sel in [("all cycles", None)] + [(f"cycle {k}", k) for k in d["cycle"].values]:
        ww = w if sel is None else w.where(w["cycle"] == sel, 0.0)
        means, counts = {}, {}
        for name in ("treated", "control"):
            wa = ww.where(arm == name, 0.0)
            counts[name] = int((wa.sum("cycle") > 0).sum())
            total = float(wa.sum())
            means[name] = (change * wa).sum(("patient", "cycle")) / total if total > 0 else None
        if means["treated"] is None or means["control"] is None:
            continue
        s = _stats(means["treated"] - means["control"], [], zero=True)
        rows.append({"scope": scope, "n_treated": counts["treated"],
                     "n_control": counts["control"]} | s.iloc[0].to_dict())
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["note"] = ("Difference between arms in the change of slope from the run-in "
                         "(points/month); positive = slower decline on "
                         "treatment than on sham.")
    return out
