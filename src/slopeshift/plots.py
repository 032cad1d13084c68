"""Publication figures of a fit (matplotlib): presentation only.

Every number drawn comes from a :class:`~slopeshift.fit.FitResult` table (``fit.patients()``,
``fit.cycles()``, ``fit.slowing()``, ``fit.responders()``, ``fit.interval_effect()``), from
the fit's design (observed scores, injection months, intervals), from
:mod:`slopeshift.predict` or from :func:`slopeshift.tables.responder_counts` (so that figures
and tables print the same responder counts); the figures compute no statistics of their own.
The diagnostic figures are drawn by ArviZ (``arviz_plots``) into slopeshift's own axes. Every
function returns the :class:`matplotlib.figure.Figure`, draws into ``ax=`` (or ``axes=``) when
given and otherwise creates a figure of ``figsize`` (inches). Slowing is shown as a percentage
of each patient's own pre-treatment rate of decline (25 = 25% slower decline), months are months
since the patient's first injection, and colours follow the colour-blind-safe Okabe-Ito palette.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from arviz_base.labels import BaseLabeller
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from slopeshift.predict import predictive_scores, trajectory_bands
from slopeshift.tables import (
    format_estimate,
    format_probability,
    interval_units,
    responder_counts,
)

if TYPE_CHECKING:
    import pandas as pd

    from slopeshift.fit import FitResult

__all__ = [
    "DEFAULT_INTERVALS",
    "OKABE_ITO",
    "plot_cycles",
    "plot_interval_effect",
    "plot_loo_pit",
    "plot_operating_characteristics",
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
#: x label of an untreated patient's panel: its months are counted back from its last visit.
UNTREATED_MONTHS_LABEL = "Months relative to last visit (never injected)"
_SAMPLE = ("chain", "draw")
_DEFAULT_TRACE_VARS = (
    "mu_alpha", "mu_beta", "sd_beta", "sd_drift", "acceleration", "sigma", "nu", "theta",
    "rho_cycle", "delta_cycle", "rho_bar", "sd_patient", "sd_patient_cycle", "jump", "sd_jump",
)  # fmt: skip
_MAX_TRACE_ROWS = 40
_LABEL_WIDTH_PT = 24.0  # a probability label ("0.95", 7 pt) with its box, points
#: Injection intervals (months) drawn by :func:`plot_interval_effect` when no cycle of the fit
#: has an observed interval (every one of them then an extrapolation): 3 to 6 in steps of 0.1.
DEFAULT_INTERVALS: tuple[float, ...] = tuple(round(float(g), 2) for g in np.linspace(3, 6, 31))
_N_INTERVALS = 61


# ---------------------------------------------------------------------- helpers
def _pct(threshold: float) -> str:
    return f"{100 * threshold:g}%"


def _pcol(threshold: float) -> str:
    return f"p_gt_{threshold:g}"


def _score_label(fit: FitResult) -> str:
    spec = fit.data.spec
    if fit.config.get("domains"):
        # the four-domain model's trajectory is the latent total: the domains as if none had
        # a floor, so it runs below a total that flattened at a domain floor
        return f"latent {spec.label} ({spec.unit}; no floors)"
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
    """x label of the interval figure: what its numbers are, in their units."""
    interval = fit.config.get("interval", "cycle_length")
    if interval == "cycle_length":
        return "Injection interval (months from an injection to the next)"
    if interval == "since_previous":
        return "Injection interval (months since the previous injection)"
    return f"{interval} (the interval covariate, in its own units)"


class _FlatLabeller(BaseLabeller):
    """ArviZ labels on one line, as in ``fit.diagnostics()``: ``rho_cycle[1]``."""

    def make_label_vert(self, var_name: str, sel: dict, isel: dict) -> str:
        return self.make_label_flat(var_name, sel, isel)


def _plot_collection(grid: np.ndarray, data: xr.Dataset, rows: list[str], cols: list[str],
                     **pc_kwargs) -> azp.PlotCollection:
    """An ``arviz_plots.PlotCollection`` laid out as ``PlotCollection.grid`` would lay out
    ``data``, but on the given matplotlib Axes (``grid``: 2-D array, rows x columns).

    ArviZ's plotting functions create their own figure unless given a collection; this lets
    them draw into ``axes=`` and into figures sized and laid out as slopeshift's others. The
    layout (which Axes shows which variable and element) is ArviZ's own: computed by
    ``PlotCollection.grid`` on its backend without drawing (``"none"``), then pointed at
    ``grid``.
    """
    pc = azp.PlotCollection.grid(data, cols=cols, rows=rows, backend="none", **pc_kwargs)
    rows_ds = pc.viz["row_index"].to_dataset()
    cols_ds = pc.viz["col_index"].to_dataset()
    plot = {}
    for v in rows_ds.data_vars:
        r, c = rows_ds[v].values, cols_ds[v].values
        targets = np.empty(r.shape, dtype=object)
        for idx in np.ndindex(r.shape):
            targets[idx] = grid[r[idx], c[idx]]
        plot[v] = (rows_ds[v].dims, targets)
    pc.viz = xr.DataTree.from_dict({
        "/": xr.Dataset({"figure": np.array(grid.flat[0].figure, dtype=object)}),
        "plot": xr.Dataset(plot, coords=rows_ds.coords),
        "row_index": rows_ds,
        "col_index": cols_ds,
    })
    pc.backend = "matplotlib"
    return pc


# ---------------------------------------------------------------------- trajectories
def plot_trajectories(
    fit: FitResult,
    patients: str | Sequence[str] | None = None,
    ncols: int = 4,
    *,
    sharey: bool = True,
    axes: Axes | Sequence[Axes] | np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Observed scores and the fitted mean trajectory of each patient, one panel per patient.

    Each panel shows the observed scores (points), the posterior mean of the patient's mean
    score mu_i(t) (line) with its 50% and 95% bands, and the injections (dashed vertical
    lines). Bands come from :func:`slopeshift.predict.trajectory_bands`. A treated patient's x
    axis is months since the first injection; an untreated patient's (never injected, titled
    "untreated") is months relative to the last visit (all <= 0), and says so in its x label.
    On an integer scale (ALSFRS-R) the y ticks are whole points. For the four-domain model
    (``domains=True``) the line is the latent total, the domains as if none had a floor, so it
    runs below a total that flattened at a domain floor; the y label says so.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    patients : str or sequence of str, optional
        One patient id, or several; default every patient.
    ncols : int, default 4
        Panels per row when a new figure is made.
    sharey : bool, default True
        Give every panel the same y range (covering all the drawn patients' scores and 95%
        bands, in outcome units), so that slopes (points/month) compare by eye across panels;
        ``False`` fits each panel's range to its own patient.
    axes : Axes or sequence of Axes, optional
        Draw into these (at least one per patient) instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default 3.2 x 2.6 per panel (plus a legend row).

    Returns
    -------
    matplotlib.figure.Figure
        x: months since the patient's first injection (an untreated patient: relative to the
        last visit); y: the outcome in its units (ALSFRS-R points).
    """
    ids = _select_patients(fit, patients)
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, not {ncols}.")
    ncols = min(ncols, len(ids))
    nrows = math.ceil(len(ids) / ncols)
    own = axes is None
    fig, axs = _many_axes(axes, len(ids), ncols,
                          figsize or ((3.2 * ncols, 2.6 * nrows + 0.5) if own else None),
                          panel=(3.2, 2.6))
    d = fit.design
    ylabel = _score_label(fit)
    low, high = np.inf, -np.inf
    for i, (p, ax) in enumerate(zip(ids, axs, strict=True)):
        bands = trajectory_bands(fit.idata, p)
        ax.fill_between(bands["month"], bands["ci_2.5"], bands["ci_97.5"], color=_C["sky_blue"],
                        alpha=0.3, lw=0, label="95% interval")
        ax.fill_between(bands["month"], bands["ci_25"], bands["ci_75"], color=_C["sky_blue"],
                        alpha=0.6, lw=0, label="50% interval")
        ax.plot(bands["month"], bands["mean"], color=_C["blue"], lw=1.5, label="posterior mean")
        pos = int(np.flatnonzero(d["patient"].values == p)[0])
        sel = d["patient_index"].values == pos
        y = d["y"].values[sel]
        ax.scatter(d["month"].values[sel], y, s=12, color=_C["black"], zorder=3,
                   label="observed")
        low = min(low, y.min(), bands["ci_2.5"].min())
        high = max(high, y.max(), bands["ci_97.5"].max())
        taus = d["injection_month"].sel(patient=p).values
        for j, tau in enumerate(taus[np.isfinite(taus)]):
            ax.axvline(tau, color=_C["orange"], ls="--", lw=1.0,
                       label="injection" if j == 0 else None)
        treated = bool(d["treated"].sel(patient=p))
        ax.set_title(p if treated else f"{p} (untreated)", fontsize=10)
        ax.tick_params(labelsize=8)
        if fit.data.spec.integer:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if not treated:  # its own time axis: always labelled
            ax.set_xlabel(UNTREATED_MONTHS_LABEL, fontsize=9)
        elif i + ncols >= len(ids):  # no panel below
            ax.set_xlabel(MONTHS_LABEL, fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=9)
    if sharey:
        pad = 0.04 * max(high - low, 1.0)
        for i, ax in enumerate(axs):
            ax.set_ylim(low - pad, high + pad)
            if own and i % ncols:  # the row's first panel labels the common y range
                ax.tick_params(labelleft=False)
    entries: dict[str, object] = {}  # one entry per label, whichever panel drew it first
    for ax in axs:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if own:  # a row of its own under the panels, clear of every patient's data
        fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                   ncols=min(len(entries), 2 * ncols), fontsize=9, frameon=False)
    else:
        axs[0].legend(list(entries.values()), list(entries), fontsize=8, loc="best",
                      frameon=False)
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
            ax.text(0.02, yi, label, transform=right, fontsize=7, va="center", color=_GREY,
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
            ticks.append(yi)
            labels.append(r["patient"])
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(-0.7, offset + len(ev) - 0.3)
    ax.set_xlabel("Overall slowing of decline (% of pre-treatment rate)")
    ax.set_ylabel("Patient")
    # above the axes, clear of the zero line and of the top patients' intervals
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3,
              borderaxespad=0.2, frameon=False)
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
        Figure size in inches; default (8.2, 4.2), the legend (right of the axes) included.

    Returns
    -------
    matplotlib.figure.Figure
        x: treatment cycle; y: slowing, % of the pre-treatment rate of decline.
    """
    fig, ax = _single_axes(ax, figsize, (8.2, 4.2))
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
    # right of the axes: inside, it would cover the points or intervals of some cycle
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False)
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
    shown = np.flatnonzero((ge >= 0.005) & (ge <= 0.995))
    # a label is about 4 characters wide: keep one in every `step` points when they crowd
    width_pt = ax.get_position().width * fig.get_figwidth() * 72
    spacing_pt = width_pt / max(float(np.ptp(r)) + 1.0, 1.0)
    step = max(1, math.ceil(_LABEL_WIDTH_PT / spacing_pt))
    for k in shown[::step]:
        # above and to the right of its point: the curve falls to the right, so that corner
        # is clear of the line and of the point's marker
        ax.annotate(format_probability(ge[k], 2), (r[k], ge[k]), textcoords="offset points",
                    xytext=(4, 5), ha="left", va="bottom", fontsize=7,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.85})
    ax.set_ylim(0, 1.12)
    ax.set_xticks(r if n <= 25 else np.linspace(0, n, 6).round().astype(int))
    ax.set_xlabel(f"Number of responders r (slowing > {_pct(threshold)}) of {n} evaluable "
                  "patients")
    ax.set_ylabel("Posterior probability")
    ax.set_title("All cycles (overall slowing)" if scope == "overall" else scope.capitalize(),
                 fontsize=10)
    ax.legend(fontsize=8, loc="best", frameon=False)
    return fig


# ---------------------------------------------------------------------- interval
def _observed_intervals(fit: FitResult) -> np.ndarray:
    """The intervals g_ik of the cycles that inform theta: injected patients of the treated
    arm, cycles with a defined interval (the design's ``interval``, NaN where undefined)."""
    d = fit.design
    effect = d["effect"] if "effect" in d else d["treated"]
    g = d["interval"].where(effect).values.ravel()
    return np.sort(g[np.isfinite(g)])


def plot_interval_effect(
    fit: FitResult,
    intervals: Sequence[float] | np.ndarray | None = None,
    threshold: float = 0.25,
    *,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Predicted population slowing as a function of the injection interval.

    Line and band: posterior mean and 95% interval of rho_bar + theta (g - g_ref) from
    ``fit.interval_effect(threshold, intervals)``. They are drawn solid over the range of the
    intervals observed in the trial (the cycles that inform theta: the design's ``interval``
    where defined) and dashed, with a lighter band, beyond it, where the straight line is an
    extrapolation of the model rather than something the data showed. Ticks at the bottom: the
    observed intervals; title: the estimate of theta. The legend sits outside the axes, clear
    of the curve and the threshold line.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    intervals : sequence of float, optional
        Intervals g (months, or the interval covariate's units) at which to predict. Default:
        61 values spanning the observed intervals (when no cycle has an observed interval:
        :data:`DEFAULT_INTERVALS`, all of it extrapolation; when all have the same one, that
        one added). Given ones are drawn as given, solid inside the observed range and dashed
        outside it.
    threshold : float, default 0.25
        Responder threshold (fraction), drawn as a reference line.
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default (7.6, 4.0).

    Returns
    -------
    matplotlib.figure.Figure
        x: injection interval (months; or the interval covariate in its units); y: population
        slowing, % of the pre-treatment rate.
    """
    seen = _observed_intervals(fit)
    if intervals is None:
        grid = (np.linspace(seen[0], seen[-1], _N_INTERVALS) if seen.size and seen[-1] > seen[0]
                else np.union1d(DEFAULT_INTERVALS, seen))  # no range observed
    else:
        grid = np.asarray(intervals, dtype=float).ravel()
        if grid.size < 2 or not np.all(np.isfinite(grid)):
            raise ValueError("intervals must hold at least two finite numbers (months).")
    if seen.size:  # the observed range's ends on the grid, so the solid part ends exactly there
        ends = [e for e in (seen[0], seen[-1]) if grid.min() < e < grid.max()]
        grid = np.unique(np.concatenate([grid, ends]))
    tab = fit.interval_effect(threshold, intervals=grid)
    theta = tab.iloc[0]
    pred = tab.iloc[1:]
    fig, ax = _single_axes(ax, figsize, (7.6, 4.0))
    g = pred["interval_months"].to_numpy()
    mean = 100 * pred["mean"].to_numpy()
    lo, hi = 100 * pred["ci_2.5"].to_numpy(), 100 * pred["ci_97.5"].to_numpy()
    inside = (g >= seen[0]) & (g <= seen[-1]) if seen.size else np.zeros(g.size, dtype=bool)
    if inside.any():
        ax.fill_between(g, lo, hi, where=inside, color=_C["sky_blue"], alpha=0.4, lw=0,
                        label="95% interval")
        ax.plot(g[inside], mean[inside], color=_C["blue"], lw=2,
                marker="o" if inside.sum() == 1 else None, label="posterior mean")
    # beyond the observed range, each side joined to the solid part at the range's end
    beyond = [g <= seen[0], g >= seen[-1]] if seen.size else [np.ones(g.size, dtype=bool)]
    labelled = False
    for part in beyond:
        if part.sum() < 2:  # nothing drawn beyond this end
            continue
        ax.fill_between(g[part], lo[part], hi[part], color=_C["sky_blue"], alpha=0.15, lw=0,
                        label=None if labelled else "95% interval, extrapolated")
        ax.plot(g[part], mean[part], color=_C["blue"], lw=1.5, ls="--",
                label=None if labelled else "mean, extrapolated")
        labelled = True
    _zero_line(ax, vertical=False)
    _threshold_line(ax, threshold, vertical=False)
    if seen.size:
        ax.plot(seen, np.full(seen.size, 0.02), "|", ms=9, color=_GREY,
                transform=ax.get_xaxis_transform(), label="observed cycle intervals")
    else:
        ax.text(0.02, 0.03, "No cycle has an observed interval: all of it is extrapolation.",
                transform=ax.transAxes, fontsize=8, color=_GREY)
    unit_one, _ = interval_units(fit)
    ax.set_title(f"\u03b8 = {100 * theta['mean']:.1f} percentage points per {unit_one} of "
                 f"interval (95% CrI {100 * theta['ci_2.5']:.1f} to "
                 f"{100 * theta['ci_97.5']:.1f}); P(\u03b8 < 0) = "
                 f"{format_probability(theta['p_lt_0'], 2)}", fontsize=9)
    ax.set_xlabel(_interval_label(fit))
    ax.set_ylabel("Population slowing (% of pre-treatment rate)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False)
    return fig


# ---------------------------------------------------------------------- diagnostics
def _trace_data(fit: FitResult, var_names: Sequence[str] | None,
                coords: Mapping[str, Sequence] | None) -> tuple[xr.Dataset, int]:
    """The posterior variables and elements to draw, and the number of rows they take."""
    post = fit.posterior
    names = ([v for v in _DEFAULT_TRACE_VARS if v in post] if var_names is None
             else list(var_names))
    unknown = [v for v in names if v not in post]
    if unknown or not names:
        raise ValueError(f"unknown or no variable(s) {unknown}; the posterior has "
                         f"{sorted(post.data_vars)}.")
    data = post[names]
    data = data.sel({k: list(c) for k, c in (coords or {}).items() if k in data.dims})
    n_rows = sum(math.prod(size for dim, size in data[v].sizes.items() if dim not in _SAMPLE)
                 for v in names)
    if n_rows > _MAX_TRACE_ROWS:
        raise ValueError(f"{n_rows} panels requested (more than {_MAX_TRACE_ROWS}); select "
                         "elements with coords=, e.g. coords={'patient': ['P01', 'P02']}.")
    return data, n_rows


def _chain_legend(ax: Axes, colours: Sequence[str], n_chains: int) -> None:
    handles = [Line2D([], [], color=colours[c % len(colours)], lw=1.2) for c in range(n_chains)]
    ax.legend(handles, [f"chain {c}" for c in range(n_chains)], fontsize=7, frameon=False,
              ncols=min(n_chains, 4), loc="lower right", bbox_to_anchor=(1.0, 1.0),
              borderaxespad=0.1)


def plot_trace(
    fit: FitResult,
    var_names: Sequence[str] | None = None,
    *,
    kind: str = "trace",
    coords: Mapping[str, Sequence] | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Sampler diagnostics: per-chain distributions with traces or rank plots (ArviZ).

    One row per scalar quantity (vector variables are split into their elements), drawn by
    ``arviz_plots``: on the left each chain's marginal density (KDE); on the right, with
    ``kind="trace"`` (:func:`arviz_plots.plot_trace_dist`), each chain's draws in order, or
    with ``kind="rank"`` (:func:`arviz_plots.plot_rank_dist`), each chain's ECDF of the
    fractional ranks of its draws among all chains minus the uniform one, with ArviZ's test
    that the chains agree (a p-value): flat near zero when they do. Divergent draws, if any,
    are marked at the bottom of the panels.

    Parameters
    ----------
    fit : FitResult
        A fitted model.
    var_names : sequence of str, optional
        Posterior variables; default the population parameters present (``mu_alpha``,
        ``mu_beta``, ``sd_beta``, the natural history's ``sd_drift`` and ``acceleration``,
        ``sigma``, ``theta``, ``rho_cycle``, ``rho_bar``, ``sd_patient``,
        ``sd_patient_cycle``, and ``nu`` / ``jump`` when in the model).
    kind : {"trace", "rank"}, default "trace"
        Right column: traces of the draws or rank plots.
    coords : mapping, optional
        Elements to keep, e.g. ``{"patient": ["P01"], "cycle": [1, 2]}``.
    axes : array of Axes, optional
        2 Axes per row (row-major: distribution, trace or rank) to draw into.
    figsize : (float, float), optional
        Figure size in inches; default 9 wide, 1.5 per row high.

    Returns
    -------
    matplotlib.figure.Figure
        Left x: parameter value (its own units: slowing as a fraction, slopes in points/month,
        sigma in points); right x: draw number after tuning, or fractional rank.

    Raises
    ------
    ValueError
        For an unknown variable or kind, or more than 40 rows.
    """
    if kind not in ("trace", "rank"):
        raise ValueError(f"kind must be 'trace' or 'rank', not {kind!r}.")
    data, n_rows = _trace_data(fit, var_names, coords)
    fig, axs = _many_axes(axes, 2 * n_rows, 2, figsize or (9.0, 1.5 * n_rows + 0.6),
                          panel=(4.5, 1.5))
    grid = np.array(axs, dtype=object).reshape(n_rows, 2)
    right = "trace" if kind == "trace" else "rank"
    colours = [_C[c] for c in _CHAIN_COLOURS]
    extra = [dim for dim in data.dims if dim not in _SAMPLE]
    pc = _plot_collection(grid, data.expand_dims(column=2).assign_coords(column=["dist", right]),
                          rows=["__variable__", *extra], cols=["column"],
                          aes={"color": ["chain"], "overlay": ["chain"]}, color=colours)
    tree = xr.DataTree.from_dict({"posterior": data,
                                  "sample_stats": fit.idata["sample_stats"].to_dataset()})
    draw = azp.plot_trace_dist if kind == "trace" else azp.plot_rank_dist
    draw(tree, compact=False, plot_collection=pc, labeller=_FlatLabeller())
    for ax in axs:
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
    for ax in grid[:-1, 1]:  # every row's draws (or ranks) share the bottom row's x axis
        ax.set_xlabel("")
        ax.tick_params(labelbottom=False)
    grid[-1, 1].set_xlabel("Draw (after tuning)" if kind == "trace" else
                           "Fractional rank of the draw among all chains", fontsize=8)
    _chain_legend(grid[0, 1], colours, data.sizes["chain"])
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

    Left, drawn by :func:`arviz_plots.plot_ppc_dist`: the empirical CDF of the observed scores
    over all visits (black) against those of ``n_replicates`` replicated data sets (light
    blue); right: the histogram of the observed scores (whole points on an integer scale)
    against the pooled replicates. Replicates come from
    :func:`slopeshift.predict.predictive_scores` (censored at the scale's bounds when the model
    was fitted with censoring), taken from evenly spaced posterior draws.

    The right panel stays a plain histogram rather than ArviZ's calibration plots. The
    posterior predictive PIT (:func:`arviz_plots.plot_ppc_pit`) uses every visit twice, to fit
    and to check: with a fitted line per patient its PITs pile up near 0.5, which its test of
    uniformity reports as miscalibration (it did, p = 0.01, on a quick fit of the bundled
    simulated example). The calibration check that avoids this is :func:`plot_loo_pit`: each
    score against the predictive distribution of a new patient, leaving the patient out.

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
    flat = yrep.stack(sample=_SAMPLE).transpose("sample", "visit").values
    pick = np.unique(np.linspace(0, flat.shape[0] - 1, min(n_replicates, flat.shape[0]))
                     .round().astype(int))
    reps = flat[pick]
    y = fit.design["y"].values
    fig, (ax0, ax1) = _many_axes(axes, 2, 2, figsize or (9.0, 3.6), panel=(4.5, 3.6))

    replicated = xr.Dataset({"y": (("replicate", "visit"), reps)},
                            coords={"replicate": np.arange(pick.size)})
    tree = xr.DataTree.from_dict({"posterior_predictive": replicated,
                                  "observed_data": xr.Dataset({"y": ("visit", y)})})
    pc = _plot_collection(np.array([[ax0]]), replicated.stack(sample=["replicate"]), rows=[],
                          cols=["__variable__"], aes={"overlay_ppc": ["sample"]})
    azp.plot_ppc_dist(tree, kind="ecdf", num_samples=pick.size, sample_dims=["replicate"],
                      plot_collection=pc,
                      visuals={"predictive_dist": {"color": _C["sky_blue"], "alpha": 0.4,
                                                   "width": 0.7},
                               "observed_dist": {"color": _C["black"], "width": 1.8},
                               "title": False, "remove_axis": False})
    ax0.legend([Line2D([], [], color=_C["sky_blue"], lw=1.2),
                Line2D([], [], color=_C["black"], lw=1.8)],
               [f"replicated ({pick.size} draws)", "observed"], fontsize=8, loc="upper left",
               frameon=False)

    lo = math.floor(min(y.min(), reps.min()))
    hi = math.ceil(max(y.max(), reps.max()))
    bins = (np.arange(lo - 0.5, hi + 1.5) if fit.data.spec.integer and hi - lo <= 200
            else np.linspace(lo, hi, 41))
    ax1.hist(y, bins=bins, density=True, color="0.8", edgecolor="0.4", lw=0.4, label="observed")
    ax1.hist(reps.ravel(), bins=bins, density=True, histtype="step", color=_C["blue"], lw=1.4,
             label="replicated (pooled)")
    ax1.legend(fontsize=8, loc="upper left", frameon=False)
    label = f"{fit.data.spec.label} ({fit.data.spec.unit})"  # observed scores, not latent
    ax0.set_xlabel(label)
    ax0.set_ylabel("Cumulative proportion of visits")
    ax1.set_xlabel(label)
    ax1.set_ylabel("Proportion of visits")
    for a in (ax0, ax1):
        a.tick_params(labelsize=8)
    return fig


def plot_loo_pit(
    fit: FitResult,
    kind: str = "slope",
    *,
    max_draws: int | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Leave-one-patient-out PIT of the course after the first injection (calibration).

    Each patient's least-squares slope after the first injection (``kind="slope"``, one value
    per patient with at least 3 such visits), or each score after it (``kind="score"``), is
    set against the predictive distribution of a new patient like them (same visits,
    injections and arm) given the other patients: its PIT (:func:`slopeshift.loo.loo_pit`).
    For a calibrated model the PITs are uniform: drawn by :func:`arviz_plots.plot_ecdf_pit` as
    the difference between their empirical CDF and the uniform CDF, with ArviZ's test of
    uniformity (the p-value in the corner; values that drive a deviation highlighted).
    Patients are independent given the population, so the test is right for slopes; a
    patient's scores are correlated, so for scores it is far too eager (read shapes, not the
    p-value). An S shape (above, then below zero) means predictions too narrow; the mirror
    shape, too wide; an arch above zero, observed values lower than predicted.

    Parameters
    ----------
    fit : FitResult
        A fit of the marginal model (Normal likelihood, no censoring).
    kind : {"slope", "score"}, default "slope"
    max_draws : int, optional
        At most this many posterior draws (see :func:`slopeshift.loo.loo_pit`).
    ax : Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default (5.0, 3.6).

    Returns
    -------
    matplotlib.figure.Figure
        x: PIT (0-1); y: ECDF minus uniform CDF.
    """
    from slopeshift.loo import loo_pit

    pit = loo_pit(fit, kind=kind, max_draws=max_draws)
    fig, ax = _single_axes(ax, figsize, (5.0, 3.6))
    dim = pit.dims[0]
    data = xr.Dataset({"pit": (dim, pit.values)})
    tree = xr.DataTree.from_dict({"loo_pit": data})
    pc = _plot_collection(np.array([[ax]]), data.rename({dim: "draw"}).expand_dims(chain=[0]),
                          rows=[], cols=["__variable__"])
    # ArviZ's default uniformity test (method "pot_c": a p-value, with the values that drive
    # a deviation highlighted); its "envelope" method fails on this version
    azp.plot_ecdf_pit(tree, group="loo_pit", sample_dims=[dim], plot_collection=pc,
                      visuals={"title": False, "remove_axis": False})
    ax.set_xlabel("Leave-one-patient-out PIT")
    ax.set_ylabel("ECDF minus uniform CDF")
    ax.tick_params(labelsize=8)
    n_pat = len(set(pit["patient"].values))
    what = (f"slopes after the first injection, {n_pat} patients" if kind == "slope"
            else f"{pit.sizes['visit']} scores after the first injection, {n_pat} patients")
    ax.set_title(what, fontsize=9)
    return fig


# ---------------------------------------------------------------------- studies
def _effect_label(effect: float, interval_effect: float) -> str:
    if effect == 0 and interval_effect == 0:
        return "no effect"
    text = f"slowing {effect:g}"
    if interval_effect:
        text += f", {interval_effect:+g}/month of interval"
    return text


def _wilson(p: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial share (not degenerate at 0 or 1 successes)."""
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def plot_operating_characteristics(
    table: pd.DataFrame,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Operating characteristics of trial designs, from :func:`slopeshift.study.design_grid`.

    Three panels, one row per design: the probability that the decision rule is met (the
    type-I error under no effect, the power under an effect) with 95% Monte Carlo (Wilson)
    intervals, beside the one-sided alpha of the rule and 80% power; the posterior mean of the
    primary population slowing against its true value; and the patients declared responders
    against the true responders, per trial. Every number is a column of ``table``.

    Parameters
    ----------
    table : pandas.DataFrame
        The table of :func:`~slopeshift.study.design_grid` (or of
        :func:`~slopeshift.study.power`, one design).
    axes : sequence of 3 Axes, optional
        Draw into these instead of a new figure.
    figsize : (float, float), optional
        Figure size in inches; default 11 wide, 0.5 per design and effect high.

    Returns
    -------
    matplotlib.figure.Figure
        x: probability, slowing (fraction of the natural rate) and patients per trial.
    """
    need = {"p_success", "p_success_se", "effect", "interval_effect", "rho_bar_bias",
            "declared_mean", "true_responders_mean", "n_trials"}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)}: give the table of "
                         "slopeshift.study.design_grid or power.")
    t = table.copy()
    if "design" not in t:
        t["design"] = "design"
    if "true_rho_bar" not in t:
        t["true_rho_bar"] = t["effect"]
    designs = list(dict.fromkeys(t["design"]))
    effects = list(dict.fromkeys(zip(t["effect"], t["interval_effect"], strict=True)))
    n_rows = len(designs)
    height = max(2.8, 0.32 * n_rows * max(len(effects), 1) + 1.8)
    fig, (ax_p, ax_b, ax_r) = _many_axes(axes, 3, 3, figsize or (11.0, height), (3.7, height))
    palette = [_C["vermillion"], _C["blue"], _C["green"], _C["orange"], _C["purple"]]
    colours = {}
    for e in effects:
        colours[e] = (_C["vermillion"] if e == (0.0, 0.0)
                      else palette[1 + (len(colours) - ((0.0, 0.0) in colours)) % 4])
    offset = np.linspace(-0.2, 0.2, len(effects)) if len(effects) > 1 else np.zeros(1)
    y_of = {d: i for i, d in enumerate(designs)}
    rule = t.attrs.get("rule")
    for j, e in enumerate(effects):
        g = t[(t["effect"] == e[0]) & (t["interval_effect"] == e[1])]
        y = g["design"].map(y_of).to_numpy(float) + offset[j]
        col = colours[e]
        label = _effect_label(*e)
        p = g["p_success"].to_numpy(float)
        lo, hi = _wilson(p, g["n_trials"].to_numpy(float))
        ax_p.errorbar(p, y, xerr=[p - lo, hi - p], fmt="o", ms=4, color=col, capsize=2,
                      lw=1, label=label)
        est = (g["true_rho_bar"] + g["rho_bar_bias"]).to_numpy(float)
        ax_b.scatter(g["true_rho_bar"], y, marker="|", s=80, color=_C["black"], zorder=3)
        ax_b.scatter(est, y, marker="o", s=16, color=col, zorder=4)
        ax_r.scatter(g["true_responders_mean"], y, marker="|", s=80, color=_C["black"],
                     zorder=3)
        ax_r.scatter(g["declared_mean"], y, marker="o", s=16, color=col, zorder=4)
    if rule is not None:
        alpha = 1.0 - float(rule[2])
        ax_p.axvline(alpha, color=_GREY, lw=0.8, ls=":", label=f"one-sided alpha {alpha:g}")
    ax_p.axvline(0.8, color=_GREY, lw=0.8, ls="--", label="80% power")
    ax_p.set_xlim(-0.02, 1.02)
    what = (f"P({rule[0]} > {rule[1]:g}) \u2265 {rule[2]:g}" if rule is not None
            else "decision rule met")
    ax_p.set_xlabel(f"Probability of success\n({what})", fontsize=9)
    ax_b.set_xlabel("Population slowing (fraction of natural rate)\n"
                    "| truth   \u25cf mean estimate", fontsize=9)
    ax_r.set_xlabel("Patients per trial\n| true responders   \u25cf declared", fontsize=9)
    for ax in (ax_p, ax_b, ax_r):
        ax.set_yticks(range(n_rows))
        ax.set_ylim(n_rows - 0.5, -0.5)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", color="0.9", lw=0.6)
    ax_p.set_yticklabels(designs)
    for ax in (ax_b, ax_r):
        ax.set_yticklabels([])
    ax_r.set_xlim(left=0)
    n_tr = int(t["n_trials"].min())
    ax_p.set_title(f"Operating characteristics (at least {n_tr} simulated trials per point; "
                   "bars: 95% Wilson intervals)", fontsize=9, loc="left")
    handles, labels = ax_p.get_legend_handles_labels()
    if axes is None:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels),
                   fontsize=8, frameon=False)
    else:
        ax_p.legend(handles, labels, fontsize=7, frameon=False)
    return fig
