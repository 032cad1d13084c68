"""Publication figures of a fit (matplotlib): presentation only.

Every number drawn comes from a :class:`~slopeshift.fit.FitResult` table (``fit.patients()``,
``fit.cycles()``, ``fit.slowing()``, ``fit.responders()``, ``fit.interval_effect()``), from
:mod:`slopeshift.predict` or from :func:`slopeshift.tables.responder_counts` (so that figures
and tables print the same responder counts); the figures compute no statistics of their own.
Every function returns the :class:`matplotlib.figure.Figure`, draws into ``ax=`` (or ``axes=``)
when given and otherwise creates a figure of ``figsize`` (inches). Slowing is shown as a
percentage of each patient's own pre-treatment rate of decline (25 = 25% slower decline), months
are months since the patient's first injection, and colours follow the colour-blind-safe
Okabe-Ito palette.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from slopeshift.predict import predictive_scores, trajectory_bands
from slopeshift.tables import format_estimate, format_probability, responder_counts

if TYPE_CHECKING:
    from slopeshift.fit import FitResult

__all__ = [
    "DEFAULT_INTERVALS",
    "OKABE_ITO",
    "plot_cycles",
    "plot_interval_effect",
    "plot_patient_forest",
    "plot_ppc",
    "plot_responders",
    "plot_trace",
    "plot_trajectories",
]

#: The Okabe-Ito colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
_C = OKABE_ITO
_CHAIN_COLOURS = ("blue", "orange", "green", "purple", "sky_blue", "vermillion", "black")
_GREY = "0.45"
SLOWING_LABEL = "Slowing of decline (% of pre-treatment rate)"
MONTHS_LABEL = "Months since first injection"
_DEFAULT_TRACE_VARS = (
    "mu_alpha", "mu_beta", "sd_beta", "sigma", "nu", "theta", "rho_cycle", "delta_cycle",
    "rho_bar", "sd_patient", "sd_patient_cycle", "jump", "sd_jump",
)  # fmt: skip
_MAX_TRACE_ROWS = 40
#: Injection intervals (months) of :func:`plot_interval_effect`: 3 to 6 in steps of 0.1.
DEFAULT_INTERVALS: tuple[float, ...] = tuple(round(float(g), 2) for g in np.linspace(3, 6, 31))


# ---------------------------------------------------------------------- helpers
def _pct(threshold: float) -> str:
    return f"{100 * threshold:g}%"


def _pcol(threshold: float) -> str:
    return f"p_gt_{threshold:g}"


def _score_label(fit: FitResult) -> str:
    spec = fit.data.spec
    return f"{spec.label} ({spec.unit})"


def _single_axes(ax: Axes | None, figsize: tuple[float, float] | None,
                 default: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, new = plt.subplots(figsize=figsize or default, layout="constrained")
    return fig, new


def _many_axes(axes: Axes | Sequence[Axes] | np.ndarray | None, n: int, ncols: int,
               figsize: tuple[float, float] | None,
               panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """``n`` axes: the given ones (at least ``n``) or a new grid of ``ncols`` columns."""
    if axes is not None:
        given = [axes] if isinstance(axes, Axes) else list(np.ravel(np.asarray(axes, dtype=object)))
        if len(given) < n:
            raise ValueError(f"axes has {len(given)} Axes; this figure needs {n}.")
        return given[0].figure, given[:n]
    nrows = math.ceil(n / ncols)
    size = figsize or (panel[0] * ncols, panel[1] * nrows)
    fig, grid = plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
    flat = list(grid.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def _threshold_line(ax: Axes, threshold: float, vertical: bool) -> None:
    line = ax.axvline if vertical else ax.axhline
    line(100 * threshold, color=_C["vermillion"], ls="--", lw=1.2,
         label=f"threshold ({_pct(threshold)})")


def _zero_line(ax: Axes, vertical: bool) -> None:
    line = ax.axvline if vertical else ax.axhline
    line(0.0, color=_GREY, lw=0.8, label="no change")


def _select_patients(fit: FitResult, patients: str | Sequence[str] | None) -> list[str]:
    ids = [str(p) for p in fit.design["patient"].values]
    chosen = ids if patients is None else (
        [patients] if isinstance(patients, str) else [str(p) for p in patients]
    )
    unknown = [p for p in chosen if p not in ids]
    if unknown or not chosen:
        shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
        raise ValueError(f"unknown or no patient(s) {unknown}; the fit has patients {shown}.")
    return chosen


def _interval_label(fit: FitResult) -> str:
    interval = fit.config.get("interval", "cycle_length")
    if interval == "cycle_length":
        return "Injection interval: months to the next injection"
    if interval == "since_previous":
        return "Injection interval: months since the previous injection"
    return f"Interval covariate {interval!r} (its own units)"


# ---------------------------------------------------------------------- trajectories
def plot_trajectories(
    fit: FitResult,
    patients: str | Sequence[str] | None = None,
    ncols: int = 4,
    *,
    axes: Axes | Sequence[Axes] | np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Observed scores and the fitted mean trajectory of each patient, one panel per patient.

    Each panel shows the observed scores (points), the posterior mean of the patient's mean
    score mu_i(t) (line) with its 50% and 95% bands, and the injections (dashed vertical
    lines). Bands come from :func:`slopeshift.predict.trajectory_bands`.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    patients : str or sequence of str, optional
        One patient id, or several; default every patient.
    ncols : int, default 4
        Panels per row when a new figure is made.
    axes : Axes or sequence of Axes, optional
        Draw into these (at least one per patient) instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default 3.2 x 2.6 per panel.

    Returns
    -------
    matplotlib.figure.Figure
        x: months since the patient's first injection (an untreated patient: since the last
        visit); y: the outcome in its units (ALSFRS-R points).
    """
    ids = _select_patients(fit, patients)
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, not {ncols}.")
    ncols = min(ncols, len(ids))
    fig, axs = _many_axes(axes, len(ids), ncols, figsize, panel=(3.2, 2.6))
    d = fit.design
    ylabel = _score_label(fit)
    for i, (p, ax) in enumerate(zip(ids, axs, strict=True)):
        bands = trajectory_bands(fit.idata, p)
        ax.fill_between(bands["month"], bands["ci_2.5"], bands["ci_97.5"], color=_C["sky_blue"],
                        alpha=0.3, lw=0, label="95% interval")
        ax.fill_between(bands["month"], bands["ci_25"], bands["ci_75"], color=_C["sky_blue"],
                        alpha=0.6, lw=0, label="50% interval")
        ax.plot(bands["month"], bands["mean"], color=_C["blue"], lw=1.5, label="posterior mean")
        pos = int(np.flatnonzero(d["patient"].values == p)[0])
        sel = d["patient_index"].values == pos
        ax.scatter(d["month"].values[sel], d["y"].values[sel], s=10, color=_C["black"],
                   zorder=3, label="observed")
        taus = d["injection_month"].sel(patient=p).values
        for j, tau in enumerate(taus[np.isfinite(taus)]):
            ax.axvline(tau, color=_C["orange"], ls="--", lw=1.0,
                       label="injection" if j == 0 else None)
        treated = bool(d["treated"].sel(patient=p))
        ax.set_title(p if treated else f"{p} (untreated)", fontsize=9)
        ax.tick_params(labelsize=7)
        if i + ncols >= len(ids):
            ax.set_xlabel(MONTHS_LABEL, fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=8)
    axs[0].legend(fontsize=6, loc="best", frameon=False)
    return fig


# ---------------------------------------------------------------------- patients
def plot_patient_forest(
    fit: FitResult,
    threshold: float = 0.25,
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Each patient's overall slowing with its 95% interval, ordered by slowing.

    Treated patients are ordered by posterior mean slowing (largest at the top), with
    P(slowing > threshold) printed on the right, rounded as in
    :func:`slopeshift.tables.patient_table`. Untreated and not-evaluable patients (no visit
    after an injection) are listed apart below, without an interval: they have no slowing
    and are outside every responder count. Numbers come from ``fit.patients(threshold)``.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default 6.5 wide, 0.28 per patient high.

    Returns
    -------
    matplotlib.figure.Figure
        x: overall slowing, % of the patient's pre-treatment rate of decline.
    """
    tab = fit.patients(threshold)
    ev = tab[tab["status"] == "treated"].sort_values("mean").reset_index(drop=True)
    other = tab[tab["status"] != "treated"].reset_index(drop=True)
    n_other = len(other)
    offset = n_other + 1 if n_other else 0
    fig, ax = _single_axes(ax, figsize, (6.5, 0.28 * (len(ev) + offset) + 1.6))

    y = offset + np.arange(len(ev), dtype=float)
    mean = 100 * ev["mean"].to_numpy()
    err = np.vstack([mean - 100 * ev["ci_2.5"].to_numpy(), 100 * ev["ci_97.5"].to_numpy() - mean])
    ax.errorbar(mean, y, xerr=err, fmt="o", ms=4, color=_C["blue"], ecolor=_C["blue"],
                elinewidth=1.2, capsize=2, label="mean and 95% interval")
    _zero_line(ax, vertical=True)
    _threshold_line(ax, threshold, vertical=True)
    right = ax.get_yaxis_transform()
    ax.text(1.01, offset + len(ev) - 0.3, f"P(>{_pct(threshold)})", transform=right,
            fontsize=7, va="bottom", ha="left")
    for yi, p in zip(y, ev[_pcol(threshold)], strict=True):
        ax.text(1.01, yi, format_probability(p), transform=right, fontsize=7, va="center",
                ha="left")
    labels = list(ev["patient"])
    ticks = list(y)
    if n_other:
        ax.axhline(n_other, color=_GREY, lw=0.6, ls=":")
        for i, r in other.iterrows():
            yi = n_other - 1 - i
            label = f"{r['status']}: no slowing estimated"
            if r["status"] == "flat run-in" and np.isfinite(r.get("change_mean", np.nan)):
                change = format_estimate(r["change_mean"], r["change_ci_2.5"],
                                         r["change_ci_97.5"], 2)
                label = (f"flat run-in (decline not established): slope change {change} "
                         f"{fit.data.spec.unit}/month")
            ax.text(0.02, yi, label, transform=right, fontsize=7, va="center", color=_GREY)
            ticks.append(yi)
            labels.append(r["patient"])
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(-0.7, offset + len(ev) - 0.3)
    ax.set_xlabel("Overall slowing of decline (% of pre-treatment rate)")
    ax.set_ylabel("Patient")
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    return fig


# ---------------------------------------------------------------------- cycles
def plot_cycles(
    fit: FitResult,
    threshold: float = 0.25,
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Slowing in each treatment cycle: population rho_k and each patient's rho_ik.

    For each cycle 1..K: the population slowing rho_k (posterior mean and 95% interval, at the
    intervals the patients had: ``rho_cycle_given[k]`` of ``fit.population(threshold)``), the
    posterior means of the patient slowings rho_ik of the patients with a visit in that cycle
    (points, spread sideways) from ``fit.slowing(threshold)``, and above each cycle the
    posterior median number of responders out of the patients evaluable in it ("15/19", from
    :func:`slopeshift.tables.responder_counts`, as in :func:`slopeshift.tables.cycle_table`).

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default (6.5, 4.2).

    Returns
    -------
    matplotlib.figure.Figure
        x: treatment cycle; y: slowing, % of the pre-treatment rate of decline.
    """
    fig, ax = _single_axes(ax, figsize, (6.5, 4.2))
    cyc = fit.cycles(threshold)
    sl = fit.slowing(threshold)
    sl = sl[sl["observed"]]
    for i, (k, grp) in enumerate(sl.groupby("cycle", sort=True)):
        spread = np.linspace(-0.14, 0.14, len(grp)) if len(grp) > 1 else np.zeros(1)
        ax.scatter(k - 0.12 + spread, 100 * grp["mean"].to_numpy(), s=14, color=_C["sky_blue"],
                   edgecolor=_C["blue"], linewidth=0.4, alpha=0.8, zorder=2,
                   label=r"patient $\rho_{ik}$ (posterior mean)" if i == 0 else None)
    k = cyc["cycle"].to_numpy()
    pop = fit.population(threshold).set_index("quantity")
    given = pop.loc[[f"rho_cycle_given[{kk}]" for kk in k]]
    mean = 100 * given["mean"].to_numpy()
    err = np.vstack([mean - 100 * given["ci_2.5"].to_numpy(),
                     100 * given["ci_97.5"].to_numpy() - mean])
    ax.errorbar(k + 0.18, mean, yerr=err, fmt="s", ms=6, color=_C["black"], ecolor=_C["black"],
                elinewidth=1.5, capsize=3, zorder=3,
                label=r"population $\rho_k$ (mean, 95% interval)")
    _zero_line(ax, vertical=False)
    _threshold_line(ax, threshold, vertical=False)
    top = ax.get_xaxis_transform()
    counts = responder_counts(fit, threshold).set_index("scope")
    for kk in k:
        ax.text(kk, 1.01, counts.loc[f"cycle {kk}", "label"], transform=top, ha="center",
                va="bottom", fontsize=8)
    ax.text(0.0, 1.07, f"Responders (slowing > {_pct(threshold)}), posterior median:",
            transform=ax.transAxes, fontsize=8, va="bottom")
    ax.set_xticks(k, [f"Cycle {kk}\n(n = {n})" for kk, n in
                      zip(k, cyc["n_patients"].to_numpy(), strict=True)])
    ax.set_xlim(k.min() - 0.6, k.max() + 0.6)
    ax.set_xlabel("Treatment cycle (n: patients with a visit in the cycle)")
    ax.set_ylabel(SLOWING_LABEL)
    ax.legend(fontsize=7, loc="best", frameon=False)
    return fig


# ---------------------------------------------------------------------- responders
def plot_responders(
    fit: FitResult,
    threshold: float = 0.25,
    scope: str = "overall",
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Posterior distribution of the number of responders R.

    Bars: P(R = r); line: P(R >= r), the probability that at least r patients respond. From
    ``fit.responders(threshold)``.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    threshold : float, default 0.25
        Responder threshold as a fraction of the pre-treatment rate (0.25 = 25% slower).
    scope : str, default "overall"
        ``"overall"`` (overall slowing rho_i > threshold) or ``"cycle k"`` (rho_ik > threshold
        in cycle k).
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default (6.0, 3.8).

    Returns
    -------
    matplotlib.figure.Figure
        x: number of responders (patients); y: posterior probability.
    """
    tab = fit.responders(threshold)
    scopes = list(dict.fromkeys(tab["scope"]))
    if scope not in scopes:
        raise ValueError(f"scope must be one of {scopes}, not {scope!r}.")
    g = tab[tab["scope"] == scope]
    n = int(g["n_evaluable"].iloc[0])
    fig, ax = _single_axes(ax, figsize, (6.0, 3.8))
    r = g["responders"].to_numpy()
    ax.bar(r, g["p_eq"].to_numpy(), width=0.8, color=_C["sky_blue"], edgecolor=_C["blue"],
           linewidth=0.6, label="P(R = r)")
    ge = g["p_ge"].to_numpy()
    ax.plot(r, ge, color=_C["black"], marker="o", ms=3, lw=1.2, label="P(R \u2265 r)")
    for ri, p in zip(r, ge, strict=True):
        if 0.005 <= p <= 0.995:
            ax.annotate(f"{p:.2f}", (ri, p), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=6)
    ax.set_ylim(0, 1.08)
    ax.set_xticks(r if n <= 25 else np.linspace(0, n, 6).round().astype(int))
    ax.set_xlabel(f"Number of responders r (slowing > {_pct(threshold)}) of {n} evaluable "
                  "patients")
    ax.set_ylabel("Posterior probability")
    ax.set_title("All cycles (overall slowing)" if scope == "overall" else scope.capitalize(),
                 fontsize=10)
    ax.legend(fontsize=7, loc="center left", frameon=False)
    return fig


# ---------------------------------------------------------------------- interval
def plot_interval_effect(
    fit: FitResult,
    intervals: Sequence[float] | np.ndarray = DEFAULT_INTERVALS,
    threshold: float = 0.25,
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Predicted population slowing as a function of the injection interval.

    Line and band: posterior mean and 95% interval of rho_bar + theta (g - g_ref) from
    ``fit.interval_effect(threshold, intervals)``; ticks at the bottom: the intervals of the
    observed cycles; the estimate of theta is printed as the title.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    intervals : sequence of float, default 31 values from 3 to 6
        Intervals g (months) at which to predict.
    threshold : float, default 0.25
        Responder threshold (fraction), drawn as a reference line.
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default (6.0, 4.0).

    Returns
    -------
    matplotlib.figure.Figure
        x: injection interval (months); y: population slowing, % of the pre-treatment rate.
    """
    grid = np.asarray(intervals, dtype=float).ravel()
    if grid.size < 2 or not np.all(np.isfinite(grid)):
        raise ValueError("intervals must hold at least two finite numbers (months).")
    tab = fit.interval_effect(threshold, intervals=grid)
    theta = tab.iloc[0]
    pred = tab.iloc[1:]
    fig, ax = _single_axes(ax, figsize, (6.0, 4.0))
    g = pred["interval_months"].to_numpy()
    ax.fill_between(g, 100 * pred["ci_2.5"].to_numpy(), 100 * pred["ci_97.5"].to_numpy(),
                    color=_C["sky_blue"], alpha=0.35, lw=0, label="95% interval")
    ax.plot(g, 100 * pred["mean"].to_numpy(), color=_C["blue"], lw=2, label="posterior mean")
    _zero_line(ax, vertical=False)
    _threshold_line(ax, threshold, vertical=False)
    sl = fit.slowing(threshold)
    seen = sl.loc[sl["observed"], "interval"].dropna().to_numpy()
    if seen.size:
        ax.plot(seen, np.full(seen.size, 0.02), "|", ms=9, color=_GREY,
                transform=ax.get_xaxis_transform(), label="observed cycle intervals")
    ax.set_title(f"\u03b8 = {100 * theta['mean']:.1f} percentage points per month "
                 f"(95% CrI {100 * theta['ci_2.5']:.1f} to {100 * theta['ci_97.5']:.1f}); "
                 f"P(\u03b8 < 0) = {theta['p_lt_0']:.2f}", fontsize=8)
    ax.set_xlabel(_interval_label(fit))
    ax.set_ylabel("Population slowing (% of pre-treatment rate)")
    ax.legend(fontsize=7, loc="best", frameon=False)
    return fig


# ---------------------------------------------------------------------- diagnostics
def _trace_rows(fit: FitResult, var_names: Sequence[str] | None,
                coords: Mapping[str, Sequence] | None) -> list[tuple[str, np.ndarray]]:
    post = fit.posterior
    names = ([v for v in _DEFAULT_TRACE_VARS if v in post] if var_names is None
             else list(var_names))
    unknown = [v for v in names if v not in post]
    if unknown or not names:
        raise ValueError(f"unknown or no variable(s) {unknown}; the posterior has "
                         f"{sorted(post.data_vars)}.")
    rows = []
    for v in names:
        da = post[v]
        sel = {k: list(c) for k, c in (coords or {}).items() if k in da.dims}
        da = da.sel(sel)
        extra = [dim for dim in da.dims if dim not in ("chain", "draw")]
        if not extra:
            rows.append((v, da.transpose("chain", "draw").values))
            continue
        flat = da.stack(element=extra).transpose("element", "chain", "draw")
        for i, label in enumerate(flat["element"].values):
            key = ",".join(str(x) for x in np.atleast_1d(label))
            rows.append((f"{v}[{key}]", flat.values[i]))
    if len(rows) > _MAX_TRACE_ROWS:
        raise ValueError(f"{len(rows)} panels requested (more than {_MAX_TRACE_ROWS}); select "
                         "elements with coords=, e.g. coords={'patient': ['P01', 'P02']}.")
    return rows


def plot_trace(
    fit: FitResult,
    var_names: Sequence[str] | None = None,
    *,
    kind: str = "trace",
    coords: Mapping[str, Sequence] | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Sampler diagnostics: per-chain distributions (or rank histograms) and traces.

    One row per scalar quantity (vector variables are split into their elements): on the left
    each chain's histogram of draws (``kind="trace"``) or of the normalised ranks of its draws
    among all chains (``kind="rank"``: flat when chains agree); on the right each chain's
    draws in order, with divergent draws marked at the bottom.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    var_names : sequence of str, optional
        Posterior variables; default the population parameters present (``mu_alpha``,
        ``mu_beta``, ``sd_beta``, ``sigma``, ``theta``, ``rho_cycle``, ``rho_bar``,
        ``sd_patient``, ``sd_patient_cycle``, and ``nu`` / ``jump`` when in the model).
    kind : {"trace", "rank"}, default "trace"
        Left column: draw histograms or rank histograms.
    coords : mapping, optional
        Elements to keep, e.g. ``{"patient": ["P01"], "cycle": [1, 2]}``.
    axes : array of Axes, optional
        2 Axes per row (row-major: distribution, trace) to draw into.
    figsize : (float, float), optional
        Figure size in inches; default 9 wide, 1.5 per row high.

    Returns
    -------
    matplotlib.figure.Figure
        Left x: parameter value (its own units: slowing as a fraction, slopes in points/month,
        sigma in points) or normalised rank; right x: draw number after tuning.

    Raises
    ------
    ValueError
        For an unknown variable or kind, or more than 40 rows.
    """
    if kind not in ("trace", "rank"):
        raise ValueError(f"kind must be 'trace' or 'rank', not {kind!r}.")
    rows = _trace_rows(fit, var_names, coords)
    fig, axs = _many_axes(axes, 2 * len(rows), 2, figsize or (9.0, 1.5 * len(rows) + 0.6),
                          panel=(4.5, 1.5))
    div = fit.idata["sample_stats"]["diverging"].transpose("chain", "draw").values
    for i, (label, values) in enumerate(rows):
        left, right = axs[2 * i], axs[2 * i + 1]
        n_chain, n_draw = values.shape
        if kind == "rank":
            ranks = np.argsort(np.argsort(values.ravel())).reshape(values.shape)
            values_left = (ranks + 0.5) / ranks.size
            left.axhline(1.0, color=_GREY, ls=":", lw=0.8)
            left.set_xlim(0, 1)
        else:
            values_left = values
        for c in range(n_chain):
            colour = _C[_CHAIN_COLOURS[c % len(_CHAIN_COLOURS)]]
            left.hist(values_left[c], bins=20 if kind == "rank" else 30, density=True,
                      histtype="step", color=colour, lw=1.0, label=f"chain {c}")
            right.plot(np.arange(n_draw), values[c], color=colour, lw=0.5, alpha=0.8)
            bad = np.flatnonzero(div[c])
            if bad.size:
                right.plot(bad, np.zeros(bad.size), "|", color=_C["vermillion"], ms=6,
                           transform=right.get_xaxis_transform())
        left.set_ylabel(label, fontsize=8)
        left.set_yticks([])
        for a in (left, right):
            a.tick_params(labelsize=7)
    axs[-2].set_xlabel("Normalised rank" if kind == "rank" else "Value", fontsize=8)
    axs[-1].set_xlabel("Draw (after tuning); ticks at the bottom: divergences", fontsize=8)
    axs[0].legend(fontsize=6, frameon=False)
    return fig


def plot_ppc(
    fit: FitResult,
    random_seed: int = 0,
    n_replicates: int = 50,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Posterior predictive check of the scores: observed versus replicated data sets.

    Left: the empirical CDF of the observed scores over all visits (black) against those of
    ``n_replicates`` replicated data sets (light blue); right: the histogram of observed scores
    against the pooled replicates. Replicates come from
    :func:`slopeshift.predict.predictive_scores` (censored at the scale's bounds when the model
    was fitted with censoring), taken from evenly spaced posterior draws.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    random_seed : int, default 0
        Seed of the replicated noise.
    n_replicates : int, default 50
        Replicated data sets drawn (at most the number of posterior draws).
    axes : sequence of 2 Axes, optional
        Draw into these instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default (9.0, 3.6).

    Returns
    -------
    matplotlib.figure.Figure
        x: the outcome in its units (ALSFRS-R points); y: cumulative proportion / proportion of
        visits.
    """
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be at least 1, not {n_replicates}.")
    bounds = fit.data.spec.censor_bounds if fit.config.get("censored") else None
    yrep = predictive_scores(fit.idata, random_seed, censor_bounds=bounds)
    flat = yrep.stack(sample=("chain", "draw")).transpose("sample", "visit").values
    pick = np.unique(np.linspace(0, flat.shape[0] - 1, min(n_replicates, flat.shape[0]))
                     .round().astype(int))
    reps = flat[pick]
    y = fit.design["y"].values
    fig, (ax0, ax1) = _many_axes(axes, 2, 2, figsize or (9.0, 3.6), panel=(4.5, 3.6))
    for j, rep in enumerate(reps):
        ax0.ecdf(rep, color=_C["sky_blue"], alpha=0.35, lw=0.7,
                 label=f"replicated ({len(reps)} draws)" if j == 0 else None)
    ax0.ecdf(y, color=_C["black"], lw=1.8, label="observed")
    lo = math.floor(min(y.min(), reps.min()))
    hi = math.ceil(max(y.max(), reps.max()))
    bins = (np.arange(lo - 0.5, hi + 1.5) if fit.data.spec.integer and hi - lo <= 200
            else np.linspace(lo, hi, 41))
    ax1.hist(y, bins=bins, density=True, color="0.8", edgecolor="0.4", lw=0.4, label="observed")
    ax1.hist(reps.ravel(), bins=bins, density=True, histtype="step", color=_C["blue"], lw=1.4,
             label="replicated (pooled)")
    label = _score_label(fit)
    ax0.set_xlabel(label)
    ax0.set_ylabel("Cumulative proportion of visits")
    ax1.set_xlabel(label)
    ax1.set_ylabel("Proportion of visits")
    for a in (ax0, ax1):
        a.legend(fontsize=7, loc="upper left", frameon=False)
    return fig
