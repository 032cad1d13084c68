"""How the headline moves: refits of the same data under named alternatives.

A published slowing should not hinge on one modelling choice. :func:`sensitivity` refits the
model of a :class:`~slopeshift.fit.FitResult` on the same data, with the same sampler settings
and seed, under alternatives that a reviewer asks about, and tabulates the headline numbers
beside the primary fit's:

- ``"jumps allowed"``: an acute change of score at each injection (``jump=True``), so that a
  gain right after an injection is not read as slowing;
- ``"sceptical prior"``: the named sceptical set of slowing priors
  (:data:`~slopeshift.priors.EFFECT_PRIOR_SETS`: rho_k Normal(0, 0.5), sd_patient
  HalfNormal(0.3), sd_patient_cycle HalfNormal(0.2) instead of Normal(0, 1), HalfNormal(0.5),
  HalfNormal(0.3)); priors a user set are scaled by the same factors;
- ``"wide priors"``: the named wide set (Normal(0, 1.5), HalfNormal(1), HalfNormal(0.6)), or
  a user's priors scaled by the same factors;
- ``"no natural change"``: the model before natural history was priced in (``drift=False``,
  ``enrolment=None``, ``floors="include"``): the run-in rate carried forward unchanged;
- ``"additive"``: the treatment as a change of slope in points/month with its own priors
  (``parameterization="additive"``), slowing derived by dividing by the pre-treatment rate.

Each refit costs about as much as the primary fit.

:func:`power_scaling` needs no refit: it asks how the posterior would move if the priors (or
the likelihood) were raised to a power near 1 (:func:`arviz_stats.psense_summary`, Kallioinen
et al. 2024), by importance sampling from the fit's own draws.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import arviz_stats
import pandas as pd
import xarray as xr

from slopeshift.fit import _constant
from slopeshift.priors import EFFECT_PRIOR_SETS, Prior, required_keys

if TYPE_CHECKING:
    from slopeshift.fit import FitResult
    from slopeshift.model import SlopeShiftModel

__all__ = ["ALTERNATIVES", "alternative_options", "format_power_scaling", "format_sensitivity",
           "log_prior", "power_scaling", "refit", "refit_model", "sensitivity"]

#: The named alternatives of :func:`sensitivity`, in order.
ALTERNATIVES = ("jumps allowed", "sceptical prior", "wide priors", "no natural change",
                "additive")

def _scaled(prior: Mapping, factor: float) -> dict:
    """A prior dict with its scale parameter (sigma) multiplied by ``factor``."""
    out = dict(prior)
    if "sigma" not in out:
        raise ValueError(f"cannot widen or narrow a {out.get('dist')} prior (no sigma).")
    out["sigma"] = float(out["sigma"]) * factor
    return out


def alternative_options(config: dict, name: str) -> dict[str, Any]:
    """The model options (and priors) of a named alternative to ``config``.

    Parameters
    ----------
    config : dict
        A fit's configuration (:attr:`FitResult.config`: options and ``priors``).
    name : str
        One of :data:`ALTERNATIVES`.

    Returns
    -------
    dict
        Keyword arguments of :class:`~slopeshift.model.SlopeShiftModel` that differ from
        ``config`` (``priors`` holds only the priors that change).
    """
    priors = config["priors"]
    effect = "rho_cycle" if config["parameterization"] == "ratio" else "delta_cycle"
    if name == "jumps allowed":
        return {"jump": True}
    if name in ("sceptical prior", "wide priors"):
        # the factors that take the default slowing priors to the named set, applied to the
        # fit's own (the defaults give the named set exactly; a user's are moved alike)
        target = EFFECT_PRIOR_SETS[name.split()[0]]
        factors = [t / d for t, d in zip(target, EFFECT_PRIOR_SETS["default"], strict=True)]
        keys = (effect, "sd_patient", "sd_patient_cycle")
        return {"priors": {k: _scaled(priors[k], f) for k, f in zip(keys, factors, strict=True)}}
    if name == "no natural change":
        return {"drift": False, "enrolment": None, "floors": "include"}
    if name == "additive":
        other = "additive" if config["parameterization"] == "ratio" else "ratio"
        return {"parameterization": other}
    raise ValueError(f"unknown alternative {name!r}; use one of {list(ALTERNATIVES)}.")


def refit_model(fit: FitResult, **changes: Any) -> SlopeShiftModel:
    """The model of ``fit`` with some options changed (not sampled); see :func:`refit`."""
    from slopeshift.model import SlopeShiftModel, _auto_dropout, _choose_effects, _is_marginal

    cfg = fit.config
    # every option of SlopeShiftModel stored in the config (all but the data and the priors)
    names = [n for n in inspect.signature(SlopeShiftModel).parameters if n not in ("data",
                                                                                  "priors")]
    options = {k: cfg[k] for k in names if k in cfg}
    # dropout chosen automatically is chosen again for the new options (and the same data);
    # configs saved before dropout="auto" stored it only when it was "selection"
    options["dropout"] = "auto" if cfg.get("dropout_auto") else cfg.get("dropout", "ignore")
    new_priors = dict(changes.pop("priors", {}))
    options |= changes
    if "effects" not in changes:
        options.pop("effects", None)  # chosen again for the new options
    inherited = dict(cfg["priors"])
    if options.get("drift", True) != cfg.get("drift", True):
        # with or without natural drift the population of persistent rates has different
        # defaults (informative for the screened population, or wide): take the new ones
        for key in ("mu_beta", "sd_beta"):
            inherited.pop(key, None)
    dropout = options["dropout"]
    if dropout == "auto":  # the choice the new model will make
        effects = _choose_effects(options.get("effects"), options.get("likelihood", "normal"),
                                  bool(options.get("censored")) or bool(options.get("domains")),
                                  bool(options.get("jump")))
        dropout = _auto_dropout(fit.data, _is_marginal(effects, bool(options.get("domains"))))
    valid = set(required_keys(options.get("parameterization", "ratio"),
                              bool(options.get("drift", True)),
                              bool(options.get("domains", False)),
                              dropout == "selection"))
    priors = {k: Prior.from_value(v) for k, v in inherited.items() if k in valid}
    priors |= {k: Prior.from_value(v) for k, v in new_priors.items()}
    return SlopeShiftModel(fit.data, **options, priors=priors)


def refit(fit: FitResult, **changes: Any) -> FitResult:
    """Refit ``fit``'s data with some options changed, the same sampler settings and seed.

    Parameters
    ----------
    fit : FitResult
        The primary fit.
    **changes
        Options of :class:`~slopeshift.model.SlopeShiftModel` to change; ``priors`` replaces
        the named priors only (the others stay as in ``fit``, except those the new options do
        not use, and ``mu_beta``/``sd_beta`` when ``drift`` changes, which take the new
        options' defaults).

    Returns
    -------
    FitResult
    """
    model = refit_model(fit, **changes)
    info = fit.fit_info
    return model.fit(draws=info["draws"], tune=info["tune"], chains=info["chains"],
                     random_seed=info["random_seed"], sampler=info["sampler"],
                     target_accept=info["target_accept"],
                     mass_matrix=info.get("mass_matrix", "diag"), progressbar=False,
                     check=False)


def _headline(fit: FitResult, threshold: float) -> dict[str, Any]:
    pop = fit.population(threshold).set_index("quantity")
    row = pop.loc["rho_bar_given"] if "rho_bar_given" in pop.index else pop.loc["rho_bar"]
    from slopeshift.tables import responder_counts

    overall = responder_counts(fit, threshold).set_index("scope").loc["overall"]
    diag = fit.diagnostics().attrs
    return {
        "rho_bar_mean": float(row["mean"]), "rho_bar_ci_2.5": float(row["ci_2.5"]),
        "rho_bar_ci_97.5": float(row["ci_97.5"]), "p_gt_0": float(row["p_gt_0"]),
        f"p_gt_{threshold:g}": float(row[f"p_gt_{threshold:g}"]),
        "responders_median": int(overall["median"]),
        "n_evaluable": int(overall["n_evaluable"]),
        "max_r_hat": float(diag["max_r_hat"]), "healthy": bool(diag["ok"]),
    }


def sensitivity(fit: FitResult, alternatives: Sequence[str] | None = None,
                threshold: float = 0.25) -> pd.DataFrame:
    """The headline under each named alternative beside the primary fit.

    Parameters
    ----------
    fit : FitResult
        The primary fit.
    alternatives : sequence of str, optional
        Names from :data:`ALTERNATIVES` (default: all of them that differ from ``fit``: "jumps
        allowed" is skipped for a fit with jumps, "no natural change" for one without drift;
        "additive" switches the parameterisation, whichever ``fit`` used).
    threshold : float, default 0.25
        Responder threshold (fraction of the pre-treatment rate).

    Returns
    -------
    pandas.DataFrame
        One row per fit, the primary first: ``analysis``, ``changes`` (what differs, in words),
        ``rho_bar_mean``, ``rho_bar_ci_2.5``, ``rho_bar_ci_97.5`` (the population slowing over
        all cycles at the intervals the patients had, a fraction), ``p_gt_0``, ``p_gt_<c>``,
        ``responders_median`` of ``n_evaluable`` (overall), ``shift`` (``rho_bar_mean`` minus
        the primary's), ``max_r_hat`` and ``healthy`` (sampler diagnostics in bounds).
    """
    cfg = fit.config
    if alternatives is None:
        alternatives = [a for a in ALTERNATIVES
                        if not (a == "jumps allowed" and cfg.get("jump"))
                        and not (a == "no natural change" and not cfg.get("drift", True))]
    rows = [{"analysis": "primary", "changes": "as fitted"} | _headline(fit, threshold)]
    for name in alternatives:
        changes = alternative_options(cfg, name)
        words = ", ".join(
            f"{k}={v!r}" for k, v in changes.items() if k != "priors"
        ) or ", ".join(f"{k} {Prior.from_value(v)!r}" for k, v in changes["priors"].items())
        other = refit(fit, **changes)
        rows.append({"analysis": name, "changes": words} | _headline(other, threshold))
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("rho_bar_ci_97.5") + 1, "shift",
               out["rho_bar_mean"] - out["rho_bar_mean"].iloc[0])
    out.attrs["note"] = (
        "Refits of the same data with the primary fit's sampler settings and seed. rho_bar: "
        "the population slowing over all cycles at the intervals the patients had (fraction "
        "of the pre-treatment rate); shift: its change from the primary fit.")
    return out


def format_sensitivity(table: pd.DataFrame, threshold: float = 0.25) -> pd.DataFrame:
    """The sensitivity table for print: percent of the pre-treatment rate, one decimal.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`sensitivity`.
    threshold : float, default 0.25
        The responder threshold the table was made with (fraction).

    Returns
    -------
    pandas.DataFrame
        Formatted strings: ``Analysis``, ``Changes``, ``Population slowing, % (95% CrI)``,
        ``Shift, percentage points``, ``P(slowing > 0)``, ``P(slowing > <c>%)``,
        ``Responders`` (posterior median / evaluable) and ``Sampling`` ("healthy" or "check").
    """
    from slopeshift.tables import format_estimate, format_probability

    pc = f"P(slowing > {100 * threshold:g}%)"
    rows = []
    for _, r in table.iterrows():
        rows.append({
            "Analysis": r["analysis"],
            "Changes": r["changes"],
            "Population slowing, % (95% CrI)": format_estimate(
                r["rho_bar_mean"], r["rho_bar_ci_2.5"], r["rho_bar_ci_97.5"], 1, scale=100.0),
            "Shift, percentage points": f"{100 * r['shift']:+.1f}",
            "P(slowing > 0)": format_probability(r["p_gt_0"]),
            pc: format_probability(r[f"p_gt_{threshold:g}"]),
            "Responders": f"{int(r['responders_median'])}/{int(r['n_evaluable'])}",
            "Sampling": "healthy" if r["healthy"] else "check",
        })
    out = pd.DataFrame(rows)
    out.attrs["note"] = (
        "Each alternative refits the same data with the primary fit's sampler settings and "
        "seed. Population slowing over all cycles at the intervals the patients had; shift: "
        "change from the primary analysis. Responders: posterior median number of patients "
        "whose overall slowing exceeds the threshold / patients evaluable.")
    return out


# posterior variable -> prior key (the population parameters whose priors the user sets)
_PRIOR_OF = {"mu_alpha": "mu_alpha", "sd_alpha": "sd_alpha", "mu_beta": "mu_beta",
             "sd_beta": "sd_beta", "theta": "theta", "gamma": "gamma", "sigma": "sigma",
             "nu": "nu", "sd_drift": "sd_drift", "acceleration": "acceleration",
             "sd_patient": "sd_patient", "sd_patient_cycle": "sd_patient_cycle",
             "jump": "jump", "sd_jump": "sd_jump", "natural_ratio": "natural_ratio"}


def log_prior(fit: FitResult) -> xr.Dataset:
    """The log prior density of each population parameter at every draw.

    Parameters
    ----------
    fit : FitResult

    Returns
    -------
    xarray.Dataset
        One variable per parameter with a prior (chain, draw): its log density summed over
        its elements (natural log). Parameters the model fixes (theta without an interval
        effect, the slowing SDs without slowing) are left out; the cycle means at the
        reference interval carry their prior (one value when the cycles share it).
    """
    model = refit_model(fit)
    pr = model.priors
    post = fit.posterior
    out = {}
    cfg = fit.config
    names = dict(_PRIOR_OF)
    names["natural_cycle"] = ("natural_cycle" if model._constants()["controls"]
                              else "natural_shift")
    effect = "rho_cycle" if cfg["parameterization"] == "ratio" else "delta_cycle"
    if cfg.get("slowing", "per_cycle") != "none":
        names[effect] = effect
    for var, key in names.items():
        if var not in post or key not in pr:
            continue
        draws = post[var]
        if _constant(draws):
            continue  # fixed by the model
        if var == effect and cfg.get("slowing") == "common":
            draws = draws.isel(cycle=0)
        # SciPy's densities: PyMC's pm.logp(...).eval() compiled a function per
        # parameter, most of a report's power-scaling time
        lp = pr[key].log_density(draws.values)
        extra = tuple(range(2, lp.ndim))
        out[var] = (("chain", "draw"), lp.sum(axis=extra) if extra else lp)
    return xr.Dataset(out, coords={"chain": post["chain"].values, "draw": post["draw"].values})


#: Quantities whose power-scaling sensitivity :func:`power_scaling` reports by default.
POWER_SCALING_QUANTITIES = ("rho_bar_given", "rho_cycle", "theta", "sd_patient",
                            "sd_patient_cycle", "mu_beta", "sd_beta", "sd_drift",
                            "acceleration", "sigma")


def power_scaling(fit: FitResult, var_names: Sequence[str] | None = None,
                  threshold: float = 0.05) -> pd.DataFrame:
    """Prior and likelihood sensitivity by power-scaling (no refit).

    Parameters
    ----------
    fit : FitResult
    var_names : sequence of str, optional
        Posterior quantities to check (default :data:`POWER_SCALING_QUANTITIES` present in
        the fit; ``rho_bar_given`` is the primary estimand, the population slowing at the
        intervals the patients had).
    threshold : float, default 0.05
        Sensitivity (cumulative Jensen-Shannon distance per unit log power) above which a
        quantity is called sensitive (ArviZ's default).

    Returns
    -------
    pandas.DataFrame
        :func:`arviz_stats.psense_summary`: one row per quantity (and element), ``prior`` and
        ``likelihood`` sensitivity and ``diagnosis`` ("potential strong prior / weak
        likelihood", "potential prior-data conflict" or a check mark). The prior is every
        population parameter's prior (:func:`log_prior`); the likelihood is each patient's
        scores given the sampled parameters, with the enrolment selection term.
    """
    from slopeshift.loo import enrolment_log_likelihood
    from slopeshift.summaries import given_interval_draws

    model = refit_model(fit)
    post = fit.posterior
    _, bar, _, _ = given_interval_draws(fit.idata)
    post = post.assign(rho_bar_given=bar)
    names = list(var_names or [v for v in POWER_SCALING_QUANTITIES if v in post])
    keep = [v for v in names if v in post and not _constant(post[v])]
    missing = [v for v in names if v not in post]
    if missing:
        raise ValueError(f"no posterior quantity {missing}; choose from {sorted(post.data_vars)}.")
    ll = fit.idata["log_likelihood"]["y"]
    par = model._posterior_arrays(fit.posterior)
    enrol = enrolment_log_likelihood(model, par).reshape(ll.shape)
    tree = xr.DataTree.from_dict({
        "posterior": post[keep],
        "log_prior": log_prior(fit),
        "log_likelihood": xr.Dataset({"y": ll + enrol}),
    })
    log = logging.getLogger("arviz_stats.psense")
    level = log.level
    log.setLevel(logging.ERROR)  # ArviZ logs general advice; the diagnosis column says it
    try:
        table = arviz_stats.psense_summary(tree, var_names=keep, threshold=threshold,
                                           round_to=6)
    finally:
        log.setLevel(level)
    table.index.name = "quantity"
    table.attrs["threshold"] = threshold
    return table


def format_power_scaling(table: pd.DataFrame) -> pd.DataFrame:
    """The power-scaling table for print (three decimals, plain-words diagnosis).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`power_scaling`.

    Returns
    -------
    pandas.DataFrame
        ``Quantity``, ``Prior sensitivity``, ``Likelihood sensitivity``, ``Diagnosis``.
    """
    rows = []
    for name, r in table.iterrows():
        diag = str(r["diagnosis"])
        rows.append({
            "Quantity": str(name),
            "Prior sensitivity": f"{float(r['prior']):.3f}",
            "Likelihood sensitivity": f"{float(r['likelihood']):.3f}",
            "Diagnosis": "not sensitive" if diag == "\u2713" else diag,
        })
    out = pd.DataFrame(rows)
    out.attrs["note"] = (
        "Power-scaling sensitivity (cumulative Jensen-Shannon distance when the priors of the "
        "population parameters, or the likelihood, are raised to a power near 1; Kallioinen "
        f"et al. 2024). Above {table.attrs.get('threshold', 0.05):g}: sensitive. A quantity "
        "sensitive to the prior but not to the likelihood rests on its prior.")
    return out
