"""A self-contained HTML report of a fit, its publication tables and manuscript paragraphs.

:func:`write_report` writes ``report.html`` (figures embedded as base64 PNG, no external files),
the tables of :mod:`slopeshift.tables` as CSV, Markdown and LaTeX, and the generated methods and
results paragraphs as plain text. Presentation only: every number comes from the fit's
summary tables, :mod:`slopeshift.tables`, :mod:`slopeshift.plots` and the fit's diagnostics.
"""

from __future__ import annotations

import html
import platform
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

from slopeshift import _render, plots
from slopeshift.data import DAYS_PER_MONTH
from slopeshift.fit import ESS_MIN, RHAT_MAX
from slopeshift.priors import Prior, effect_prior_set
from slopeshift.summaries import CAVEAT, natural_history_note
from slopeshift.tables import (
    cycle_table,
    export_table,
    format_number,
    format_probability,
    interval_table,
    patient_table,
    population_table,
    responder_counts,
)

if TYPE_CHECKING:
    from slopeshift.fit import FitResult

__all__ = ["PACKAGES", "methods_paragraph", "results_paragraph", "software_versions",
           "write_report"]

#: Packages whose versions the report and the methods paragraph cite.
PACKAGES = ("slopeshift", "pymc", "pytensor", "arviz", "nutpie", "numpy")
_DISPLAY = {"slopeshift": "slopeshift", "pymc": "PyMC", "pytensor": "PyTensor",
            "arviz": "ArviZ", "nutpie": "nutpie", "numpy": "NumPy"}
_SAMPLERS = {
    "nutpie": "the No-U-Turn sampler (NUTS) as implemented in nutpie",
    "pymc": "PyMC's No-U-Turn sampler (NUTS)",
    "numpyro": "NumPyro's No-U-Turn sampler (NUTS)",
}
_PRIOR_LABELS = {
    "mu_alpha": "population mean score at the first injection",
    "sd_alpha": "its between-patient SD",
    "mu_beta": "population mean natural rate in the run-in (per month)",
    "sd_beta": "its between-patient SD",
    "rho_cycle": "population slowing in each cycle",
    "delta_cycle": "population change of slope in each cycle (per month)",
    "sd_patient": "SD of the patients' own responsiveness",
    "sd_patient_cycle": "SD of cycle-to-cycle variation within a patient",
    "theta": "interval effect (per month of interval)",
    "gamma": "effect of one SD of each patient covariate",
    "sigma": "residual SD",
    "nu": "Student-t degrees of freedom",
    "jump": "mean acute change at an injection",
    "sd_jump": "its between-patient SD",
    "mu_alpha_domain": "population mean of each domain subscore at the first injection",
    "sd_alpha_domain": "its between-patient SD, per domain",
    "sigma_domain": "residual SD of each domain subscore",
    "sigma_visit": "SD of the visit's deviation shared by the domains",
    "sd_share": "between-patient SD of each domain's log share of the decline",
    "sd_drift": "SD of the natural drift of a patient's rate between periods (per month)",
    "acceleration": "systematic change of the natural rate (per month, per month)",
    "natural_cycle": "natural change of the rate in each cycle beyond the acceleration "
                     "(measured by controls; otherwise the natural_shift prior)",
    "natural_shift": "prior SD of a single-arm trial's own natural change per cycle",
    "natural_ratio": "with controls: change of each cycle's natural change per unit of the "
                     "patient's rate (unitless)",
    "dropout_intercept": "probit of being followed for less, at the median run-in slope",
    "dropout_slope": "its change per unit/month of the last cycle's slope",
}
#: Above this many patients the report leaves the per-patient forest plot out.
_MAX_FOREST = 200


# ---------------------------------------------------------------------- text
def software_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of Python and ``packages``.

    Parameters
    ----------
    packages : sequence of str, default :data:`PACKAGES`
        Distribution names (as given to ``pip``).

    Returns
    -------
    dict of str to str
        ``{"python": "3.12.x", name: version or "not installed", ...}``.
    """
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _prior_text(spec: dict) -> str:
    prior = Prior.from_value(spec)
    return f"{prior.dist}({', '.join(f'{v:.3g}' for v in prior.params.values())})"


def _used_priors(config: dict) -> list[str]:
    effect = "rho_cycle" if config["parameterization"] == "ratio" else "delta_cycle"
    keys = ["mu_alpha", "sd_alpha", "mu_beta", "sd_beta", effect, "sd_patient",
            "sd_patient_cycle", "theta"]
    if config.get("domains"):
        keys = ["mu_alpha_domain", "sd_alpha_domain"] + keys[2:]
    if config.get("covariates"):
        keys.append("gamma")
    keys += (["sigma_domain", "sigma_visit", "sd_share"] if config.get("domains")
             else ["sigma"])
    if config.get("likelihood") == "student_t":
        keys.append("nu")
    if config.get("jump"):
        keys += ["jump", "sd_jump"]
    if config.get("drift"):
        keys += ["sd_drift", "acceleration", "natural_cycle", "natural_ratio", "natural_shift"]
    if config.get("dropout") == "selection":
        keys += ["dropout_intercept", "dropout_slope"]
    return [k for k in keys if k in config["priors"]]


def _interval_phrase(config: dict) -> str:
    interval = config.get("interval", "cycle_length")
    if interval == "cycle_length":
        return "the months from an injection to the next, i.e. the cycle length"
    if interval == "since_previous":
        return "the months since the previous injection"
    return f"the per-injection covariate '{interval}'"


def _p_phrase(label: str, p: float) -> str:
    text = format_probability(p, 2)
    if text[0] in "<>":
        return f"{label} {text[0]} {text[1:]}"
    return f"{label} = {text}"


def _pct_ci(row: pd.Series) -> str:
    return (f"{format_number(100 * row['mean'])}% (95% CrI {format_number(100 * row['ci_2.5'])}"
            f" to {format_number(100 * row['ci_97.5'])})")


def _diagnostic_phrase(fit: FitResult) -> tuple[bool, str]:
    a = fit.diagnostics().attrs
    numbers = (f"maximum R-hat {a['max_r_hat']:.3f}, minimum bulk and tail ESS "
               f"{a['min_ess_bulk']:.0f} and {a['min_ess_tail']:.0f}, {a['divergences']} "
               f"divergent transition{'s' if a['divergences'] != 1 else ''} of {a['draws']}")
    return bool(a["ok"]), numbers


def methods_paragraph(fit: FitResult, threshold: float = 0.25) -> str:
    """A methods paragraph for a manuscript, generated from the fit's configuration.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).

    Returns
    -------
    str
        Plain English: the model, priors, sampler settings and seed, convergence criteria
        and whether they were met, the responder definition, and the versions of slopeshift,
        PyMC, PyTensor, ArviZ, nutpie and NumPy; it states the natural-history assumption
        and what the slowing is relative to.
    """
    cfg = fit.config
    spec = fit.data.spec
    info = fit.fit_info
    pct = f"{100 * threshold:g}%"
    ratio = cfg["parameterization"] == "ratio"
    s = [
        ("The four ALSFRS-R domain subscores (points; the latent total their sum)"
         if cfg.get("domains") else f"{spec.label} scores ({spec.unit})")
        + " were analysed with a Bayesian hierarchical "
        "piecewise-linear (broken-stick) model. Time was measured in months since each "
        f"patient's first injection (1 month = {DAYS_PER_MONTH} days). Each patient had an "
        "expected score at the first injection and a pre-treatment (run-in) slope, both drawn "
        "from population normal distributions, and a slope in each treatment cycle, a cycle "
        "running from one injection to the next (the last to the patient's last visit)."
    ]
    base = ("the patient's natural rate in that cycle (the persistent run-in rate, changed "
            "by the natural-history acceleration" + (" and the change the controls measured"
                                                     if _has_controls(fit) else "") + ")"
            if cfg.get("drift") else "the run-in slope")
    drift = (f" plus a natural drift of the rate, normal with an SD estimated ({spec.unit}/month;"
             " the run-in rate drifts likewise)" if cfg.get("drift") else "")
    if ratio:
        s.append(f"The slope in cycle k of patient i was {base} multiplied by "
                 f"(1 \u2212 \u03c1_ik){drift}, so that \u03c1_ik is the fractional slowing of "
                 "decline relative to the patient's natural rate (0, no change; 0.25, 25% "
                 "slower decline; 1, decline halted).")
    else:
        s.append(f"The slope in cycle k of patient i was {base} plus a change "
                 f"\u03b4_ik ({spec.unit}/month){drift}; the slowing \u03c1_ik was derived as "
                 "\u03b4_ik divided by the absolute natural rate.")
    s.append(natural_history_note(cfg))
    sym = "\u03c1" if ratio else "\u03b4"
    cov = cfg.get("covariates") or []
    named = cfg.get("interval", "cycle_length") in ("cycle_length", "since_previous")
    ref = f"{cfg['interval_ref']:g}{' months' if named else ''}"
    s.append(
        f"The model for {sym}_ik was {sym}_ik = {sym}_k + \u03b8 (g_ik \u2212 "
        f"{cfg['interval_ref']:g}) + u_i + e_ik"
        f"{' + \u03b3\u1d40x_i' if cov else ''}, where {sym}_k is the population value in "
        f"cycle k at the reference interval of {ref}, \u03b8 the change per unit of the "
        f"injection interval g_ik ({_interval_phrase(cfg)}), "
        + (f"\u03b3 the effects of the standardised patient covariates x_i "
           f"({', '.join(cov)}), " if cov else "")
        + "u_i the patient's own responsiveness and e_ik its cycle-to-cycle variation, both "
        "normal with mean 0 and estimated SDs."
    )
    if cfg.get("effects") == "marginal":
        s.append("For sampling, u_i and e_ik were integrated out of the likelihood exactly "
                 "(they enter the scores linearly with normal priors); for every posterior draw "
                 "they were then drawn from their exact conditional posterior.")
    if cfg.get("jump"):
        s.append("An acute change of score at each injection was also estimated.")
    if cfg.get("dropout") == "selection":
        s.append("Dropout was modelled as possibly informative (a shared-parameter selection "
                 "model): the probability that a patient was followed for less than 80% of "
                 "the arm's longest follow-up was a probit in the patient's slope in their "
                 "last cycle, integrated exactly over that slope's conditional posterior, so "
                 "that patients who left because they declined fast did not make the "
                 "remaining patients' cycles look slowed"
                 + (" (chosen automatically: a single-arm analysis in which some patients "
                    "were followed for less)." if cfg.get("dropout_auto") else "."))
    elif cfg.get("dropout_auto") and cfg.get("dropout") == "ignore":
        s.append("Missing visits were taken as missing at random (dropout was not modelled: "
                 + ("the comparison with controls, who leave alike, measures its effect)."
                    if _has_controls(fit) else
                    "this model's effects are not integrated out exactly, which the "
                    "selection model of dropout needs)."
                    if cfg.get("effects") != "marginal" or cfg.get("domains") else
                    "no patient was followed for less)."))
    resid = ("Student-t residuals (robust to outlying scores)"
             if cfg.get("likelihood") == "student_t" else "normal residuals")
    if cfg.get("domains"):
        s.append(
            "The four ALSFRS-R domains (bulbar, fine motor, gross motor, respiratory; 0-12 "
            "points each) were modelled instead of the total: each domain had its own score at "
            "the first injection and carried a patient-specific share of the patient's decline "
            "(shares summing to 1, log-shares varying between patients) and of a deviation of "
            f"each visit shared by the domains, with its own {resid}, censored at 0, so that a "
            "domain at its floor did not flatten the decline"
            + ("" if cfg.get("floors") == "include" else
               "; within a domain, each cycle's share was scaled by the part of the domain's "
               "run-in decline that its items still above 0 could carry")
            + "; slopes and slowing are those of the latent total. The effects u_i, e_ik "
            "and the drift were sampled as latent parameters. This model is experimental "
            "(checked on few simulated trials) and is meant as a sensitivity analysis beside "
            "the model of the total."
        )
    else:
        if cfg.get("censored"):
            lo, hi = spec.censor_bounds
            bounds = " and ".join(f"{b:g}" for b in (lo, hi) if b is not None)
            resid += f", censored at the limits of the scale ({bounds})"
        s.append(f"Scores were modelled with {resid}.")
    priors = "; ".join(f"{_PRIOR_LABELS.get(k, k)} {_prior_text(cfg['priors'][k])}"
                       for k in _used_priors(cfg))
    named = effect_prior_set(cfg["priors"], fit.data.outcome,
                             cfg["parameterization"])
    s.append(f"Priors were: {priors}" + (
        f" (the slowing priors are slopeshift's \"{named}\" set"
        + (", weakly informative" if named == "default" else "") + ")" if named else "") + ".")
    target = info.get("target_accept")
    s.append(
        f"The posterior was sampled with {_SAMPLERS.get(info['sampler'], info['sampler'])}: "
        f"{info['chains']} chains of {info['draws']} draws after {info['tune']} tuning steps "
        f"each, random seed {info['random_seed']}"
        f"{f', target acceptance {target:g}' if target is not None else ''}."
    )
    ok, numbers = _diagnostic_phrase(fit)
    s.append(
        f"Convergence was assessed by the rank-normalised R-hat (criterion \u2264 {RHAT_MAX}), "
        f"bulk and tail effective sample sizes (ESS \u2265 {ESS_MIN}) and divergent "
        f"transitions (none allowed); "
        + (f"all criteria were met ({numbers})." if ok else
           f"the criteria were NOT met ({numbers}), so the results are provisional.")
    )
    s.append(
        "A patient's overall slowing was the cycle slowings weighted by the months of each "
        f"observed cycle; a patient (or a patient-cycle) was a responder when the slowing "
        f"exceeded {pct}, and the number of responders was summarised by its posterior "
        "distribution (median and 95% interval). Patients never injected informed the run-in "
        "slopes but were excluded from every responder count. The population slowing over all "
        "cycles averaged the cycle values weighted by the patient-months observed in each. "
        "Estimates are posterior means with 95% equal-tailed credible intervals (CrI)."
    )
    if cfg.get("flat_runin", "exclude") == "exclude" and "decline_established" in fit.design:
        s.append(
            "Because a slowing is a fraction of a decline, treated patients whose run-in did not "
            "establish decline (least-squares run-in slope plus 1.645 standard errors, with the "
            "residual SD pooled over run-ins, not below 0) were excluded from responder counts "
            "and from the weights of the population slowing, and are reported by their change "
            "of slope in points/month instead."
        )
    v = software_versions()
    cited = ", ".join(f"{_DISPLAY[k]} {v[k]}" for k in PACKAGES[1:])
    s.append(f"Analyses used slopeshift {v['slopeshift']} ({cited}) on Python {v['python']}.")
    if not _has_controls(fit):
        s.append("Without a control arm, slowing is relative to each patient's natural rate as "
                 "the natural-history assumptions above project it.")
    return " ".join(s)


def _has_controls(fit: FitResult) -> bool:
    d = fit.design
    return bool("arm" in d and ((d["arm"] != "treated") & d["treated"]).any())


def results_paragraph(fit: FitResult, threshold: float = 0.25) -> str:
    """A results paragraph for a manuscript, generated from the fit's summary tables.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).

    Returns
    -------
    str
        Plain English: the data, population slowing over all cycles and per cycle (percent of
        the pre-treatment rate, 95% CrI), responders per cycle ("15/19") and overall, the
        interval effect, a new patient's predictive slowing, whether the diagnostics were in
        bounds, and the caveat that without a control arm slowing is relative to each
        patient's own run-in (:data:`slopeshift.summaries.CAVEAT`).
    """
    c = float(threshold)
    pct = f"{100 * c:g}%"
    pcol = f"p_gt_{c:g}"
    o = fit.data.overview()
    pop = fit.population(c).set_index("quantity")
    counts = responder_counts(fit, c).set_index("scope")
    cycles = fit.cycles(c)
    theta = fit.interval_effect(c).iloc[0]
    s = [
        f"{o['patients']} patients contributed {o['visits']} visits (mean run-in "
        f"{o['mean_runin_months']:.1f} months); {o['treated']} received {o['injections']} "
        f"injections (up to {o['max_cycles']} per patient)"
        + (f", and {o['untreated']} never received an injection and informed only the run-in "
           "slopes." if o["untreated"] else ".")
    ]
    if o.get("control") or o.get("external"):
        s.append(f"{o['treated_arm']} patients were in the treated arm, {o['control']} in the "
                 f"control arm (sham injections) and {o['external']} in an external untreated "
                 "cohort; controls and external patients informed the natural change only.")
        contrast = fit.arm_contrast()
        if not contrast.empty:
            a = contrast.iloc[0]
            s.append(
                f"Over all cycles, the slope changed by {a['mean']:+.2f} points/month more on "
                f"treatment than on sham (95% CrI {a['ci_2.5']:+.2f} to {a['ci_97.5']:+.2f}; "
                f"{_p_phrase('P(difference > 0)', a['p_gt_0'])}).")
    bar = pop.loc["rho_bar_given"]
    ref = pop.loc["rho_bar"]
    g_ref = f"{fit.population(c).attrs.get('interval_ref', 3.0):g}"
    s.append(
        "Primary estimand: relative to each patient's natural rate, decline slowed by "
        f"{_pct_ci(bar)} over all cycles, at the intervals the patients had "
        f"({_p_phrase('P(slowing > 0)', bar['p_gt_0'])}; "
        f"{_p_phrase(f'P(slowing > {pct})', bar[pcol])}); at a {g_ref}-month interval it "
        f"would be {_pct_ci(ref)} ({_p_phrase(f'P(slowing > {pct})', ref[pcol])})."
    )
    per = []
    resp = []
    for k in cycles["cycle"]:
        per.append(f"{_pct_ci(pop.loc[f'rho_cycle_given[{k}]'])} in cycle {k}")
        r = counts.loc[f"cycle {k}"]
        resp.append(f"{r['label']} (95% CrI {r['ci_2.5']} to {r['ci_97.5']}) in cycle {k}")
    s.append(f"Per cycle (exploratory), population slowing was {'; '.join(per)}.")
    s.append(f"The posterior median numbers of responders (slowing > {pct}) among the patients "
             f"evaluable in each cycle were {'; '.join(resp)}.")
    r = counts.loc["overall"]
    s.append(f"Over all cycles, {r['median']} of {r['n_evaluable']} evaluable patients (95% CrI "
             f"{r['ci_2.5']} to {r['ci_97.5']}) had an overall slowing above {pct}.")
    unit = ("month of injection interval" if fit.config.get("interval", "cycle_length") in
            ("cycle_length", "since_previous") else "unit of the interval covariate")
    s.append(
        f"Each extra {unit} changed the population slowing by "
        f"{format_number(100 * theta['mean'])} percentage points (95% CrI "
        f"{format_number(100 * theta['ci_2.5'])} to {format_number(100 * theta['ci_97.5'])}; "
        f"{_p_phrase('P(\u03b8 < 0)', theta['p_lt_0'])})."
    )
    new = pop.loc["new_patient"]
    s.append(f"A new patient's predicted slowing at a {g_ref}-month interval was "
             f"{_pct_ci(new)}, with probability "
             f"{format_probability(new[pcol])} of exceeding {pct}.")
    ok, numbers = _diagnostic_phrase(fit)
    s.append("Sampling diagnostics were within bounds." if ok else
             f"Sampling diagnostics were out of bounds ({numbers}); these numbers are "
             "provisional.")
    s.append(CAVEAT)
    return " ".join(s)


# ---------------------------------------------------------------------- html
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #111; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; }
th { border-bottom: 2px solid #333; }
.caveat { background: #fff4e0; border-left: 4px solid #E69F00; padding: .6em 1em; }
.bad { background: #fde8e0; border-left: 4px solid #D55E00; padding: .6em 1em; }
.good { background: #e6f4ef; border-left: 4px solid #009E73; padding: .6em 1em; }
.note { font-size: .85em; color: #444; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; }
figcaption { font-size: .9em; color: #333; }
.paragraph { background: #f6f6f6; padding: .8em 1em; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _html_table(df: pd.DataFrame, index: bool = False) -> str:
    frame = df.reset_index() if index else df
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc('' if pd.isna(v) else v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(title: str, caption: str, data: str) -> str:
    return (f"<figure><img alt=\"{_esc(title)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption><strong>{_esc(title)}.</strong> {_esc(caption)}</figcaption></figure>")


#: Diagnosed quantities a reader knows from the model, in the order the diagnostics table
#: shows them (population first, then per patient), with what each one is.
_DIAGNOSED_LABELS = {
    "rho_bar": "population slowing over all cycles (at the intervals the patients had)",
    "rho_cycle": "population slowing in each cycle (at the reference interval)",
    "delta_cycle": "population change of slope in each cycle (per month)",
    "theta": "interval effect (per month of interval)",
    "sd_patient": "SD of the patients' own responsiveness",
    "sd_patient_cycle": "SD of cycle-to-cycle variation within a patient",
    "gamma": "effect of one SD of each patient covariate",
    "mu_alpha": "population mean score at the first injection",
    "sd_alpha": "its between-patient SD",
    "mu_beta": "population mean natural rate in the run-in (per month)",
    "sd_beta": "its between-patient SD",
    "sd_drift": "SD of the natural drift of a patient's rate between periods (per month)",
    "acceleration": "systematic change of the natural rate (per month, per month)",
    "natural_cycle": "natural change of the rate in each cycle beyond the acceleration",
    "natural_ratio": "how each cycle's natural change grows with the patient's rate",
    "sigma": "residual SD",
    "nu": "Student-t degrees of freedom",
    "jump": "mean acute change at an injection",
    "sd_jump": "its between-patient SD",
    "rho_patient": "each patient's overall slowing (responder calls rest on it)",
    "rho": "each patient's slowing in each cycle that counts",
    "alpha": "each patient's expected score at the first injection",
    "beta_pre": "each patient's pre-treatment slope (per month)",
}
#: Coordinates the sampler works on that are no quantity of the model's equations.
_INTERNAL_LABELS = {
    "log_sd_effects": "log of the total SD of the slowing deviations, "
                      "sqrt(sd_patient\u00b2 + sd_patient_cycle\u00b2)",
    "logit_patient_share": "logit of the patients' share of that variance, "
                           "sd_patient\u00b2 / total\u00b2",
    "rho_cycle_at_mean_interval": "population slowing in each cycle at the cycle's own mean "
                                  "interval (rho_cycle is this shifted to the reference "
                                  "interval)",
    "delta_cycle_at_mean_interval": "population change of slope in each cycle at the cycle's "
                                    "own mean interval",
    "z_new_patient": "standard-normal draws of a new patient's responsiveness and run-in "
                     "slope (for the predictive slowing of a new patient)",
    "z_new_cycle": "standard-normal draws of a new patient's cycle-to-cycle variation",
}
_INTERNAL_NOTE = (
    "The sampler explores these coordinates in place of some of the model's parameters, "
    "because they give it a better-shaped posterior (for example the two SDs as their total "
    "and share, and each cycle's slowing at its own mean interval, which the data separate "
    "from theta). The parameters above are computed from them. They must converge too, and "
    "count in the verdict, but have no meaning to report."
)


def _is_internal(name: str) -> bool:
    return (name in _INTERNAL_LABELS or name.startswith(("z_", "log_", "logit_"))
            or name.endswith("_at_mean_interval"))


def _diagnostic_rows(diag: pd.DataFrame, names: Sequence[str],
                     labels: dict[str, str]) -> pd.DataFrame:
    rows = diag.loc[list(names)]
    return pd.DataFrame({
        "parameter": rows.index,
        "meaning": [labels.get(v, "") for v in rows.index],
        "max R-hat": [f"{v:.3f}" for v in rows["r_hat"]],
        "min bulk ESS": [f"{v:.0f}" for v in rows["ess_bulk"]],
        "min tail ESS": [f"{v:.0f}" for v in rows["ess_tail"]],
        "within bounds": ["yes" if v else "NO" for v in rows["ok"]],
    })


def _diagnostics_html(fit: FitResult) -> str:
    diag = fit.diagnostics()
    a = diag.attrs
    internal = [v for v in diag.index if _is_internal(v)]
    order = list(_DIAGNOSED_LABELS)
    shown = sorted((v for v in diag.index if v not in internal),
                   key=lambda v: order.index(v) if v in order else len(order))
    _, numbers = _diagnostic_phrase(fit)
    criteria = (f"R-hat \u2264 {RHAT_MAX}, bulk and tail ESS \u2265 {ESS_MIN}, no divergent "
                "transitions")
    verdict = (f"<p class=\"good\"><strong>Diagnostics healthy</strong> ({_esc(criteria)}): "
               f"{_esc(numbers)}.</p>" if a["ok"] else
               f"<p class=\"bad\"><strong>Diagnostics OUT OF BOUNDS</strong> ({_esc(criteria)}):"
               f" {_esc(numbers)}. Refit with more tuning and draws (and target_accept=0.95 "
               "if there are divergences) before citing any number.</p>")
    info = fit.fit_info
    settings = pd.DataFrame({
        "setting": ["sampler", "chains", "draws per chain", "tuning steps per chain",
                    "random seed", "target acceptance", "wall time (s)"],
        "value": [info["sampler"], info["chains"], info["draws"], info["tune"],
                  info["random_seed"],
                  "default" if info.get("target_accept") is None else info["target_accept"],
                  info.get("wall_seconds", "")],
    })
    main = _html_table(_diagnostic_rows(diag, shown, _DIAGNOSED_LABELS))
    note = ("Per parameter; for a vector, the worst of its elements."
            + (f" The sampler's own coordinates ({', '.join(internal)}) are in the appendix."
               if internal else ""))
    return (verdict + _html_table(settings) + f"<p class=\"note\">{_esc(note)}</p>"
            + f"<div id=\"diagnostics\">{main}</div>")


def _sampling_appendix_html(fit: FitResult) -> str:
    """Diagnostics of the coordinates the sampler works on (empty when there are none)."""
    diag = fit.diagnostics()
    internal = [v for v in diag.index if _is_internal(v)]
    if not internal:
        return ""
    bad = [v for v in internal if not diag.loc[v, "ok"]]
    note = _INTERNAL_NOTE + (f" Out of bounds here: {', '.join(bad)}." if bad else "")
    table = _html_table(_diagnostic_rows(diag, internal, _INTERNAL_LABELS))
    return (f"<p class=\"note\">{_esc(note)}</p>"
            f"<div id=\"diagnostics-internal\">{table}</div>")


def _model_html(fit: FitResult) -> str:
    cfg = fit.config
    options = pd.DataFrame({
        "option": [k for k in cfg if k != "priors"],
        "value": [", ".join(v) if isinstance(v, list) else v
                  for k, v in cfg.items() if k != "priors"],
    })
    options["value"] = [v if v not in ("", None) else "none" for v in options["value"]]
    used = _used_priors(cfg)
    priors = pd.DataFrame({
        "parameter": used,
        "meaning": [_PRIOR_LABELS.get(k, "") for k in used],
        "prior": [repr(Prior.from_value(cfg["priors"][k])) for k in used],
    })
    note = f"<p class=\"note\">{_esc(natural_history_note(cfg))}</p>"
    return note + _html_table(options) + _html_table(priors)


def _arm_contrast_for_print(fit: FitResult) -> pd.DataFrame:
    """The two-arm contrast, formatted (empty without controls)."""
    raw = fit.arm_contrast()
    if raw.empty:
        return raw
    out = pd.DataFrame({
        "Scope": raw["scope"],
        "Treated": raw["n_treated"].astype(int),
        "Control": raw["n_control"].astype(int),
        "Difference (points/month)": [
            f"{m:+.2f} ({lo:+.2f} to {hi:+.2f})"
            for m, lo, hi in zip(raw["mean"], raw["ci_2.5"], raw["ci_97.5"], strict=True)],
        "P(difference > 0)": [f"{p:.3f}" for p in raw["p_gt_0"]],
    })
    out.attrs["note"] = raw.attrs.get("note", "")
    return out


def _data_html(fit: FitResult) -> str:
    o = fit.data.overview()
    rows = pd.DataFrame({
        "": ["patients", "treated arm", "control arm", "external cohort",
             "injected (real or sham)", "never injected", "visits", "injections",
             "most injections per patient", "mean run-in (months)"],
        "value": [o["patients"], o["treated_arm"], o["control"], o["external"], o["treated"],
                  o["untreated"], o["visits"], o["injections"], o["max_cycles"],
                  f"{o['mean_runin_months']:.1f}"],
    })
    notes = "".join(f"<li>{_esc(n)}</li>" for n in fit.data.notes)
    return (_html_table(rows) + (f"<ul class=\"note\">{notes}</ul>" if notes else "")
            + _followup_html(fit))


def _followup_html(fit: FitResult) -> str:
    """Who was followed for less, and how fast they declined (informative dropout)."""
    from slopeshift.classical import followup_summary, followup_table

    table = followup_table(fit.data)
    if table.empty:
        return ""
    rate = f"({fit.data.spec.unit}/month)"
    shown = pd.DataFrame({
        "arm": table["group"],
        "followed": table["followed"],
        "patients": table["patients"],
        "follow-up (months)": [f"{a:.1f}-{b:.1f}" for a, b in
                               zip(table["followup_min"], table["followup_max"], strict=True)],
        f"run-in slope {rate}": [format_number(v, 2) for v in table["pre_slope"]],
        f"slope after the first injection {rate}": [format_number(v, 2)
                                                     for v in table["post_slope"]],
        f"change {rate}": [format_number(v, 2) for v in table["change"]],
        "with a slope after": table["with_post_slope"],
    })
    summary = followup_summary(table, fit.data.spec.unit)
    less = table[(table["group"] == "treated") & (table["followed"] == "for less")]
    if len(less) and not _has_controls(fit):
        summary += (" Without a control arm, patients who left because they declined fast "
                    "make later cycles look slowed: "
                    + ("this fit models that (dropout='selection')."
                       if fit.config.get("dropout") == "selection" else
                       "refit with dropout='selection' (CLI: --dropout selection) to model "
                       "it, and compare."))
    return (f"<h3>Follow-up and dropout</h3><p id=\"followup\">{_esc(summary)}"
            f"</p>{_html_table(shown)}<p class=\"note\">{_esc(table.attrs['note'])}</p>")


def _classical_html(fit: FitResult, threshold: float) -> str:
    """The classical per-patient least-squares analysis beside the Bayesian calls."""
    from slopeshift.classical import CLASSICAL_CAVEAT, classical_analysis, side_by_side

    result = classical_analysis(fit.data, threshold=threshold)
    table = side_by_side(result, fit.patients(threshold), threshold)
    pct = f"{100 * threshold:g}%"

    def call(v: object) -> str:
        return "" if pd.isna(v) else ("yes" if v else "no")

    shown = pd.DataFrame({
        "patient": table["patient"],
        "group": table["group"],
        "run-in slope (points/month)": [format_number(v, 2) for v in table["pre_slope"]],
        "post slope (points/month)": [format_number(v, 2) for v in table["post_slope"]],
        "classical reduction (%)": [format_number(100 * v) for v in
                                    table["classical_reduction"]],
        "classical responder": [call(v) for v in table["classical_responder"]],
        "Bayesian slowing (%)": [format_number(100 * v) for v in table["bayesian_mean"]],
        f"P(slowing > {pct})": [format_probability(v) if pd.notna(v) else "n/a"
                                for v in table[f"bayesian_p_gt_{threshold:g}"]],
        "Bayesian responder (P \u2265 0.9)": [call(v) for v in table["bayesian_responder"]],
        "agreement": table["agreement"],
    })
    return (f"<p id=\"classical\">{_esc(result.summary())}</p>{_html_table(shown)}"
            f"<p class=\"note\">{_esc(CLASSICAL_CAVEAT)}</p>")


def _sensitivity_html(fit: FitResult, out: Path, c: float,
                      sensitivity: pd.DataFrame | bool) -> list[str]:
    """Section 10: power-scaling of the priors, and the refits when asked for."""
    from slopeshift.sensitivity import format_power_scaling, format_sensitivity, power_scaling

    parts = []
    if sensitivity is not False:
        raw = fit.sensitivity(threshold=c) if sensitivity is True else sensitivity
        sens = format_sensitivity(raw, c)
        export_table(sens, out / "sensitivity_formatted.csv", caption="Sensitivity",
                     label="tab:sensitivity")
        parts += [
            "<h3>Refits under other analyses</h3>",
            "<p>How the population slowing over all cycles moves when the analysis changes: "
            "acute jumps at injections allowed (a gain right after an injection is then not "
            "slowing), a sceptical and a wide prior on the slowing, the model without "
            "natural change (the run-in rate carried forward, as classical analyses assume), "
            "and the additive parameterisation (a change of slope in points/month)."
            "</p>",
            _html_table(sens), f"<p class=\"note\">{_esc(sens.attrs['note'])}</p>",
        ]
    else:
        parts.append("<p class=\"note\">Refits under other analyses (jumps allowed, sceptical "
                     "and wide priors, no natural change, additive) are not part of this "
                     "report: add them with <code>fit.report(..., sensitivity=True)</code> (CLI:"
                     " <code>--sensitivity</code>).</p>")
    if "log_likelihood" in fit.idata.children and "y" in fit.idata["log_likelihood"].data_vars \
            and fit.config.get("effects", "marginal") == "marginal":
        ps = format_power_scaling(power_scaling(fit))
        export_table(ps, out / "power_scaling_formatted.csv",
                     caption="Power-scaling sensitivity", label="tab:power_scaling")
        parts += [
            "<h3>Power-scaling of the priors and the likelihood</h3>",
            "<p>How far each quantity's posterior would move if the priors of the population "
            "parameters, or the likelihood, were made slightly stronger or weaker (no refit). "
            "A quantity sensitive to its prior but not to the likelihood rests on the prior; "
            "sensitive to both, the prior and the data pull apart (prior-data conflict): see "
            "how the refits above move it.</p>",
            _html_table(ps), f"<p class=\"note\">{_esc(ps.attrs['note'])}</p>",
        ]
    return parts


def _comparison_html(fit: FitResult, out: Path, comparison: pd.DataFrame | bool) -> list[str]:
    """Section 11: leave-one-patient-out comparison of the model ladder."""
    from slopeshift.loo import format_comparison

    raw = fit.compare() if comparison is True else comparison
    table = format_comparison(raw)
    export_table(table, out / "comparison_formatted.csv", caption="Model comparison",
                 label="tab:comparison")
    return [
        "<p>How well each model predicts a left-out patient's scores from the other "
        "patients (PSIS-LOO over patients, each patient's own parameters integrated out): a "
        "ladder from no slowing to the primary model. Slowing that predicts better than no "
        "slowing is slowing the data support; a difference within about two standard errors "
        "does not separate the models.</p>",
        _html_table(table), f"<p class=\"note\">{_esc(table.attrs['note'])}</p>",
    ]


def write_report(
    fit: FitResult,
    out_dir: str | Path,
    threshold: float = 0.25,
    *,
    random_seed: int = 0,
    max_patients: int = 24,
    dpi: int = 110,
    sensitivity: pd.DataFrame | bool = False,
    comparison: pd.DataFrame | bool = False,
    workers: int = 1,
) -> Path:
    """Write a self-contained HTML report of a fit, with its tables, into a folder.

    The report holds: the caveat, a data overview, the model and its priors, sampler settings
    and the diagnostics verdict (R-hat <= 1.01, ESS >= 400, no divergence) with a table of the
    model's parameters, generated methods and results paragraphs, the publication tables, and
    the figures (embedded PNG): patient trajectories, per-patient slowing, per-cycle slowing,
    responders, interval effect, trace and posterior predictive check; then the classical
    per-patient least-squares analysis beside the Bayesian calls
    (:func:`slopeshift.classical.side_by_side`); last, in an appendix, the diagnostics of the
    coordinates the sampler works on (such as ``log_sd_effects``), with what they are.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    out_dir : str or Path
        Folder to write into (created if needed).
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    random_seed : int, default 0
        Seed of the replicated scores of the posterior predictive check.
    max_patients : int, default 24
        Patients drawn in the trajectory figure (the first ones, in id order).
    dpi : int, default 110
        Resolution of the embedded figures (dots per inch).
    sensitivity : pandas.DataFrame or bool, default False
        Add a section on how the headline moves under other analyses: a table from
        :meth:`FitResult.sensitivity`, or True to compute it here (refits the model five times:
        jumps allowed, sceptical and wide priors, no natural change, additive). The section
        always holds the power-scaling sensitivity of the priors
        (:func:`slopeshift.sensitivity.power_scaling`, no refit) when the fit is not latent.
    comparison : pandas.DataFrame or bool, default False
        Add a section comparing models by leave-one-patient-out LOO: a table from
        :meth:`FitResult.compare`, or True to compute it here (refits the model ladder of
        :data:`slopeshift.loo.LADDER`: five refits).
    workers : int, default 1
        Processes that draw the figures. 2 (Linux only; more counts as 2) forks one helper
        process that draws about half of them, which about halves the report's time (the
        command line does this when it may use two CPUs); the report is byte for byte the
        same. Anything the helper fails to deliver is drawn in this process.

    Returns
    -------
    Path
        ``out_dir / "report.html"``. Next to it: the ``population``, ``cycles``, ``interval``
        and ``patients`` tables (and ``arm_contrast`` with controls) as formatted strings,
        slowing in percent: ``<table>_formatted.csv``, ``<table>.md`` and ``<table>.tex``
        (booktabs); and ``methods.txt`` and ``results.txt`` (the paragraphs).
    """
    if max_patients < 1:
        raise ValueError(f"max_patients must be at least 1, not {max_patients}.")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = float(threshold)
    pct = f"{100 * c:g}%"
    spec = fit.data.spec

    tables: list[tuple[str, str, pd.DataFrame]] = [
        ("population", "Population slowing of decline", population_table(fit, c)),
        ("cycles", "Slowing and responders per treatment cycle", cycle_table(fit, c)),
        ("interval", "Effect of the injection interval", interval_table(fit, c)),
        ("patients", "Per-patient pre-treatment slope and overall slowing",
         patient_table(fit, c)),
    ]
    contrast = _arm_contrast_for_print(fit)
    if not contrast.empty:
        tables.append(("arm_contrast", "Treated minus control change of slope from the run-in",
                       contrast))
    table_parts = []
    for i, (name, caption, df) in enumerate(tables, start=1):
        # "_formatted": these CSVs hold the printed strings (percent), unlike the numeric
        # exports of the command line (<table>_numeric.csv, fractions)
        files = {"csv": f"{name}_formatted.csv", "md": f"{name}.md", "tex": f"{name}.tex"}
        for file in files.values():
            export_table(df, out / file, caption=caption, label=f"tab:{name}")
        links = " ".join(f"<a href=\"{file}\">{ext.upper()}</a>" for ext, file in files.items())
        table_parts.append(
            f"<h3>Table {i}. {_esc(caption)}</h3>{_html_table(df)}"
            f"<p class=\"note\">{_esc(df.attrs.get('note', ''))} Files: {links}</p>")

    ids = [str(p) for p in fit.design["patient"].values]
    shown = ids[:max_patients]
    traj_caption = (
        f"Observed {spec.label} scores (points), posterior mean trajectory (line) with 50% and "
        "95% bands, and injections (dashed lines); months since each patient's first injection"
        " (untreated patients: relative to their last visit, labelled on their panel). Every "
        "panel has the same y range, so slopes compare by eye."
        + (f" The first {len(shown)} of {len(ids)} patients are shown." if len(shown) < len(ids)
           else "")
    )
    figures: list[tuple[str, str, Callable[[], Figure]]] = [
        ("Patient trajectories", traj_caption, lambda: plots.plot_trajectories(fit, shown)),
        ("Slowing per cycle",
         f"Population slowing per cycle (mean, 95% interval) and each patient's posterior mean "
         f"slowing in the cycle, % of the pre-treatment rate; above: posterior median number "
         f"of responders (slowing > {pct}) / patients evaluable in the cycle.",
         lambda: plots.plot_cycles(fit, c)),
        ("Number of responders",
         f"Posterior distribution of the number of patients whose overall slowing exceeds "
         f"{pct}: P(R = r) (bars) and P(R \u2265 r) (line).",
         lambda: plots.plot_responders(fit, c)),
        ("Injection interval",
         "Predicted population slowing (% of the pre-treatment rate) against the injection "
         "interval, with its 95% band, over the range of the observed intervals (ticks: the "
         "intervals of the observed cycles); beyond it, dashed with a lighter band, the "
         "straight line is extrapolated.",
         lambda: plots.plot_interval_effect(fit, threshold=c)),
        ("Posterior predictive check",
         "Empirical distribution of the observed scores against scores replicated from the "
         "posterior (ECDF, left; histogram, right).",
         lambda: plots.plot_ppc(fit, random_seed=random_seed)),
        *([("Leave-one-patient-out calibration",
            "PIT of each patient's least-squares slope after the first injection against the "
            "predictive distribution of a new patient with the same visits, given the other "
            "patients: the difference between their empirical CDF and the uniform CDF, with "
            "ArviZ's test of uniformity (p-value; highlighted: values driving a deviation). "
            "A calibrated model gives a line near zero; an arch above zero means slopes "
            "steeper (faster decline) than predicted, below zero slower.",
            lambda: plots.plot_loo_pit(fit, max_draws=1000))]
          if fit.config.get("effects", "marginal") == "marginal" else []),
        ("Sampler traces",
         "Per-chain densities (left) and traces (right) of the population parameters, drawn "
         "by ArviZ; chains should overlap and look like stationary noise.",
         lambda: plots.plot_trace(fit)),
    ]
    if len(ids) <= _MAX_FOREST:
        figures.insert(1, (
            "Slowing per patient",
            f"Overall slowing of each treated patient (mean and 95% interval, % of the "
            f"pre-treatment rate), ordered; right: P(slowing > {pct}). Untreated and not-"
            "evaluable patients are listed apart and count in no responder total.",
            lambda: plots.plot_patient_forest(fit, c)))
    pngs = _render.render([make for _, _, make in figures], dpi, workers)
    figure_parts = [
        _figure_html(f"Figure {i}. {title}", caption, data)
        for i, ((title, caption, _), data) in enumerate(zip(figures, pngs, strict=True), start=1)
    ]
    if len(ids) > _MAX_FOREST:
        figure_parts.append(f"<p class=\"note\">The per-patient slowing figure is left out for "
                            f"{len(ids)} patients; see the patients table.</p>")

    methods = methods_paragraph(fit, c)
    results = results_paragraph(fit, c)
    (out / "methods.txt").write_text(methods + "\n", encoding="utf-8")
    (out / "results.txt").write_text(results + "\n", encoding="utf-8")
    versions = software_versions()
    version_table = pd.DataFrame({"package": list(versions), "version": list(versions.values())})

    title = f"slopeshift report: {spec.label}"
    body = [
        f"<h1>{_esc(title)}</h1>",
        f"<p class=\"caveat\"><strong>Caveat.</strong> {_esc(CAVEAT)}</p>",
        "<h2>1. Data</h2>", _data_html(fit),
        "<h2>2. Model and priors</h2>", _model_html(fit),
        "<h2>3. Sampling and diagnostics</h2>", _diagnostics_html(fit),
        "<h2>4. Methods (for a manuscript)</h2>",
        f"<p class=\"paragraph\" id=\"methods\">{_esc(methods)}</p>",
        "<h2>5. Results (for a manuscript)</h2>",
        f"<p class=\"paragraph\" id=\"results\">{_esc(results)}</p>",
        "<h2>6. Tables</h2>", *table_parts,
        "<h2>7. Figures</h2>", *figure_parts,
        "<h2>8. Software</h2>", _html_table(version_table),
        "<h2>9. Classical analysis (per-patient least squares)</h2>", _classical_html(fit, c),
    ]
    body += ["<h2>10. Sensitivity of the headline</h2>", *_sensitivity_html(fit, out, c,
                                                                            sensitivity)]
    if comparison is not False:
        body += ["<h2>11. Model comparison (leave one patient out)</h2>",
                 *_comparison_html(fit, out, comparison)]
    appendix = _sampling_appendix_html(fit)
    if appendix:
        body += ["<h2>Appendix. Diagnostics of the sampler's coordinates</h2>", appendix]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
