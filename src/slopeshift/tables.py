"""Publication tables of a fit: rounded, labelled, ready to print or export.

Each table is a ``pandas.DataFrame`` of formatted strings built from a
:class:`~slopeshift.fit.FitResult`'s summary tables (the numeric versions are ``fit.population()``,
``fit.cycles()``, ``fit.patients()``, ``fit.responders()`` and ``fit.interval_effect()``).
Slowing is printed in percent of each patient's own pre-treatment rate of decline (25.0 = 25%
slower decline, 100 = decline halted); estimates are posterior means with 95% equal-tailed
credible intervals (CrI) written "mean (low to high)"; probabilities are posterior probabilities,
printed "<0.01" / ">0.99" when they round to 0 or 1. ``attrs["note"]`` of every table holds
its footnote, including the caveat that without a control arm slowing is relative to each
patient's own run-in. :func:`export_table` writes CSV, Markdown or LaTeX (booktabs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from slopeshift.summaries import CAVEAT

if TYPE_CHECKING:
    from slopeshift.fit import FitResult

__all__ = [
    "cycle_table",
    "export_table",
    "format_estimate",
    "format_number",
    "format_probability",
    "interval_table",
    "interval_units",
    "patient_table",
    "population_table",
    "responder_counts",
]

_NA = "n/a"
_CRI = "CrI: 95% equal-tailed credible interval."


# ---------------------------------------------------------------------- formatting
def _pct_label(threshold: float) -> str:
    return f"{100 * threshold:g}%"


def format_number(x: float, decimals: int = 1) -> str:
    """A number rounded to ``decimals`` decimals ("n/a" when not finite; never "-0.0").

    Parameters
    ----------
    x : float
        The number, in whatever units it is to be printed in.
    decimals : int, default 1

    Returns
    -------
    str
    """
    if not np.isfinite(x):
        return _NA
    text = f"{x:.{decimals}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def format_estimate(mean: float, lo: float, hi: float, decimals: int = 1,
                    scale: float = 1.0) -> str:
    """An estimate with its interval, "mean (lo to hi)", after multiplying by ``scale``.

    Parameters
    ----------
    mean, lo, hi : float
        Posterior mean and interval bounds (e.g. slowing as a fraction).
    decimals : int, default 1
        Decimals printed.
    scale : float, default 1.0
        Unit conversion, e.g. 100 to print a fraction in percent.

    Returns
    -------
    str
        E.g. ``"49.9 (28.8 to 69.0)"``; "n/a" when the mean is not finite.
    """
    if not np.isfinite(mean):
        return _NA
    return (f"{format_number(scale * mean, decimals)} ({format_number(scale * lo, decimals)} "
            f"to {format_number(scale * hi, decimals)})")


def format_probability(p: float, decimals: int = 2) -> str:
    """A posterior probability rounded to ``decimals`` decimals, never printed as 0 or 1.

    Parameters
    ----------
    p : float
        Probability in [0, 1].
    decimals : int, default 2

    Returns
    -------
    str
        E.g. ``"0.46"``; ``"<0.01"`` or ``">0.99"`` when it would round to 0 or 1 (a finite
        number of draws cannot show certainty); "n/a" when not finite.
    """
    if not np.isfinite(p):
        return _NA
    step = 10.0 ** -decimals
    if p < step / 2:
        return f"<{step:.{decimals}f}"
    if p >= 1 - step / 2:
        return f">{1 - step:.{decimals}f}"
    return f"{p:.{decimals}f}"


def _pct_estimate(row: pd.Series, decimals: int) -> str:
    """A summary row's slowing (fraction) as "mean (lo to hi)" in percent."""
    return format_estimate(row["mean"], row["ci_2.5"], row["ci_97.5"], decimals, 100.0)


def _check_decimals(**decimals: int) -> None:
    bad = {k: v for k, v in decimals.items() if not (isinstance(v, int) and 0 <= v <= 6)}
    if bad:
        raise ValueError(f"decimals must be integers from 0 to 6; got {bad}.")


def _check_threshold(threshold: float) -> float:
    if not (np.isscalar(threshold) and np.isfinite(float(threshold))):
        raise ValueError(f"threshold must be one finite number, e.g. 0.25; got {threshold!r}.")
    return float(threshold)


def interval_units(fit: FitResult) -> tuple[str, str]:
    """Singular and plural unit of the interval covariate: months, or the covariate's units.

    Parameters
    ----------
    fit : FitResult
        A fitted model (its ``interval`` option).

    Returns
    -------
    (str, str)
        ("month", "months") for the built-in intervals, else words naming the column's units.
    """
    interval = fit.config.get("interval", "cycle_length")
    if interval in ("cycle_length", "since_previous"):
        return "month", "months"
    return f"unit of {interval}", f"(units of {interval})"


def _note(*parts: str) -> str:
    return " ".join([*parts, CAVEAT])


# ---------------------------------------------------------------------- responders
def _inverse_cdf(values: np.ndarray, cdf: np.ndarray, q: float) -> int:
    """Smallest value whose cumulative probability reaches ``q`` (a float-sum tolerance)."""
    return int(values[np.flatnonzero(cdf >= q - 1e-9)[0]])


def responder_counts(fit: FitResult, threshold: float = 0.25) -> pd.DataFrame:
    """Posterior median and 95% interval of the number of responders, overall and per cycle.

    Read off the posterior distribution of the count R in ``fit.responders(threshold)`` by
    one rule for every row: the median is the smallest r with P(R <= r) >= 0.5, the interval
    runs from the smallest r with P(R <= r) >= 0.025 to the smallest with P(R <= r) >= 0.975.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).

    Returns
    -------
    pandas.DataFrame
        One row per scope ("overall", "cycle 1", ...): ``scope``, ``n_evaluable`` (patients),
        ``median``, ``ci_2.5``, ``ci_97.5`` (numbers of patients) and ``label`` ("15/19").
    """
    c = _check_threshold(threshold)
    tab = fit.responders(c)
    rows = []
    for scope, g in tab.groupby("scope", sort=False):
        r = g["responders"].to_numpy()
        cdf = np.cumsum(g["p_eq"].to_numpy())
        lo, med, hi = (_inverse_cdf(r, cdf, q) for q in (0.025, 0.5, 0.975))
        n = int(g["n_evaluable"].iloc[0])
        rows.append({"scope": scope, "n_evaluable": n, "median": med, "ci_2.5": lo,
                     "ci_97.5": hi, "label": f"{med}/{n}"})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- tables
def population_table(
    fit: FitResult, threshold: float = 0.25, *, pct_decimals: int = 1, prob_decimals: int = 2
) -> pd.DataFrame:
    """Population slowing: over all cycles, per cycle, and for a new patient.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    pct_decimals : int, default 1
        Decimals of slowing in percent.
    prob_decimals : int, default 2
        Decimals of probabilities.

    Returns
    -------
    pandas.DataFrame
        Columns ``Quantity``, ``Role`` ("primary": the primary estimand, the slowing over all
        cycles at the intervals the patients had; "secondary"; "exploratory": each cycle),
        ``Slowing, % (95% CrI)``, ``P(slowing > 0)``,
        ``P(slowing > <c>%)``; first the slowing at the intervals the patients had: "All
        cycles" (rho_bar, the cycle slowings weighted by the patient-months observed in each)
        and "Cycle k (mean interval g months)"; then the same "at a <g_ref>-month interval"
        and "New patient (predictive), at a <g_ref>-month interval" (its probability column is
        the probability that a new patient responds). Formatted strings; ``attrs["note"]``
        holds the footnote.
    """
    c = _check_threshold(threshold)
    _check_decimals(pct_decimals=pct_decimals, prob_decimals=prob_decimals)
    pop = fit.population(c)
    labels = population_labels(pop)
    order = [q for q in pop["quantity"] if "_given" in q] + [
        q for q in pop["quantity"] if "_given" not in q and q != "new_patient"] + ["new_patient"]
    pop = pop.set_index("quantity").loc[order].reset_index()
    pc = f"P(slowing > {_pct_label(c)})"
    rows = []
    for _, r in pop.iterrows():
        label = labels[r["quantity"]]
        rows.append({
            "Quantity": label,
            "Role": r["role"],
            "Slowing, % (95% CrI)": _pct_estimate(r, pct_decimals),
            "P(slowing > 0)": format_probability(r["p_gt_0"], prob_decimals),
            pc: format_probability(r[f"p_gt_{c:g}"], prob_decimals),
        })
    out = pd.DataFrame(rows)
    out.attrs["note"] = _note(
        "Slowing: reduction of the rate of decline, % of the pre-treatment rate (100 = decline "
        "halted). All cycles: cycle slowings weighted by the patient-months observed in each. "
        "First at the intervals the patients had (each cycle at its mean interval; an open last "
        "cycle without a known interval at the reference interval), then at the reference "
        "interval. New patient: predictive slowing of a patient not in the trial. Primary: "
        "the primary estimand, the slowing over all cycles at the intervals the patients had, "
        "with P(slowing > threshold); per-cycle results are exploratory.", _CRI)
    return out


def population_labels(pop: pd.DataFrame) -> dict[str, str]:
    """Reader-facing names of the rows of ``FitResult.population()`` (quantity -> label)."""
    g_ref = pop.attrs.get("interval_ref", 3.0)
    given = pop.attrs.get("given_interval", [])
    at_ref = f"at a {g_ref:g}-month interval"
    out = {}
    for q in pop["quantity"]:
        if q == "rho_bar":
            out[q] = f"All cycles, {at_ref}"
        elif q == "new_patient":
            out[q] = f"New patient (predictive), {at_ref}"
        elif q == "rho_bar_given":
            out[q] = "All cycles"
        elif q.startswith("rho_cycle_given["):
            k = int(q.removeprefix("rho_cycle_given[").removesuffix("]"))
            g = given[k - 1] if k - 1 < len(given) else float("nan")
            out[q] = (f"Cycle {k} (mean interval {g:.1f} months)" if np.isfinite(g)
                      else f"Cycle {k} (open, {at_ref})")
        else:
            k = q.removeprefix("rho_cycle[").removesuffix("]")
            out[q] = f"Cycle {k}, {at_ref}"
    return out


def cycle_table(
    fit: FitResult, threshold: float = 0.25, *, pct_decimals: int = 1, prob_decimals: int = 2
) -> pd.DataFrame:
    """Slowing and responders per treatment cycle, in the trial's form ("15/19").

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    pct_decimals : int, default 1
        Decimals of slowing in percent.
    prob_decimals : int, default 2
        Decimals of probabilities.

    Returns
    -------
    pandas.DataFrame
        One row per cycle and a last row "All cycles": ``Cycle``, ``Patients`` (evaluable:
        with a visit during the cycle), ``Patient-months`` (months observed), ``Slowing, %
        (95% CrI)`` (population rho_k; all cycles: rho_bar), ``P(slowing > 0)``,
        ``P(slowing > <c>%)``, and ``Responders (95% CrI)``: posterior median number of
        patients with slowing above the threshold over the patients evaluable, e.g. "15/19
        (11 to 18)"; in the last row a responder is a patient whose overall slowing exceeds
        it. Formatted strings; ``attrs["note"]`` holds the footnote.
    """
    c = _check_threshold(threshold)
    _check_decimals(pct_decimals=pct_decimals, prob_decimals=prob_decimals)
    cyc = fit.cycles(c)
    counts = responder_counts(fit, c).set_index("scope")
    pc = f"P(slowing > {_pct_label(c)})"

    def resp(scope: str) -> str:
        r = counts.loc[scope]
        return f"{r['label']} ({r['ci_2.5']} to {r['ci_97.5']})"

    pop = fit.population(c).set_index("quantity")
    rows = []
    for _, r in cyc.iterrows():
        k = int(r["cycle"])
        g = pop.loc[f"rho_cycle_given[{k}]"]
        rows.append({
            "Cycle": str(k), "Patients": str(int(r["n_patients"])),
            "Patient-months": format_number(r["patient_months"], 1),
            "Slowing, % (95% CrI)": _pct_estimate(g, pct_decimals),
            "P(slowing > 0)": format_probability(g["p_gt_0"], prob_decimals),
            pc: format_probability(g[f"p_gt_{c:g}"], prob_decimals),
            "Responders (95% CrI)": resp(f"cycle {k}"),
        })
    bar = pop.loc["rho_bar_given"]
    rows.append({
        "Cycle": "All cycles", "Patients": str(int(counts.loc["overall", "n_evaluable"])),
        "Patient-months": format_number(float(cyc["patient_months"].sum()), 1),
        "Slowing, % (95% CrI)": _pct_estimate(bar, pct_decimals),
        "P(slowing > 0)": format_probability(bar["p_gt_0"], prob_decimals),
        pc: format_probability(bar[f"p_gt_{c:g}"], prob_decimals),
        "Responders (95% CrI)": resp("overall"),
    })
    out = pd.DataFrame(rows)
    out.attrs["note"] = _note(
        "Patients: evaluable in the cycle (a visit after the injection and before the next). "
        "Slowing: population slowing rho_k at the intervals the patients had (each cycle at its "
        "mean interval), % of the pre-treatment rate. Responders: posterior median number of "
        "patients whose slowing exceeds "
        f"{_pct_label(c)} / patients evaluable (All cycles: overall slowing over all cycles "
        "of each treated patient).", _CRI)
    return out


def patient_table(
    fit: FitResult,
    threshold: float = 0.25,
    *,
    pct_decimals: int = 1,
    prob_decimals: int = 2,
    slope_decimals: int = 2,
) -> pd.DataFrame:
    """Each patient's pre-treatment slope, overall slowing and probability of responding.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    pct_decimals : int, default 1
        Decimals of slowing in percent.
    prob_decimals : int, default 2
        Decimals of probabilities.
    slope_decimals : int, default 2
        Decimals of the pre-treatment slope (outcome units per month).

    Returns
    -------
    pandas.DataFrame
        One row per patient: ``Patient``, ``Status`` (treated, untreated, not evaluable, flat
        run-in), ``Cycles``, ``Pre-treatment slope, <unit>/month (95% CrI)``, ``Overall
        slowing, % (95% CrI)``, ``Slope change, <unit>/month (95% CrI)`` (the same slowing on
        the additive scale: how much slower than the natural rate the patient declined) and
        ``P(slowing > <c>%)`` (the probability that the patient is a responder); "n/a" where a
        patient has no slowing (untreated, not evaluable, or a run-in that did not establish
        decline: outside every responder count). Formatted strings; ``attrs["note"]`` holds
        the footnote.
    """
    c = _check_threshold(threshold)
    _check_decimals(pct_decimals=pct_decimals, prob_decimals=prob_decimals,
                    slope_decimals=slope_decimals)
    tab = fit.patients(c)
    unit = fit.data.spec.unit
    slope_col = f"Pre-treatment slope, {unit}/month (95% CrI)"
    change_col = f"Slope change, {unit}/month (95% CrI)"
    pc = f"P(slowing > {_pct_label(c)})"
    rows = []
    for _, r in tab.iterrows():
        rows.append({
            "Patient": str(r["patient"]),
            "Status": str(r["status"]),
            "Cycles": str(int(r["n_cycles"])),
            slope_col: format_estimate(r["pre_slope_mean"], r["pre_slope_ci_2.5"],
                                       r["pre_slope_ci_97.5"], slope_decimals),
            "Overall slowing, % (95% CrI)": _pct_estimate(r, pct_decimals),
            change_col: format_estimate(r.get("change_mean", np.nan),
                                        r.get("change_ci_2.5", np.nan),
                                        r.get("change_ci_97.5", np.nan), slope_decimals),
            pc: format_probability(r[f"p_gt_{c:g}"], prob_decimals),
        })
    out = pd.DataFrame(rows)
    out.attrs["note"] = _note(
        "Overall slowing: the cycle slowings weighted by the months of each observed cycle, % "
        f"of the patient's pre-treatment rate. {pc}: the probability that the patient is a "
        "responder. Slope change: how much slower than the natural rate the patient declined "
        f"({unit}/month; positive = slower). Untreated and not-evaluable patients, and those "
        "whose run-in did not establish decline (flat run-in: a slowing is a fraction of a "
        "decline; their slope change is shown), are outside every responder count (n/a).",
        _CRI)
    return out


def interval_table(
    fit: FitResult,
    threshold: float = 0.25,
    intervals: Sequence[float] = (3.0, 4.0, 5.0, 6.0),
    *,
    pct_decimals: int = 1,
    prob_decimals: int = 2,
) -> pd.DataFrame:
    """Effect of the injection interval: theta and predicted population slowing.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    intervals : sequence of float, default (3, 4, 5, 6)
        Injection intervals (months) at which to predict the population slowing.
    pct_decimals : int, default 1
        Decimals of slowing in percent (and of theta in percentage points).
    prob_decimals : int, default 2
        Decimals of probabilities.

    Returns
    -------
    pandas.DataFrame
        Columns ``Quantity``, ``Estimate, % (95% CrI)``, ``P(theta < 0)``, ``P(slowing > 0)``,
        ``P(slowing > <c>%)``. First row: theta, the change of slowing per extra month of
        interval (percentage points per month); then one row per interval with the predicted
        population slowing (%). Cells that do not apply are empty. ``attrs["note"]`` holds
        the footnote.
    """
    c = _check_threshold(threshold)
    _check_decimals(pct_decimals=pct_decimals, prob_decimals=prob_decimals)
    tab = fit.interval_effect(c, intervals=tuple(float(g) for g in intervals))
    unit_one, unit = interval_units(fit)
    pc = f"P(slowing > {_pct_label(c)})"
    theta = tab.iloc[0]
    rows = [{
        "Quantity": f"Change per extra {unit_one} of interval (percentage points)",
        "Estimate, % (95% CrI)": _pct_estimate(theta, pct_decimals),
        "P(theta < 0)": format_probability(theta["p_lt_0"], prob_decimals),
        "P(slowing > 0)": "", pc: "",
    }]
    for _, r in tab.iloc[1:].iterrows():
        rows.append({
            "Quantity": f"Population slowing at {r['interval_months']:g} {unit}",
            "Estimate, % (95% CrI)": _pct_estimate(r, pct_decimals),
            "P(theta < 0)": "",
            "P(slowing > 0)": format_probability(r["p_gt_0"], prob_decimals),
            pc: format_probability(r[f"p_gt_{c:g}"], prob_decimals),
        })
    out = pd.DataFrame(rows)
    ref = float(fit.design.attrs.get("interval_ref", fit.config.get("interval_ref", 3.0)))
    out.attrs["note"] = _note(
        "theta: change of the population slowing per extra unit of injection interval; "
        "P(theta < 0) is the probability that longer intervals give less slowing. Predictions: "
        f"all-cycle population slowing at the given interval (reference {ref:g} {unit}).", _CRI)
    return out


# ---------------------------------------------------------------------- export
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}
_NUMERIC = re.compile(r"^[-+<>]?\.?\d")


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", out)  # minus signs, not hyphens


def _alignments(df: pd.DataFrame) -> list[str]:
    """'r' for columns of numbers or estimates (first cell starts like a number), else 'l'."""
    out = []
    for i, col in enumerate(df.columns):
        cells = [str(v) for v in df[col] if str(v) not in ("", _NA)]
        numeric = pd.api.types.is_numeric_dtype(df[col]) or (
            bool(cells) and all(_NUMERIC.match(v) for v in cells))
        out.append("r" if numeric and i > 0 else "l")
    return out


def _cell(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def _markdown(df: pd.DataFrame, caption: str | None) -> str:
    def row(cells: Sequence[object]) -> str:
        return "| " + " | ".join(_cell(v).replace("|", r"\|") for v in cells) + " |"

    rule = "| " + " | ".join("---:" if a == "r" else ":---" for a in _alignments(df)) + " |"
    lines = [f"**{caption}**", ""] if caption else []
    lines += [row(df.columns), rule, *(row(r) for r in df.itertuples(index=False))]
    if df.attrs.get("note"):
        lines += ["", f"_Note._ {df.attrs['note']}"]
    return "\n".join(lines) + "\n"


def _latex(df: pd.DataFrame, caption: str | None, label: str | None) -> str:
    def row(cells: Sequence[object]) -> str:
        return " & ".join(_latex_escape(_cell(v)) for v in cells) + r" \\"

    float_env = caption is not None or label is not None
    lines = [r"% requires \usepackage{booktabs}"]
    if float_env:
        lines += [r"\begin{table}[htbp]", r"\centering"]
        if caption is not None:
            lines.append(rf"\caption{{{_latex_escape(caption)}}}")
        if label is not None:
            lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{''.join(_alignments(df))}}}", r"\toprule", row(df.columns),
              r"\midrule", *(row(r) for r in df.itertuples(index=False)), r"\bottomrule",
              r"\end{tabular}"]
    if df.attrs.get("note"):
        lines.append(rf"\par\smallskip{{\footnotesize Note. {_latex_escape(df.attrs['note'])}}}")
    if float_env:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def export_table(
    df: pd.DataFrame, path: str | Path, *, caption: str | None = None, label: str | None = None
) -> Path:
    """Write a table as CSV, Markdown or LaTeX (booktabs), chosen by the file extension.

    Parameters
    ----------
    df : pandas.DataFrame
        The table (e.g. from :func:`cycle_table`); its index is not written.
    path : str or Path
        ``.csv`` (plain CSV), ``.md`` (a pipe table, with the caption above and
        ``attrs["note"]`` below) or ``.tex`` (a ``tabular`` with ``\\toprule``, ``\\midrule``
        and ``\\bottomrule``; needs ``\\usepackage{booktabs}``; the note follows in small
        type). Parent folders are created.
    caption : str, optional
        Table caption (Markdown, LaTeX); in LaTeX a caption or label wraps the tabular in a
        ``table`` float.
    label : str, optional
        LaTeX ``\\label`` key, e.g. ``"tab:cycles"``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        For any other extension.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".csv", ".md", ".tex"):
        raise ValueError(f"export_table writes .csv, .md or .tex files; got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".md":
        path.write_text(_markdown(df, caption), encoding="utf-8")
    else:
        path.write_text(_latex(df, caption, label), encoding="utf-8")
    return path
