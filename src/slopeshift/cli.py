"""Command line: ``slopeshift demo``, ``slopeshift fit VISITS.csv INJECTIONS.csv --out DIR`` and
``slopeshift report FIT.nc --out DIR``.

The CLI only wires the library together: read data (and priors from a TOML file), fit, write
the fit and the numeric tables, print the headline table, write the report. The headline shows
slowing in percent of the pre-treatment rate and responder counts as posterior medians with
95% intervals, as the report does; the numeric CSV exports keep fractions.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import pandas as pd

from slopeshift.data import TrialData
from slopeshift.errors import DataValidationError
from slopeshift.fit import SAMPLERS, FitResult
from slopeshift.model import SlopeShiftModel
from slopeshift.priors import Prior, required_keys
from slopeshift.simulate import example_trial
from slopeshift.summaries import CAVEAT, natural_history_note
from slopeshift.tables import _pct_label, format_estimate, interval_units, responder_counts

__all__ = ["headline", "main", "write_tables"]

TABLES = ("slowing", "patients", "cycles", "population", "responders", "interval_effect")
#: Suffix of the numeric exports (the report's formatted tables end in ``_formatted.csv``).
NUMERIC_SUFFIX = "_numeric.csv"


def write_tables(fit: FitResult, out: Path, threshold: list[float]) -> list[Path]:
    """Write every numeric summary table of ``fit`` to ``out/<table>_numeric.csv``.

    The tables are those of ``fit.slowing()``, ``fit.patients()``, ``fit.cycles()``,
    ``fit.population()``, ``fit.responders()`` and ``fit.interval_effect()``, unrounded:
    slowing and its interval are **fractions** of the pre-treatment rate (0.25 = 25% slower
    decline), theta a fraction per month of interval, slopes in outcome units/month and
    probabilities in 0-1. The formatted tables for print (percent) are the report's
    ``report/<table>_formatted.csv``.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    out : Path
        Folder to write into (created if needed).
    threshold : list of float
        Responder thresholds as fractions of the pre-treatment rate; one ``p_gt_<c>`` column
        each.

    Returns
    -------
    list of Path
        The files written, in the order of :data:`TABLES`.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in TABLES:
        path = out / f"{name}{NUMERIC_SUFFIX}"
        getattr(fit, name)(threshold=threshold).to_csv(path, index=False)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------- headline
def _pct(r: pd.Series) -> str:
    """A summary row's fraction as "mean (lo to hi)" in percent, one decimal (as the report)."""
    return format_estimate(r["mean"], r["ci_2.5"], r["ci_97.5"], decimals=1, scale=100.0)


def _fmt_row(r: pd.Series, c: float) -> str:
    return (f"{_pct(r):<22}  P(>0) {r['p_gt_0']:.3f}   "
            f"P(>{_pct_label(c)}) {r[f'p_gt_{c:g}']:.3f}")


def headline(fit: FitResult, threshold: float = 0.25) -> str:
    """The headline table as text: population slowing, interval effect, responders, patients.

    Slowing is printed in percent of the pre-treatment rate with one decimal (25.0 = 25%
    slower decline), theta in percentage points per month of interval, responder counts as
    the posterior median over the patients evaluable with its 95% interval (the numbers of
    :func:`slopeshift.tables.responder_counts`, as in the report), and probabilities in 0-1.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Slowing threshold defining a responder, as a fraction of the pre-treatment rate
        (0.25 = 25% slower; printed as "25%").

    Returns
    -------
    str
    """
    c = threshold
    pct = _pct_label(c)
    lines = []
    o = fit.data.overview()
    lines.append(
        f"{fit.data.spec.label}: {o['patients']} patients ({o['treated']} treated, "
        f"{o['untreated']} untreated), {o['visits']} visits, {o['injections']} injections, "
        f"mean run-in {o['mean_runin_months']:.1f} months."
    )
    lines.append("")
    lines.append("Population slowing of decline (% of the pre-treatment rate: 25.0 = 25% slower, "
                 "100 = halted; mean (95% CrI))")
    pop = fit.population(threshold=c)
    g_ref = pop.attrs.get("interval_ref", 3.0)
    for given, head in ((True, "at the intervals the patients had"),
                        (False, f"at a {g_ref:g}-month interval")):
        lines.append(f"  {head}:")
        for _, r in pop.iterrows():
            q = r["quantity"]
            if ("_given" in q) != given:
                continue
            name = {"rho_bar": "all cycles", "rho_bar_given": "all cycles*",
                    "new_patient": "a new patient"}.get(q) or "cycle " + q.split("[")[1][:-1]
            lines.append(f"    {name:<14}{_fmt_row(r, c)}")
    lines.append("  * primary estimand (declared before the data: the slowing over all cycles at "
                 f"the intervals the patients had, P(> {_pct_label(c)})); per-cycle rows are "
                 "exploratory")
    lines.append("")
    unit_one, unit = interval_units(fit)
    iv = fit.interval_effect(threshold=c)
    th = iv.iloc[0]
    lines.append(
        f"Interval effect theta (change of slowing per extra {unit_one} between injections, "
        f"percentage points): {_pct(th)}, P(theta < 0) {th['p_lt_0']:.3f}"
    )
    for _, r in iv.iloc[1:].iterrows():
        at = f"at {r['interval_months']:g} {unit}"
        lines.append(f"  {at:<16}{_fmt_row(r, c)}")
    lines.append("")
    lines.append(f"Number of responders (slowing > {pct}): posterior median / patients evaluable "
                 "(95% CrI), and P(R >= r)")
    counts = responder_counts(fit, c).set_index("scope")
    resp = fit.responders(threshold=c)
    for scope, grp in resp.groupby("scope", sort=False):
        n = counts.loc[scope]
        count = f"{n['label']} ({n['ci_2.5']} to {n['ci_97.5']})"
        ge = " ".join(f"{int(r)}:{p:.2f}" for r, p in zip(grp["responders"], grp["p_ge"],
                                                          strict=True) if p >= 0.005 and r > 0)
        lines.append(f"  {scope:<9} {count:<16}  P(R>=r) {ge}")
    lines.append("")
    lines.append(f"Patients: overall slowing, % (95% CrI), and P(responder) = "
                 f"P(slowing > {pct})")
    pt = fit.patients(threshold=c)
    for _, r in pt.iterrows():
        if r["status"] == "flat run-in" and pd.notna(r.get("change_mean")):
            change = format_estimate(r["change_mean"], r["change_ci_2.5"], r["change_ci_97.5"], 2)
            lines.append(f"  {r['patient']:<8} flat run-in (decline not established; outside "
                         f"responder counts): slope change {change} {fit.data.spec.unit}/month")
            continue
        if r["status"] != "treated":
            lines.append(f"  {r['patient']:<8} {r['status']}")
            continue
        lines.append(
            f"  {r['patient']:<8} {r['n_cycles']} cycle(s)  pre-slope {r['pre_slope_mean']:6.2f}"
            f" {fit.data.spec.unit}/month  slowing {_pct(r):<22}  "
            f"P(responder) {r[f'p_gt_{c:g}']:.2f}"
        )
    lines.append("")
    diag = fit.diagnostics().attrs
    verdict = "healthy" if diag["ok"] else "OUT OF BOUNDS (see warnings)"
    lines.append(
        f"Sampling: {verdict}: max R-hat {diag['max_r_hat']:.3f}, min ESS bulk "
        f"{diag['min_ess_bulk']:.0f} / tail {diag['min_ess_tail']:.0f}, "
        f"{diag['divergences']} divergences."
    )
    lines.append(CAVEAT)
    lines.append(natural_history_note(fit.config))
    return "\n".join(lines)


# ---------------------------------------------------------------------- option types
def _thresholds(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            "threshold must be fractions of the pre-treatment rate separated by commas, e.g. "
            f"0.25 or 0.2,0.25; got {text!r}"
        )
    return values


def _threshold(text: str) -> float:
    values = _thresholds(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"threshold must be one number, e.g. 0.25; got {text!r}")
    return values[0]


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}; got {text!r}")
        return value

    return parse


def _number(text: str, *, positive: bool = False, below_one: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and (value > 0 or not positive) and (value < 1 or not below_one)
    if not ok:
        kind = ("a number strictly between 0 and 1" if below_one
                else "a positive number" if positive else "a finite number")
        raise argparse.ArgumentTypeError(f"must be {kind}; got {text!r}")
    return value


def _months(text: str) -> float:
    return _number(text, positive=True)


def _probability(text: str) -> float:
    return _number(text, positive=True, below_one=True)


def _enrolment(text: str) -> float | str | None:
    if text.lower() == "auto":
        return "auto"
    if text.lower() == "none":
        return None
    try:
        return _number(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            "must be 'auto', 'none' (all-comers) or the run-in slope below which patients were "
            f"enrolled, in outcome units/month (e.g. -0.5); got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"must name at least one column, e.g. age,sex[M]; "
                                         f"got {text!r}")
    return names


def _read_priors(path: Path, parameterization: str = "ratio",
                 drift: bool = True, domains: bool = False,
                 dropout: bool = False) -> dict[str, Prior]:
    """Priors from a TOML file, one table per prior name, as ``SlopeShiftModel(priors=...)``.

    A file such as::

        theta = {dist = "Normal", mu = 0.0, sigma = 0.05}

        [rho_cycle]
        dist = "Normal"
        mu = 0.0
        sigma = 0.25

    replaces those two defaults (:func:`slopeshift.default_priors`) and keeps the others. In
    TOML a key after a ``[table]`` header belongs to that table, so one-line priors come first.
    The distributions and their parameters are those of :class:`slopeshift.Prior`, in the
    units of the prior: rho_cycle a fraction of the pre-treatment rate, theta a fraction per
    month of interval, slopes and their SDs in outcome units/month.

    Parameters
    ----------
    path : Path
        The TOML file (``--priors``).
    parameterization : {"ratio", "additive"}, default "ratio"
        The parameterisation the priors are for (which names are valid).
    drift : bool, default True
        Whether the model has natural drift (then ``sd_drift``, ``acceleration``,
        ``natural_cycle`` and ``natural_shift`` are valid names too).
    domains : bool, default False
        The four-domain model (its priors' names are valid instead of the total's).
    dropout : bool, default False
        The selection model of dropout, or ``--dropout auto``, which may choose it
        (``dropout_intercept`` and ``dropout_slope`` valid).

    Returns
    -------
    dict of str to Prior

    Raises
    ------
    ValueError
        Naming ``--priors`` and the file: a missing or unreadable file, and, all together,
        every unknown prior name (with the valid ones) and every malformed prior.
    """
    where = f"--priors {path}"
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file.") from None
    except OSError as err:
        raise ValueError(f"{where}: cannot read the file ({err.strerror}).") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: not a valid TOML file: {err}.") from None
    valid = required_keys(parameterization, natural=drift, domains=domains, dropout=dropout)
    problems = []
    unknown = sorted(k for k in table if k not in valid)
    if unknown:
        model = f"the {parameterization} parameterisation" + ("" if drift else " with --no-drift")
        problems.append(f"unknown prior name(s) {unknown} for {model}; valid names: {valid}")
    priors = {}
    for name, value in table.items():
        if name in unknown:
            continue
        try:
            priors[name] = Prior.from_value(value)
        except (TypeError, ValueError) as err:
            problems.append(f"prior {name!r}: {str(err).rstrip('.')}")
    if problems:
        raise ValueError(
            f"{where}: " + "; ".join(problems)
            + '. Each prior is a table, e.g. rho_cycle = {dist = "Normal", mu = 0.0, sigma = 0.25}.'
        )
    return priors


# ---------------------------------------------------------------------- options
def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (see docs/options.md)")
    g.add_argument("--parameterization", default="ratio", choices=["ratio", "additive"],
                   help="treatment effect as a fraction of the pre-treatment slope (ratio) or "
                        "a change of slope in outcome units/month (additive; for pre-slopes "
                        "near zero) (default: %(default)s)")
    g.add_argument("--interval", default="cycle_length", metavar="KIND",
                   help="injection-interval covariate, months: cycle_length (to the next "
                        "injection), since_previous, or a numeric column of the injections "
                        "table (its own units) (default: %(default)s)")
    g.add_argument("--interval-ref", type=_months, default=3.0, metavar="MONTHS",
                   help="reference interval, months: each cycle's slowing is reported at it "
                        "(default: %(default)g months)")
    g.add_argument("--planned-interval", type=_months, default=None, metavar="MONTHS",
                   help="the protocol's planned interval between injections, months, used for "
                        "open last cycles (default: none; they then do not inform theta)")
    g.add_argument("--covariates", type=_names, default=None, metavar="COLS",
                   help="patient covariates acting on the slowing, columns of --patients "
                        "separated by commas, e.g. age,sex[M] (standardised; default: none)")
    g.add_argument("--jump", action="store_true",
                   help="add an acute jump of the score (points) at each injection "
                        "(default: off)")
    g.add_argument("--likelihood", default="normal", choices=["normal", "student_t"],
                   help="visit-to-visit noise; student_t is robust to outlying scores "
                        "(default: %(default)s)")
    g.add_argument("--censored", action="store_true",
                   help="treat scores at the scale's floor/ceiling (0 and 48 for ALSFRS-R) as "
                        "censored (default: off)")
    g.add_argument("--drift", action=argparse.BooleanOptionalAction, default=True,
                   help="natural drift and acceleration of each patient's rate apart from "
                        "treatment, with priors from published natural history; --no-drift "
                        "assumes the run-in rate would have continued (default: --drift)")
    g.add_argument("--enrolment", type=_enrolment, default="auto", metavar="RULE",
                   help="how patients were enrolled on their run-in: auto (below the slowest "
                        "enrolled patient's run-in slope), none (all-comers), or the run-in "
                        "slope in outcome units/month below which they were enrolled, e.g. "
                        "-0.5 (default: auto)")
    g.add_argument("--floors", default="exclude", choices=["exclude", "adjust", "include"],
                   help="floor effects of ALSFRS-R given as items: adjust scales the natural "
                        "rate by the items left above 0, exclude also keeps cycles with a "
                        "domain at its floor out of slowing and responder counts, include does "
                        "neither (default: %(default)s)")
    g.add_argument("--dropout", default="auto", choices=["auto", "selection", "ignore"],
                   help="patients who leave: ignore treats their missing visits as missing at "
                        "random; selection models that those followed for less may have left "
                        "because they declined fast (a probit on the last cycle's slope, "
                        "integrated exactly), which otherwise makes later cycles of a "
                        "single-arm trial look slowed; auto chooses selection for single-arm "
                        "trials in which someone was followed for less (default: %(default)s)")
    g.add_argument("--domains", action="store_true",
                   help="experimental: model the four ALSFRS-R domains, each censored at 0, "
                        "instead of the total (needs the 12 items; minutes, not seconds: the "
                        "effects are sampled) (default: off)")
    g.add_argument("--flat-runin", default="exclude", choices=["exclude", "include"],
                   help="patients whose run-in does not establish decline (the run-in slope's "
                        "one-sided 95%% upper bound is not below 0): exclude keeps them out of "
                        "responder counts and lists them with their slope change in outcome "
                        "units/month, include counts them (default: %(default)s)")
    g.add_argument("--slowing", default="per_cycle", choices=["per_cycle", "common", "none"],
                   help="the population slowing: one mean per cycle, one shared by every "
                        "cycle, or no treatment effect (a rung of the model comparison) "
                        "(default: %(default)s)")
    g.add_argument("--interval-effect", action=argparse.BooleanOptionalAction, default=True,
                   help="slowing depends on the injection interval (theta); "
                        "--no-interval-effect fixes theta at 0 (default: --interval-effect)")
    g.add_argument("--priors", type=Path, default=None, metavar="FILE.toml",
                   help="priors replacing the defaults key by key: one TOML table per prior "
                        "name, e.g. rho_cycle = {dist = \"Normal\", mu = 0.0, sigma = 0.25} "
                        "(units of each prior: docs/options.md; default: none)")


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling and output")
    g.add_argument("--draws", type=_int_at_least(1), default=1000,
                   help="posterior draws per chain (default: %(default)s)")
    g.add_argument("--tune", type=_int_at_least(0), default=1000,
                   help="tuning steps per chain (default: %(default)s)")
    g.add_argument("--chains", type=_int_at_least(1), default=4,
                   help="number of chains (default: %(default)s)")
    g.add_argument("--cores", type=_int_at_least(1), default=None,
                   help="chains run in parallel on this many cores (default: one per chain)")
    g.add_argument("--target-accept", type=_probability, default=None, metavar="P",
                   help="NUTS target acceptance rate, between 0 and 1; raise it (e.g. 0.95) if "
                        "divergences remain (default: 0.9, or 0.95 for trials of 100 patients "
                        "or more and with --domains)")
    g.add_argument("--mass-matrix", default="diag", choices=["diag", "low_rank"],
                   help="nutpie's mass-matrix adaptation; low_rank helps small trials whose "
                        "population parameters mix slowly (at 200 patients it took 40 times the "
                        "sampling time; nutpie "
                        "only; default: %(default)s)")
    g.add_argument("--seed", type=int, default=2021, help="random seed (default: %(default)s)")
    g.add_argument("--sampler", default="nutpie", choices=list(SAMPLERS),
                   help="NUTS implementation; numpyro needs the jax extra "
                        "(default: %(default)s)")
    g.add_argument("--threshold", type=_thresholds, default=[0.25], metavar="C[,C...]",
                   help="responder threshold(s) as fractions of the pre-treatment rate, e.g. "
                        "0.25 (25%% slower decline) or 0.2,0.25; the headline and the report "
                        "use the first (default: 0.25)")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bar and no stage lines on stderr (default: off)")
    g.add_argument("--no-report", action="store_true",
                   help="skip the HTML report and the formatted tables in OUT/report/ "
                        "(default: off)")
    g.add_argument("--report-workers", type=_int_at_least(1), default=None, metavar="N",
                   help="processes that draw the report's figures (1 or 2); 2 forks one helper "
                        "and about halves the report's time, with the same report (default: "
                        "2 on Linux with two usable CPUs, else 1)")
    g.add_argument("--sensitivity", action="store_true",
                   help="add to the report how the headline moves with jumps allowed, a "
                        "sceptical and a wide prior, without natural change and additive: "
                        "five refits, each as long as the main fit (default: off)")
    g.add_argument("--compare", action="store_true",
                   help="add to the report a leave-one-patient-out comparison of the model "
                        "ladder (no slowing, one common slowing, per cycle, + interval, + "
                        "natural change, natural change without slowing): five refits "
                        "(default: off)")


def _out_help(default: str) -> str:
    return (f"folder for the fit (fit.nc), the numeric tables (<table>{NUMERIC_SUFFIX}, "
            "fractions) and the HTML report with the formatted tables (report/, percent); "
            f"created if needed ({default})")


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="slopeshift",
        description="Bayesian analysis of slowing of decline across treatment cycles.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="fit the bundled simulated example trial",
        description="Fit the bundled SIMULATED example trial, print the headline table and "
                    "write the fit, the numeric tables and the report.")
    demo.add_argument("--out", type=Path, default=Path("slopeshift-demo"),
                      help=_out_help("default: ./slopeshift-demo"))
    _add_model_options(demo)
    _add_fit_options(demo)
    fit = sub.add_parser(
        "fit", help="fit a trial from CSV files",
        description="Fit a trial from CSV files, print the headline table and write the fit, "
                    "the numeric tables and the report.")
    fit.add_argument("visits", type=Path, help="CSV: patient, time, outcome (one row per visit)")
    fit.add_argument("injections", type=Path,
                     help="CSV: patient, time[, cycle] (one row per injection)")
    data = fit.add_argument_group("data")
    data.add_argument("--patients", type=Path, default=None,
                      help="CSV: patient, covariates and optionally arm (treated, control, "
                           "external) (default: none)")
    data.add_argument("--outcome", default="alsfrs_r",
                      help="alsfrs_r (points), fvc (%% predicted) or a numeric column "
                           "(default: %(default)s)")
    data.add_argument("--patient-col", default="patient",
                      help="patient id column (default: %(default)s)")
    data.add_argument("--time-col", default="time",
                      help="time column: dates, or months (default: %(default)s)")
    data.add_argument("--on-missing", default="raise", choices=["raise", "drop"],
                      help="a visit without a score is an error (raise) or dropped and listed "
                           "(drop) (default: %(default)s)")
    fit.add_argument("--out", type=Path, required=True, help=_out_help("required"))
    _add_model_options(fit)
    _add_fit_options(fit)
    rep = sub.add_parser("report", help="HTML report and publication tables of a saved fit")
    rep.add_argument("fit", type=Path, help="a fit saved by slopeshift (fit.nc)")
    rep.add_argument("--out", type=Path, required=True,
                     help="folder for report.html, the formatted tables "
                          "(<table>_formatted.csv, <table>.md, <table>.tex; percent) and "
                          "methods.txt, results.txt; created if needed (required)")
    rep.add_argument("--threshold", type=_threshold, default=0.25,
                     help="responder threshold as a fraction of the pre-treatment rate, e.g. "
                          "0.25 (25%% slower decline) (default: %(default)s)")
    rep.add_argument("--seed", type=int, default=0,
                     help="seed of the posterior predictive check (default: %(default)s)")
    rep.add_argument("--sensitivity", action="store_true",
                     help="add how the headline moves with jumps allowed, a sceptical and a "
                          "wide prior, without natural change and additive: five refits of the "
                          "saved fit's data with its settings (default: off)")
    rep.add_argument("--compare", action="store_true",
                     help="add a leave-one-patient-out comparison of the model ladder: five "
                          "refits of the saved fit's data with its settings (default: off)")
    rep.add_argument("--quiet", action="store_true",
                     help="no stage lines on stderr (default: off)")
    rep.add_argument("--report-workers", type=_int_at_least(1), default=None, metavar="N",
                     help="processes that draw the report's figures (1 or 2); 2 forks one helper "
                          "and about halves the report's time, with the same report (default: "
                          "2 on Linux with two usable CPUs, else 1)")
    from slopeshift.study_cli import add_study_parser

    add_study_parser(sub)
    return ap


# ---------------------------------------------------------------------- running
def _stage(args: argparse.Namespace, text: str) -> None:
    """A short progress line on stderr (``--quiet``: none)."""
    if not args.quiet:
        print(f"slopeshift: {text}", file=sys.stderr, flush=True)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Print a warning as one line, ``slopeshift: <Category>: <message>``, without source."""
    text = " ".join(str(message).split())
    print(f"slopeshift: {category.__name__}: {text}", file=file or sys.stderr, flush=True)


def _model(data: TrialData, args: argparse.Namespace,
           priors: dict[str, Prior] | None) -> SlopeShiftModel:
    return SlopeShiftModel(
        data, parameterization=args.parameterization, interval=args.interval,
        interval_ref=args.interval_ref, planned_interval=args.planned_interval,
        covariates=args.covariates, jump=args.jump, likelihood=args.likelihood,
        censored=args.censored, drift=args.drift, enrolment=args.enrolment, floors=args.floors,
        flat_runin=args.flat_runin, slowing=args.slowing,
        interval_effect=args.interval_effect, priors=priors, domains=args.domains,
        dropout=args.dropout,
    )


def _fit_and_report(data: TrialData, args: argparse.Namespace, out: Path,
                    priors: dict[str, Prior] | None) -> FitResult:
    model = _model(data, args, priors)
    t0 = time.perf_counter()
    fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                    sampler=args.sampler, cores=args.cores, target_accept=args.target_accept,
                    mass_matrix=args.mass_matrix, progressbar=not args.quiet)
    print(headline(fit, args.threshold[0]))
    path = fit.save(out / "fit.nc")
    write_tables(fit, out, args.threshold)
    print(f"\nWrote the fit ({path}) and the numeric tables ({', '.join(TABLES)}; fractions) "
          f"to {out}/<table>{NUMERIC_SUFFIX}")
    if not args.no_report:
        _use_agg()
        _stage(args, "building report ...")
        html = fit.report(out / "report", args.threshold[0], sensitivity=args.sensitivity,
                          comparison=args.compare, workers=_report_workers(args))
        print(f"Report: {html} (formatted tables: {out / 'report'}/<table>_formatted.csv)")
    print(f"Done in {time.perf_counter() - t0:.0f} s.")
    return fit


def _report_workers(args: argparse.Namespace) -> int:
    from slopeshift._render import available_workers

    return args.report_workers if args.report_workers is not None else available_workers()


def _use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


def _run(args: argparse.Namespace) -> None:
    if args.command == "study":
        from slopeshift.study_cli import run_study_command

        run_study_command(args)
        return
    if args.command == "report":
        _use_agg()
        from slopeshift.report import write_report

        fit = FitResult.load(args.fit)
        _stage(args, "building report ...")
        path = write_report(fit, args.out, args.threshold, random_seed=args.seed,
                            sensitivity=args.sensitivity, comparison=args.compare,
                            workers=_report_workers(args))
        print(f"Wrote {path} and the formatted tables (<table>_formatted.csv, <table>.md, "
              f"<table>.tex) to {args.out}/")
        return
    # a bad priors file fails before the data are read
    priors = (None if args.priors is None
              else _read_priors(args.priors, args.parameterization, args.drift,
                                args.domains, args.dropout != "ignore"))
    if args.command == "demo":
        print("Bundled example: a SIMULATED trial shaped like NCT04821479 (no real patient).")
        data = example_trial()
    else:
        data = TrialData.from_csv(
            args.visits, args.injections, args.patients, outcome=args.outcome,
            patient_col=args.patient_col, time_col=args.time_col, on_missing=args.on_missing,
        )
    _fit_and_report(data, args, args.out, priors)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slopeshift`` command.

    Warnings print as one line each on stderr (``slopeshift: <Category>: <message>``); input
    and option errors print one message naming the file or option at fault.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on bad input or options.
    """
    ap = _build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "mass_matrix", "diag") != "diag" and args.sampler != "nutpie":
        ap.error(f"--mass-matrix {args.mass_matrix} needs --sampler nutpie")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            _run(args)
        except (DataValidationError, FileNotFoundError, ValueError) as err:
            print(f"slopeshift: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
