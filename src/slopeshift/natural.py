"""A realistic natural-history simulator of ALS trials, independent of the slopeshift model.

:func:`slopeshift.simulate.simulate_trial` draws data from the model's own broken-stick formulas,
so fitting the model to it proves little about real trials. This module generates ALSFRS-R visits
from a different mechanism, calibrated so that its **untreated** patients reproduce what placebo
patients of pooled ALS trials do (MODEL.md section 7; about 1,000 placebo patients with >= 3
ALSFRS-R visits in each of two consecutive 6-month windows, per-patient least-squares slopes per
window). Only these published summary figures were used; no patient record enters the package.

Mechanism
---------
* **Latent progression.** Patient i accumulates a latent loss P_i(t) (points of ALSFRS-R total,
  no floors) at a positive rate ``r_i(t) = m_i * exp(Z_i(t) - s^2 / 2) * exp(a * t)``: a
  persistent patient pace m_i (gamma distributed), a drifting component Z_i (an
  Ornstein-Uhlenbeck process in the log rate, stationary SD s, correlation time ``ou_months``) and
  a mild systematic acceleration a (per month). The latent loss never reverses.
* **Items and floors.** Each of the 12 items (q1..q9, r1..r3) has its own deficit
  ``x_ij(t) = b_ij + v_ij * P_i(t) / 12`` (items at their own speeds v_ij, averaging 1, so that
  without floors the total falls at r_i(t) points/month), and scores
  ``clip(4 - floor(x_ij), 0, 4)``: items fall by whole points and stop at 0, so domains reach 0
  and the total flattens. Domain speeds depend on the site of onset (bulbar onset: bulbar items
  fast; limb onset: fine- and gross-motor items fast) and vary by patient; the baseline deficits
  b_ij give a total of about 38 points at the first visit.
* **Visit-level fluctuation.** At each visit the patient is assessed as if ``delta`` months early or
  late (a shared "good or bad day", SD ``jitter_months``) plus item-level wobble (SD
  ``item_jitter_months``), both on the patient's current pace, plus a small pace-independent
  wobble (``noise_points``). Scatter therefore grows with the pace of decline, as it must for
  fewer than 3% of 6-month slopes to rise while fast decliners scatter 2 points or more.

Figures reproduced by untreated patients (monthly jittered visits, 12 months; see
:func:`window_statistics` and :data:`DEFAULT_NATURAL_HISTORY`):

* median 6-month slope -0.7 to -0.9 points/month, interquartile range about -1.3 to -0.3, fewer
  than 3% rising;
* residual SD around each patient's own 6-month least-squares line about 1.5-1.9 points;
* consecutive 6-month slopes correlate about 0.3 (true rates drift from period to period);
* the second window about 0.14 points/month steeper on average (mild acceleration);
* the fastest quarter by the first window goes from about -1.95 to -1.40 points/month;
* untreated, 38% of decliners and 50% of those faster than the median meet the classical "> 25%
  slowing" rule, and 42% of decliners worsen by more than 25%.

:func:`simulate_realistic_trial` builds a trial on top: screening with a run-in, optional
enrolment on a fast run-in slope (regression to the mean), randomisation to treatment or sham
control, injections with jittered gaps, a treatment that multiplies the latent pace by
``1 - rho_ik`` in each cycle, and informative dropout (faster decline and lower totals leave more).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from slopeshift.data import ALSFRS_ITEMS, DAYS_PER_MONTH, TrialData
from slopeshift.errors import DataWarning

__all__ = [
    "DEFAULT_NATURAL_HISTORY",
    "simulate_realistic_trial",
    "simulate_untreated_cohort",
    "window_statistics",
]

#: Calibrated parameters of the natural-history generator (rates in points/month, times in
#: months). Pass any of them as keyword arguments to override.
DEFAULT_NATURAL_HISTORY: dict[str, Any] = {
    # persistent pace m_i ~ Gamma(shape, scale=median-matched), points/month
    "pace_median": 0.72,
    "pace_shape": 2.6,
    # drifting log-rate: Ornstein-Uhlenbeck, stationary SD and correlation time (months)
    "ou_sd": 0.55,
    "ou_months": 4.0,
    # systematic acceleration of the latent pace, per month (exp(a_i * t)); a_i ~ Gamma with
    # this mean and shape (a small shape: most patients barely accelerate, a few a lot)
    "acceleration": 0.025,
    "acceleration_shape": 0.5,
    # visit-level fluctuation: shared time shift and item-level wobble (months, times the
    # current pace), and a pace-independent wobble (points of latent loss)
    "jitter_months": 1.6,
    "item_jitter_months": 1.0,
    "noise_points": 0.25,
    # site of onset and item speeds
    "bulbar_onset": 0.3,
    "domain_speed_sd": 0.35,
    "item_speed_sd": 0.25,
    # mean baseline deficit per domain (points of 12) by onset: bulbar, fine, gross, respiratory
    "deficit_bulbar_onset": (5.5, 3.0, 3.0, 2.0),
    "deficit_limb_onset": (1.5, 5.5, 6.0, 1.5),
    "deficit_sd": 0.9,
    # multiplier of both deficit profiles (how close domains start to their floors)
    "deficit_scale": 1.0,
    # relative domain speeds by onset: bulbar, fine, gross, respiratory
    "speed_bulbar_onset": (2.0, 0.8, 0.7, 0.7),
    "speed_limb_onset": (0.6, 1.2, 1.3, 0.8),
    # visit-time jitter (fraction of the visit interval)
    "visit_jitter": 0.15,
}

_DT = 0.05  # months: grid step of the latent process
_N_ITEMS = 12
_DOMAIN_OF_ITEM = np.repeat(np.arange(4), 3)


# --------------------------------------------------------------------------- latent process
def _params(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(DEFAULT_NATURAL_HISTORY)
    if unknown:
        raise TypeError(f"unknown natural-history parameter(s): {sorted(unknown)}; "
                        f"known: {sorted(DEFAULT_NATURAL_HISTORY)}.")
    return {**DEFAULT_NATURAL_HISTORY, **overrides}


def _draw_patients(rng: np.random.Generator, n: int, p: dict[str, Any]) -> dict[str, np.ndarray]:
    """Persistent pace, site of onset, item speeds and baseline item deficits."""
    shape = float(p["pace_shape"])
    # scale so that the gamma median is pace_median (Wilson-Hilferty approximation suffices)
    med_unit = shape * (1.0 - 1.0 / (9.0 * shape)) ** 3
    pace = rng.gamma(shape, p["pace_median"] / med_unit, size=n)
    bulbar = rng.random(n) < p["bulbar_onset"]
    speed_d = np.where(bulbar[:, None], np.asarray(p["speed_bulbar_onset"], float),
                       np.asarray(p["speed_limb_onset"], float))
    speed_d = speed_d * np.exp(rng.normal(0.0, p["domain_speed_sd"], (n, 4)))
    speed = speed_d[:, _DOMAIN_OF_ITEM] * np.exp(rng.normal(0.0, p["item_speed_sd"], (n, 12)))
    speed = speed / speed.mean(axis=1, keepdims=True)
    deficit_d = np.where(bulbar[:, None], np.asarray(p["deficit_bulbar_onset"], float),
                         np.asarray(p["deficit_limb_onset"], float))
    # item deficits: a third of the domain's, varied, never below 0
    base = float(p["deficit_scale"]) * deficit_d[:, _DOMAIN_OF_ITEM] / 3.0
    deficit = np.clip(base + rng.normal(0.0, p["deficit_sd"], (n, 12)), 0.0, 3.9)
    k_acc = float(p["acceleration_shape"])
    accel = rng.gamma(k_acc, float(p["acceleration"]) / k_acc, size=n) if p["acceleration"] > 0 \
        else np.zeros(n)
    return {"pace": pace, "bulbar": bulbar, "speed": speed, "deficit": deficit, "accel": accel}


def _latent_rates(
    rng: np.random.Generator, pace: np.ndarray, accel: np.ndarray, n_steps: int,
    p: dict[str, Any],
) -> np.ndarray:
    """Natural (untreated) latent pace on the grid, patients x steps, points/month (> 0)."""
    n = pace.size
    s = float(p["ou_sd"])
    phi = np.exp(-_DT / float(p["ou_months"]))
    eps = rng.normal(0.0, s * np.sqrt(1.0 - phi**2), (n, n_steps))
    eps[:, 0] = rng.normal(0.0, s, n)  # stationary start
    z = lfilter([1.0], [1.0, -phi], eps, axis=1)
    t = (np.arange(n_steps) + 0.5) * _DT
    return pace[:, None] * np.exp(z - 0.5 * s**2 + accel[:, None] * t[None, :])


def _cumulative(rate: np.ndarray) -> np.ndarray:
    """Latent loss at grid nodes 0, dt, 2 dt, ... (patients x steps + 1)."""
    out = np.zeros((rate.shape[0], rate.shape[1] + 1))
    np.cumsum(rate * _DT, axis=1, out=out[:, 1:])
    return out


def _at(grid: np.ndarray, rows: np.ndarray, t: np.ndarray, node: bool) -> np.ndarray:
    """Values of a grid (patients x steps) at times t (months from the grid origin)."""
    if node:  # linear interpolation between nodes
        pos = np.clip(t / _DT, 0.0, grid.shape[1] - 1 - 1e-9)
        k = np.floor(pos).astype(int)
        w = pos - k
        return grid[rows, k] * (1.0 - w) + grid[rows, k + 1] * w
    k = np.clip(np.floor(t / _DT).astype(int), 0, grid.shape[1] - 1)
    return grid[rows, k]


def _observe(
    rng: np.random.Generator,
    pat: dict[str, np.ndarray],
    loss: np.ndarray,
    rate: np.ndarray,
    rows: np.ndarray,
    t: np.ndarray,
    p: dict[str, Any],
) -> np.ndarray:
    """Item scores (visits x 12, whole points 0..4) at visits (patient row, months on the grid)."""
    lv = _at(loss, rows, t, node=True)
    rv = np.abs(_at(rate, rows, t, node=False))
    shared = rng.normal(0.0, 1.0, lv.size) * p["jitter_months"] * rv \
        + rng.normal(0.0, p["noise_points"], lv.size)
    item = rng.normal(0.0, 1.0, (lv.size, _N_ITEMS)) * (p["item_jitter_months"] * rv)[:, None]
    x = pat["deficit"][rows] + pat["speed"][rows] * ((lv + shared)[:, None] + item) / _N_ITEMS
    return np.clip(4.0 - np.floor(x), 0.0, 4.0)


def _visit_times(
    rng: np.random.Generator, n: int, months: float, every: float, jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Patient index and time of visits every ``every`` months over [0, months], jittered."""
    nominal = np.arange(0.0, months + 1e-9, every)
    t = np.tile(nominal, n) + rng.normal(0.0, jitter * every, n * nominal.size)
    t = t.reshape(n, nominal.size)
    t[:, 0] = 0.0
    t = np.sort(np.clip(t, 0.0, months), axis=1)
    return np.repeat(np.arange(n), nominal.size), t.ravel()


def _items_frame(ids: np.ndarray, t: np.ndarray, items: np.ndarray, item_level: bool) -> pd.DataFrame:
    out = pd.DataFrame({"patient": ids, "time": np.round(t, 4)})
    out["alsfrs_r"] = items.sum(axis=1).astype(int)
    if item_level:
        for j, name in enumerate(ALSFRS_ITEMS):
            out[name] = items[:, j].astype(int)
    return out


def _patient_ids(prefix: str, idx: np.ndarray, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i + 1:0{width}d}" for i in idx], dtype=object)


def simulate_untreated_cohort(
    n_patients: int,
    *,
    months: float = 12.0,
    visit_every: float = 1.0,
    item_level: bool = True,
    random_seed: int | None = 0,
    **natural_history_params: Any,
) -> pd.DataFrame:
    """Simulate the ALSFRS-R visits of an untreated (natural-history) cohort.

    Parameters
    ----------
    n_patients : int
        Number of patients.
    months : float, default 12.0
        Follow-up from the first visit (month 0), months.
    visit_every : float, default 1.0
        Months between visits; each visit after the first is jittered (SD ``visit_jitter`` times
        this interval).
    item_level : bool, default True
        Add the 12 item scores (q1..q9, r1..r3; whole points 0-4) next to the total.
    random_seed : int, optional
        Seed; the same seed gives the same cohort.
    **natural_history_params
        Overrides of :data:`DEFAULT_NATURAL_HISTORY` (paces in points/month, times in months).

    Returns
    -------
    pandas.DataFrame
        One row per visit: ``patient``, ``time`` (months since the patient's first visit),
        ``alsfrs_r`` (total, 0-48 points) and, when ``item_level``, ``q1``..``q9``, ``r1``..``r3``.
    """
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1.")
    p = _params(natural_history_params)
    rng = np.random.default_rng(random_seed)
    pat = _draw_patients(rng, n_patients, p)
    n_steps = int(np.ceil(months / _DT)) + 1
    rate = _latent_rates(rng, pat["pace"], pat["accel"], n_steps, p)
    loss = _cumulative(rate)
    rows, t = _visit_times(rng, n_patients, months, visit_every, p["visit_jitter"])
    items = _observe(rng, pat, loss, rate, rows, t, p)
    width = len(str(n_patients))
    return _items_frame(_patient_ids("N", rows, width), t, items, item_level)


# --------------------------------------------------------------------------- window statistics
def _ls_by_group(keys: np.ndarray, t: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Least-squares slope and residual variance of y on t per key."""
    df = pd.DataFrame({"k": keys, "n": 1.0, "t": t, "y": y, "tt": t * t, "ty": t * y,
                       "yy": y * y})
    s = df.groupby("k", sort=True)[["n", "t", "y", "tt", "ty", "yy"]].sum()
    sxx = s["tt"] - s["t"] ** 2 / s["n"]
    sxy = s["ty"] - s["t"] * s["y"] / s["n"]
    syy = s["yy"] - s["y"] ** 2 / s["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = sxy / sxx
        rss = np.maximum(syy - slope * sxy, 0.0)
        var = rss / (s["n"] - 2.0)
    return pd.DataFrame({"n": s["n"], "slope": slope, "resid_var": var})


def window_statistics(
    visits: pd.DataFrame,
    *,
    window: float = 6.0,
    min_visits: int = 3,
    outcome: str = "alsfrs_r",
) -> dict[str, Any]:
    """Per-patient slopes in two consecutive windows, summarised as in pooled placebo arms.

    Each patient's visits are timed from their first visit; the first window is
    [0, ``window``) months, the second [``window``, 2 ``window``). Patients with at least
    ``min_visits`` visits in each window are kept, and a least-squares line is fitted per
    patient and window. A patient is a *decliner* when the first-window slope is < 0.

    Parameters
    ----------
    visits : pandas.DataFrame
        Columns ``patient``, ``time`` (months) and the outcome.
    window : float, default 6.0
        Window length, months.
    min_visits : int, default 3
        Visits a patient needs in each window.
    outcome : str, default "alsfrs_r"
        Outcome column (points).

    Returns
    -------
    dict
        ``n_patients``; ``median_slope`` and ``iqr_slope`` (25th, 75th percentiles) of the
        first-window slopes (points/month); ``share_rising`` (first-window slope > 0);
        ``residual_sd`` (points: root mean residual variance, RSS / (n - 2), over both windows of
        all patients) and ``residual_sd_median`` (median per-patient-window residual SD);
        ``slope_correlation`` (Pearson, window 1 vs window 2); ``mean_change`` (mean second minus
        first slope, points/month; negative = steeper later); ``fastest_quarter`` (mean first and
        mean second slope of the quarter fastest in the first window, points/month);
        ``share_slowing_25`` (share of decliners whose second slope > 0.75 x first slope, i.e.
        less steep by more than 25%), ``share_slowing_25_fast_half`` (the same among decliners
        faster than the median first-window slope), ``share_worsening_25`` (decliners with second
        slope < 1.25 x first slope); ``median_slope_second`` (points/month).
    """
    t0 = visits.groupby("patient")["time"].transform("min")
    t = (visits["time"] - t0).to_numpy(float)
    y = visits[outcome].to_numpy(float)
    pid = visits["patient"].to_numpy()
    win = np.where(t < window, 0, np.where(t < 2 * window, 1, -1))
    keep = win >= 0
    codes, uniq = pd.factorize(pid[keep])
    key = codes * 2 + win[keep]
    fits = _ls_by_group(key, t[keep], y[keep])
    n = np.zeros((len(uniq), 2))
    slope = np.full((len(uniq), 2), np.nan)
    var = np.full((len(uniq), 2), np.nan)
    k = fits.index.to_numpy()
    n[k // 2, k % 2] = fits["n"].to_numpy()
    slope[k // 2, k % 2] = fits["slope"].to_numpy()
    var[k // 2, k % 2] = fits["resid_var"].to_numpy()
    ok = (n >= min_visits).all(axis=1)
    s1, s2, v = slope[ok, 0], slope[ok, 1], var[ok]
    if s1.size < 4:
        raise ValueError(f"only {s1.size} patient(s) have >= {min_visits} visits in both windows.")
    dec = s1 < 0
    fast = dec & (s1 < np.median(s1))
    q = s1 <= np.quantile(s1, 0.25)
    return {
        "n_patients": int(s1.size),
        "median_slope": float(np.median(s1)),
        "iqr_slope": (float(np.quantile(s1, 0.25)), float(np.quantile(s1, 0.75))),
        "share_rising": float(np.mean(s1 > 0)),
        "residual_sd": float(np.sqrt(np.nanmean(v))),
        "residual_sd_median": float(np.nanmedian(np.sqrt(v))),
        "slope_correlation": float(np.corrcoef(s1, s2)[0, 1]),
        "mean_change": float(np.mean(s2 - s1)),
        "median_slope_second": float(np.median(s2)),
        "fastest_quarter": (float(np.mean(s1[q])), float(np.mean(s2[q]))),
        "share_slowing_25": float(np.mean(s2[dec] > 0.75 * s1[dec])),
        "share_slowing_25_fast_half": float(np.mean(s2[fast] > 0.75 * s1[fast])),
        "share_worsening_25": float(np.mean(s2[dec] < 1.25 * s1[dec])),
    }
