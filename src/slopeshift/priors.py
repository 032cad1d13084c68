"""Prior configuration: defaults per outcome and parameterisation, merged with user priors.

Priors are plain configuration: ``{name: Prior(dist, **params)}``. User priors replace defaults
key by key (``defaults | user``); unknown keys are rejected with the list of valid names, and
nothing passed in is mutated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pymc as pm

__all__ = ["DOMAIN_KEYS", "DROPOUT_KEYS", "EFFECT_PRIOR_SETS", "PRIOR_DISTS", "Prior",
           "default_priors", "dropout_priors", "effect_prior_set", "effect_priors",
           "resolve_priors"]

#: Distributions a prior may use, with their parameter names.
PRIOR_DISTS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "HalfNormal": ("sigma",),
    "HalfStudentT": ("nu", "sigma"),
    "StudentT": ("nu", "mu", "sigma"),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "LogNormal": ("mu", "sigma"),
}

# What each key means, for documentation and error messages.
PRIOR_DOCS: dict[str, str] = {
    "mu_alpha": "population mean score at the first injection (outcome units)",
    "sd_alpha": "SD of the score at the first injection between patients",
    "mu_beta": "population mean pre-treatment slope (units/month; negative = decline)",
    "sd_beta": "SD of pre-treatment slopes between patients (units/month)",
    "rho_cycle": "population slowing in each cycle, rho_k (ratio; fraction of the pre-slope)",
    "delta_cycle": "population change of slope in each cycle, delta_k (additive; units/month)",
    "sd_patient": "SD of the patient's own responsiveness u_i",
    "sd_patient_cycle": "SD of cycle-to-cycle variation e_ik within a patient",
    "theta": "change of slowing per extra month of injection interval (per month)",
    "gamma": "effect of one SD of a patient covariate on the slowing",
    "sigma": "visit-to-visit noise SD (outcome units)",
    "nu": "degrees of freedom of the Student-t likelihood",
    "jump": "population mean acute jump at each injection (outcome units)",
    "sd_jump": "SD of the acute jump between patients (outcome units)",
    "sd_drift": "SD of the period-to-period drift of a patient's natural rate (units/month)",
    "acceleration": "systematic change of the natural rate per month of follow-up "
                    "(units/month per month; negative = decline speeds up)",
    "natural_cycle": "natural change of the rate in each cycle that a control arm measures "
                     "(units/month; with controls)",
    "natural_ratio": "with controls: the natural change in each cycle per unit of the "
                     "patient's persistent rate away from the median run-in rate (unitless; "
                     "0.2 = a patient declining 1 unit/month faster changes 0.2 units/month "
                     "more)",
    "natural_shift": "without controls: how far the natural change of this trial's patients "
                     "in each cycle may differ from the published natural history, beyond the "
                     "acceleration (units/month)",
    "mu_alpha_domain": "domain model: population mean of each ALSFRS-R domain subscore at the "
                       "first injection (points of 12)",
    "sd_alpha_domain": "domain model: SD of a domain subscore at the first injection between "
                       "patients (points)",
    "sigma_domain": "domain model: visit-to-visit noise SD of each domain subscore beyond the "
                    "visit's shared deviation (points)",
    "sigma_visit": "domain model: SD of the visit's deviation shared by the domains (a good or "
                   "bad day; points of the total, spread over the domains by their shares)",
    "sd_share": "domain model: SD between patients of the log share of the decline that each "
                "domain carries",
    "dropout_intercept": "dropout='selection': probit of being followed for less at the "
                         "median run-in slope (0 = one in two)",
    "dropout_slope": "dropout='selection': change of that probit per unit/month of the "
                     "patient's slope in their last cycle (negative = faster decliners leave "
                     "more; per units/month)",
}

#: Prior keys of the selection model of dropout (``SlopeShiftModel(dropout="selection")``).
DROPOUT_KEYS = ("dropout_intercept", "dropout_slope")

#: Prior keys of the four-domain model (``SlopeShiftModel(domains=True)``), in place of
#: ``mu_alpha``, ``sd_alpha`` and ``sigma`` of the total.
DOMAIN_KEYS = ("mu_alpha_domain", "sd_alpha_domain", "sigma_domain", "sigma_visit", "sd_share")
_TOTAL_ONLY = ("mu_alpha", "sd_alpha", "sigma")


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a PyMC distribution name and its parameters.

    Parameters
    ----------
    dist : str
        One of :data:`PRIOR_DISTS` (``"Normal"``, ``"HalfNormal"``, ...).
    **params : float
        The distribution's parameters, e.g. ``Prior("Normal", mu=-1, sigma=1)``.
    """

    dist: str
    params: dict[str, float] = field(default_factory=dict)

    def __init__(self, dist: str, **params: float):
        if dist not in PRIOR_DISTS:
            raise ValueError(
                f"unknown prior distribution {dist!r}; use one of {list(PRIOR_DISTS)}."
            )
        allowed = PRIOR_DISTS[dist]
        bad = [k for k in params if k not in allowed]
        missing = [k for k in allowed if k not in params]
        if bad or missing:
            raise ValueError(
                f"{dist} prior takes parameters {allowed}; got {sorted(params)}. "
                f"Example: Prior({dist!r}, " + ", ".join(f"{k}=1.0" for k in allowed) + ")"
            )
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", {k: float(v) for k, v in params.items()})

    def create(self, name: str, **kwargs) -> pm.Distribution:
        """Create the PyMC random variable ``name`` inside the current model context."""
        return getattr(pm, self.dist)(name, **self.params, **kwargs)

    def as_dist(self) -> pm.Distribution:
        """The unnamed distribution (``pm.<dist>.dist(...)``), e.g. for a prior on a transform."""
        return getattr(pm, self.dist).dist(**self.params)

    def log_density(self, x) -> np.ndarray:
        """The log density at ``x`` (elementwise, natural log; -inf outside the support), as
        PyMC computes it, without compiling anything: SciPy's densities for the families of
        :data:`PRIOR_DISTS` (PyMC for any other)."""
        from scipy import stats

        q = self.params
        x = np.asarray(x, dtype=float)
        if self.dist == "Normal":
            return stats.norm.logpdf(x, q["mu"], q["sigma"])
        if self.dist == "HalfNormal":
            return np.where(x >= 0, np.log(2.0) + stats.norm.logpdf(x, 0.0, q["sigma"]),
                            -np.inf)
        if self.dist == "StudentT":
            return stats.t.logpdf(x, q["nu"], q["mu"], q["sigma"])
        if self.dist == "HalfStudentT":
            return np.where(x >= 0, np.log(2.0) + stats.t.logpdf(x, q["nu"], 0.0, q["sigma"]),
                            -np.inf)
        if self.dist == "LogNormal":
            return stats.lognorm.logpdf(x, q["sigma"], scale=np.exp(q["mu"]))
        if self.dist == "Gamma":
            return stats.gamma.logpdf(x, q["alpha"], scale=1.0 / q["beta"])
        if self.dist == "Exponential":
            return stats.expon.logpdf(x, scale=1.0 / q["lam"])
        return np.asarray(pm.logp(self.as_dist(), x).eval())

    def to_dict(self) -> dict:
        """JSON-friendly form: ``{"dist": ..., **params}``."""
        return {"dist": self.dist, **self.params}

    @classmethod
    def from_value(cls, value: Prior | Mapping) -> Prior:
        """Accept a :class:`Prior` or a dict such as ``{"dist": "Normal", "mu": 0, "sigma": 1}``."""
        if isinstance(value, Prior):
            return value
        if isinstance(value, Mapping) and "dist" in value:
            params = {k: v for k, v in value.items() if k != "dist"}
            return cls(value["dist"], **params)
        raise TypeError(
            f"a prior must be a Prior or a dict with a 'dist' key, e.g. "
            f"{{'dist': 'Normal', 'mu': 0, 'sigma': 0.5}}; got {value!r}."
        )

    def __repr__(self) -> str:
        def show(k, v):
            if self.dist == "LogNormal" and k == "mu":  # the log of the median: show the median
                return f"mu=log({math.exp(v):.3g})"
            return f"{k}={v:g}"

        return f"{self.dist}({', '.join(show(k, v) for k, v in self.params.items())})"


# The screened population of persistent rates, from published natural history (docs/model.md):
# ALSFRS-R median 6-month slope -0.7 to -0.9 points/month, persistent-rate SD about 0.41 (the
# correlation 0.3 of consecutive 6-month slopes); FVC median -1.2 %/month (mean about -1.6),
# persistent-rate SD about 1.05.
_NATURAL_POPULATION = {
    "alsfrs_r": {"mu_beta": Prior("Normal", mu=-0.9, sigma=0.35),
                 "sd_beta": Prior("LogNormal", mu=math.log(0.45), sigma=0.35)},
    "fvc": {"mu_beta": Prior("Normal", mu=-1.6, sigma=0.8),
            "sd_beta": Prior("LogNormal", mu=math.log(1.05), sigma=0.35)},
}

# Slope scale per outcome (units/month): sets the additive defaults.
_SCALES = {"alsfrs_r": 1.0, "fvc": 2.5}


#: Named sets of slowing priors (ratio scale: fractions of the natural rate): the SD of each
#: cycle's population slowing rho_k (Normal, mean 0), and the HalfNormal scales of the patient's
#: own responsiveness (``sd_patient``) and of its cycle-to-cycle variation
#: (``sd_patient_cycle``). ``"default"`` is weakly informative: a cycle's mean slowing above 100%
#: (the motivating trial reported 107% in cycle 1) keeps a prior probability of 16%, and a
#: patient's slowing in a cycle spans about -1.9 to 1.9 (90%). ``"sceptical"`` (the defaults until
#: 2026-11-30) makes large effects unlikely (P(rho_k > 1) = 2%) and shrinks patients
#: strongly towards the cycle mean: a named alternative for sensitivity analysis.
#: ``"wide"`` is the other side. The additive parameterisation multiplies each by the outcome's
#: typical slope (1 point/month for ALSFRS-R, 2.5 %/month for FVC). docs/model.md shows what
#: each implies (prior predictive check).
EFFECT_PRIOR_SETS: dict[str, tuple[float, float, float]] = {
    "default": (1.0, 0.5, 0.3),
    "sceptical": (0.5, 0.3, 0.2),
    "wide": (1.5, 1.0, 0.6),
}


def effect_priors(name: str = "default", outcome: str = "alsfrs_r",
                  parameterization: str = "ratio") -> dict[str, Prior]:
    """A named set of slowing priors, to pass as ``SlopeShiftModel(data, priors=...)``.

    Parameters
    ----------
    name : {"default", "sceptical", "wide"}
        The set (:data:`EFFECT_PRIOR_SETS`).
    outcome : str, default "alsfrs_r"
        Sets the scale of the additive parameterisation (points/month or %/month); the ratio
        parameterisation's priors are fractions and do not depend on it.
    parameterization : {"ratio", "additive"}

    Returns
    -------
    dict of str to Prior
        ``rho_cycle`` (ratio) or ``delta_cycle`` (additive, units/month), ``sd_patient`` and
        ``sd_patient_cycle``.

    Examples
    --------
    >>> from slopeshift import effect_priors
    >>> effect_priors("sceptical")["rho_cycle"]
    Normal(mu=0, sigma=0.5)
    """
    if name not in EFFECT_PRIOR_SETS:
        raise ValueError(f"unknown set of slowing priors {name!r}; use one of "
                         f"{sorted(EFFECT_PRIOR_SETS)}.")
    if parameterization == "ratio":
        s, key = 1.0, "rho_cycle"
    elif parameterization == "additive":
        if outcome not in _SCALES:
            raise ValueError(f"the additive slowing priors need the outcome's typical slope; "
                             f"none is known for outcome {outcome!r}: give the priors "
                             f"'delta_cycle', 'sd_patient' and 'sd_patient_cycle' yourself.")
        s, key = _SCALES[outcome], "delta_cycle"
    else:
        raise ValueError(
            f"parameterization must be 'ratio' or 'additive', not {parameterization!r}."
        )
    rho, patient, patient_cycle = EFFECT_PRIOR_SETS[name]
    return {key: Prior("Normal", mu=0.0, sigma=rho * s),
            "sd_patient": Prior("HalfNormal", sigma=patient * s),
            "sd_patient_cycle": Prior("HalfNormal", sigma=patient_cycle * s)}


def effect_prior_set(priors: Mapping, outcome: str = "alsfrs_r",
                     parameterization: str = "ratio") -> str | None:
    """The name of the named set of slowing priors that ``priors`` use, if any.

    Parameters
    ----------
    priors : mapping of str to Prior or dict
        A model's priors (e.g. ``fit.config["priors"]``).
    outcome, parameterization : str
        As in :func:`effect_priors`.

    Returns
    -------
    str or None
        ``"default"``, ``"sceptical"`` or ``"wide"`` when the three slowing priors are exactly
        that set, else None (the user's own).
    """
    for name in EFFECT_PRIOR_SETS:
        try:
            wanted = effect_priors(name, outcome, parameterization)
        except ValueError:
            return None
        if all(k in priors and _same_prior(Prior.from_value(priors[k]), v)
               for k, v in wanted.items()):
            return name
    return None


def _same_prior(a: Prior, b: Prior) -> bool:
    """Equal distributions with parameters equal up to rounding (1e-9 relative)."""
    return a.dist == b.dist and a.params.keys() == b.params.keys() and all(
        math.isclose(a.params[k], b.params[k], rel_tol=1e-9, abs_tol=1e-12) for k in a.params)


def default_priors(outcome: str, parameterization: str = "ratio",
                   data_centre: float | None = None, natural: bool = True,
                   domains: bool = False) -> dict[str, Prior]:
    """Default priors for an outcome (the table in docs/model.md, with the reasons).

    Parameters
    ----------
    outcome : str
        ``"alsfrs_r"`` (points, months) or ``"fvc"`` (% predicted, months). Other outcomes have
        no defaults for their scale-dependent priors and must be given them.
    parameterization : {"ratio", "additive"}
        Which treatment-effect parameterisation the priors are for.
    data_centre : float, optional
        Centre of the observed scores: the mean of the ``mu_alpha`` prior.
    natural : bool, default True
        Priors for the model with natural drift (the default model). Its population of
        persistent rates (``mu_beta``, ``sd_beta``) is that of the patients **screened**, whose
        run-in rates the published natural history describes, so these two priors are
        informative (see docs/model.md); with ``natural=False`` they are the wide priors of the
        model without drift.
    domains : bool, default False
        Priors for the four-domain model of ALSFRS-R items (``SlopeShiftModel(domains=True)``):
        ``mu_alpha_domain``, ``sd_alpha_domain``, ``sigma_domain``, ``sigma_visit`` and
        ``sd_share`` in place of ``mu_alpha``, ``sd_alpha`` and ``sigma``.

    Returns
    -------
    dict of str to Prior
    """
    centre = 0.0 if data_centre is None else float(data_centre)
    if outcome == "fvc":
        scale = {
            "mu_alpha": Prior("Normal", mu=centre, sigma=20.0),
            "sd_alpha": Prior("HalfNormal", sigma=20.0),
            "mu_beta": Prior("Normal", mu=-2.5, sigma=2.0),
            "sd_beta": Prior("HalfNormal", sigma=2.5),
            "sigma": Prior("HalfNormal", sigma=8.0),
            "jump": Prior("Normal", mu=0.0, sigma=5.0),
            "sd_jump": Prior("HalfNormal", sigma=3.0),
            # natural history (docs/model.md, "Natural change"): drift SD about 1.3 %/month,
            # second 6-month window 1.1 %/month steeper -> about -0.18 %/month per month
            "sd_drift": Prior("LogNormal", mu=math.log(1.3), sigma=0.3),
            "acceleration": Prior("Normal", mu=-0.18, sigma=0.09),
            "natural_cycle": Prior("Normal", mu=0.0, sigma=2.5),
            "natural_shift": Prior("Normal", mu=0.0, sigma=0.4),
        }
    elif outcome == "alsfrs_r":
        scale = {
            "mu_alpha": Prior("Normal", mu=centre, sigma=10.0),
            "sd_alpha": Prior("HalfNormal", sigma=10.0),
            "mu_beta": Prior("Normal", mu=-1.0, sigma=1.0),
            "sd_beta": Prior("HalfNormal", sigma=1.0),
            "sigma": Prior("HalfNormal", sigma=3.0),
            "jump": Prior("Normal", mu=0.0, sigma=2.0),
            "sd_jump": Prior("HalfNormal", sigma=1.0),
            # natural history (docs/model.md, "Natural change"): consecutive 6-month slopes
            # correlate 0.3 -> drift SD about 0.5 points/month; the second window is 0.14
            # points/month steeper -> about -0.023 points/month per month
            "sd_drift": Prior("LogNormal", mu=math.log(0.5), sigma=0.25),
            "acceleration": Prior("Normal", mu=-0.023, sigma=0.012),
            "natural_cycle": Prior("Normal", mu=0.0, sigma=1.0),
            # a trial's own natural course strays from the pooled placebo figures: about 15%
            # of the median rate per cycle (docs/model.md, "Natural change")
            "natural_shift": Prior("Normal", mu=0.0, sigma=0.15),
        }
    else:
        scale = {}
    if natural and outcome in _NATURAL_POPULATION:
        scale |= _NATURAL_POPULATION[outcome]
    common = {
        "gamma": Prior("Normal", mu=0.0, sigma=0.2),
        "nu": Prior("Gamma", alpha=2.0, beta=0.1),
    }
    if natural:
        # with controls: how the natural change depends on the rate (unitless, any outcome);
        # weakly informative: a patient 1 unit/month faster than the median changes by up to
        # about 1 unit/month more or less per cycle
        common["natural_ratio"] = Prior("Normal", mu=0.0, sigma=0.5)
    if parameterization == "ratio":
        effect = effect_priors("default", outcome, parameterization) | {
            "theta": Prior("Normal", mu=0.0, sigma=0.1),
        }
    elif parameterization == "additive":
        s = _SCALES.get(outcome)
        effect = {} if s is None else effect_priors("default", outcome, parameterization) | {
            "theta": Prior("Normal", mu=0.0, sigma=0.1 * s),
        }
        common["gamma"] = Prior("Normal", mu=0.0, sigma=0.2 * (s or 1.0))
    else:
        raise ValueError(
            f"parameterization must be 'ratio' or 'additive', not {parameterization!r}."
        )
    out = scale | effect | common
    if domains and outcome == "alsfrs_r":
        out = {k: v for k, v in out.items() if k not in _TOTAL_ONLY} | {
            # a quarter of the total's centre and spread per domain; the total's visit-to-visit
            # scatter (SD 1.5-1.9 points, docs/model.md) is mostly shared by the domains
            "mu_alpha_domain": Prior("Normal", mu=centre / 4.0, sigma=4.0),
            "sd_alpha_domain": Prior("HalfNormal", sigma=4.0),
            "sigma_domain": Prior("HalfNormal", sigma=1.0),
            "sigma_visit": Prior("HalfNormal", sigma=2.0),
            "sd_share": Prior("HalfNormal", sigma=1.0),
        }
    return out


def dropout_priors(outcome: str) -> dict[str, Prior]:
    """Default priors of the selection model of dropout (``dropout="selection"``).

    P(followed for less) = Phi(dropout_intercept + dropout_slope (b_last - b_ref)), b_last the
    patient's slope in their last cycle and b_ref the median run-in slope (units/month). Both
    are weakly informative: the intercept Normal(0, 1.5) spans shares of 1% to 99%, and the
    slope Normal(0, 1 / scale) per units/month (scale 1 for ALSFRS-R, 2.5 for FVC) lets a
    patient declining 1 point/month faster than the median be from much less to much more
    likely to leave.

    Parameters
    ----------
    outcome : str

    Returns
    -------
    dict of str to Prior
    """
    scale = _SCALES.get(outcome, 1.0)
    return {"dropout_intercept": Prior("Normal", mu=0.0, sigma=1.5),
            "dropout_slope": Prior("Normal", mu=0.0, sigma=1.0 / scale)}


def required_keys(parameterization: str, natural: bool = True,
                  domains: bool = False, dropout: bool = False) -> list[str]:
    """Prior keys every model of this parameterisation needs (``natural``: with drift;
    ``domains``: the four-domain model of ALSFRS-R items; ``dropout``: with the selection
    model of dropout, ``dropout="selection"``)."""
    effect = "rho_cycle" if parameterization == "ratio" else "delta_cycle"
    keys = ["mu_alpha", "sd_alpha", "mu_beta", "sd_beta", effect, "sd_patient",
            "sd_patient_cycle", "theta", "gamma", "sigma", "nu", "jump", "sd_jump"]
    if domains:
        keys = [k for k in keys if k not in _TOTAL_ONLY + ("jump", "sd_jump")]
        keys += list(DOMAIN_KEYS)
    return keys + (["sd_drift", "acceleration", "natural_cycle", "natural_ratio",
                    "natural_shift"] if natural else []) + (list(DROPOUT_KEYS) if dropout
                                                            else [])


def resolve_priors(
    outcome: str,
    parameterization: str,
    user: Mapping | None,
    data_centre: float | None,
    natural: bool = True,
    domains: bool = False,
    dropout: bool = False,
) -> dict[str, Prior]:
    """Merge user priors into the defaults, rejecting unknown keys and reporting missing ones.

    Parameters
    ----------
    outcome, parameterization, data_centre
        As for :func:`default_priors`.
    user : mapping, optional
        ``{name: Prior or dict}``; replaces defaults key by key.
    natural : bool, default True
        Whether the model has natural drift (then ``sd_drift``, ``acceleration``,
        ``natural_cycle`` and ``natural_shift`` are needed too).
    domains : bool, default False
        Whether the model is the four-domain model (:data:`DOMAIN_KEYS` replace the total's
        intercept and noise priors).
    dropout : bool, default False
        Whether the model has the selection model of dropout (then :data:`DROPOUT_KEYS`).

    Returns
    -------
    dict of str to Prior
    """
    valid = required_keys(parameterization, natural, domains, dropout)
    user = dict(user or {})
    unknown = sorted(k for k in user if k not in valid)
    if unknown:
        raise ValueError(
            f"unknown prior name(s) {unknown} for the {parameterization} parameterisation; "
            f"valid names: {valid}."
        )
    defaults = {k: v for k, v in default_priors(outcome, parameterization, data_centre,
                                                natural, domains).items() if k in valid}
    if dropout:
        defaults |= dropout_priors(outcome)
    merged = defaults | {k: Prior.from_value(v) for k, v in user.items()}
    missing = [k for k in valid if k not in merged]
    if missing:
        raise ValueError(
            f"outcome {outcome!r} has no default priors for {missing}; pass them, e.g. "
            f"priors={{'{missing[0]}': Prior('HalfNormal', sigma=1.0)}}. "
            + "; ".join(f"{k}: {PRIOR_DOCS[k]}" for k in missing)
        )
    return merged
