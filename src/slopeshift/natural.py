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

Calibration (mean over 10 cohorts of 3,000 patients, seeds 0-9; in brackets the SD over seeds;
``window_statistics(simulate_untreated_cohort(3000, random_seed=s))``)::

    figure                          simulated               published
    median slope                    -0.75 (0.02)            -0.7 to -0.9
    interquartile range             -1.25 to -0.40          about -1.3 to -0.3
    share rising (> 0)              0.012 (0.002)           < 0.03
    residual SD, points             1.73 (0.02)             1.5 to 1.9
    slope correlation               0.28 (0.03)             about 0.3
    mean change, points/month       -0.11 (0.02)            about -0.14
    fastest quarter                 -1.95 -> -1.41          -1.95 -> -1.40
    share "> 25% slowing"           0.376 (0.011)           0.38
    ... among the faster half       0.49 (0.012)            0.50
    share "> 25% worsening"         0.431 (0.010)           0.42

Known misses: the upper quartile (-0.40 against -0.3) and the mean change (-0.11 against -0.14)
trade off against fewer than 3% rising and the slowing and worsening shares; the first-visit total
averages about 37 points (SD 3). The residual SD is the root mean residual variance; the median
patient's own residual SD is smaller (about 1.1 points), as scatter grows with the pace.

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
    "pace_median": 0.94,
    "pace_shape": 5.7,
    # drifting log-rate: Ornstein-Uhlenbeck, stationary SD and correlation time (months)
    "ou_sd": 0.56,
    "ou_months": 4.9,
    # systematic acceleration of the latent pace, per month (exp(a_i * t)); a_i ~ Normal with
    # this mean and SD (some patients accelerate, some decelerate)
    "acceleration": 0.021,
    "acceleration_sd": 0.06,
    # visit-level fluctuation: shared time shift and item-level wobble (months, times the
    # current pace), and a pace-independent wobble (points of latent loss)
    "jitter_months": 1.21,
    "item_jitter_months": 0.5,
    "noise_points": 0.0,
    # site of onset and item speeds
    "bulbar_onset": 0.3,
    "domain_speed_sd": 0.35,
    "item_speed_sd": 0.25,
    # mean baseline deficit per domain (points of 12) by onset: bulbar, fine, gross, respiratory
    "deficit_bulbar_onset": (5.5, 3.0, 3.0, 2.0),
    "deficit_limb_onset": (1.5, 5.5, 6.0, 1.5),
    "deficit_sd": 0.9,
    # multiplier of both deficit profiles (how close domains start to their floors)
    "deficit_scale": 1.09,
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
    accel = rng.normal(float(p["acceleration"]), float(p["acceleration_sd"]), n)
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


def _items_frame(
    ids: np.ndarray, t: np.ndarray, items: np.ndarray, item_level: bool
) -> pd.DataFrame:
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


# --------------------------------------------------------------------------- realistic trial
_GAP_JITTER = 0.3  # months: SD of the jitter of each gap between injections
_DROPOUT_BASE = 0.012  # per month, at a pace of 0.9 points/month and a total of 38 points
_DROPOUT_PACE_POWER = 1.5
_DROPOUT_PER_POINT = 0.06  # log hazard per point of total below 38


def _ls_slopes(rows: np.ndarray, t: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Least-squares slope of y on t per row index 0..n-1 (NaN with fewer than 2 times)."""
    fits = _ls_by_group(rows, t, y)
    out = np.full(n, np.nan)
    out[fits.index.to_numpy()] = fits["slope"].to_numpy()
    return out


def _expected_total(pat: dict[str, np.ndarray], loss: np.ndarray) -> np.ndarray:
    """Noise-free (continuous) ALSFRS-R total on the grid nodes, patients x nodes."""
    x = pat["deficit"][:, None, :] + pat["speed"][:, None, :] * loss[:, :, None] / _N_ITEMS
    return 48.0 - np.clip(x, 0.0, 4.0).sum(axis=2)


def _subset(pat: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in pat.items()}


def simulate_realistic_trial(
    n_patients: int = 20,
    *,
    n_controls: int = 0,
    runin_months: float = 6.0,
    gaps: Sequence[float] = (3.0,),
    followup_months: float = 6.0,
    visit_every: float = 1.0,
    enrolment_max_slope: float | str | None = None,
    enrolment: str = "runin_slope",
    effect: float = 0.0,
    effect_sd: float = 0.2,
    interval_effect: float = 0.0,
    interval_ref: float = 3.0,
    dropout: bool | float = True,
    item_level: bool = True,
    start_date: str | None = None,
    random_seed: int | None = 0,
    **natural_history_params: Any,
) -> tuple[TrialData, dict[str, Any]]:
    """Simulate a cell-therapy trial whose untreated course is realistic natural history.

    A screening population is drawn from the natural-history generator (see the module
    docstring). Each screened patient has a run-in of ``runin_months`` months with visits every
    ``visit_every`` months (the last on the day of the first injection, month 0). Patients meeting
    the enrolment rule are enrolled until ``n_patients + n_controls`` are in, then randomised to
    treatment or to sham injections on the same schedule. Injection k + 1 follows injection k by
    ``gaps[k]`` months (jittered, SD 0.3 months). During cycle k a treated patient's latent pace
    is multiplied by ``1 - rho_ik`` with
    ``rho_ik = effect + interval_effect * (gap_k - interval_ref) + u_i``, ``u_i ~ N(0, effect_sd)``,
    ``gap_k`` the actual months to the next injection (the last planned gap for the last cycle).
    Controls carry no effect. Dropout or death has a hazard that rises with the current pace of
    decline and as the total falls; a dropped patient has no later visits or injections.

    Parameters
    ----------
    n_patients : int, default 20
        Treated patients enrolled.
    n_controls : int, default 0
        Concurrent controls (placebo, sham injections) enrolled.
    runin_months : float, default 6.0
        Run-in before the first injection, months.
    gaps : sequence of float, default (3.0,)
        Planned months between consecutive injections; ``len(gaps) + 1`` injections
        (``(3, 3, 5)``: 4 injections, as in the motivating trial).
    followup_months : float, default 6.0
        Follow-up after the last injection, months.
    visit_every : float, default 1.0
        Months between visits (jittered); every injection day also has a visit.
    enrolment_max_slope : float, "median" or None
        Enrol only patients whose run-in slope (points/month) is below this value, e.g. -0.5;
        ``"median"`` means below the median run-in slope of the screened population (estimated
        from the first screening batch of max(200, 4 x needed) patients). None enrols everyone.
    enrolment : {"runin_slope", "runin_change"}, default "runin_slope"
        The run-in slope used by the rule: the least-squares slope of the run-in visits, or the
        change from first to last run-in visit divided by the months between them.
    effect : float, default 0.0
        Population slowing (fraction of the natural pace; 0.5 = 50% slower).
    effect_sd : float, default 0.2
        SD of the patient's own slowing u_i.
    interval_effect : float, default 0.0
        Change of slowing per month of gap beyond ``interval_ref`` (per month).
    interval_ref : float, default 3.0
        Reference gap, months.
    dropout : bool or float, default True
        Informative dropout; a float sets the base hazard per month (at a pace of 0.9
        points/month and a total of 38 points; True: 0.012). With enrolment on a run-in faster
        than the median, the default loses about half of the enrolled patients within 9 months
        of the first injection (0.006: about 40%, 0.024: about 70%; docs "Natural history").
    item_level : bool, default True
        Visits carry the 12 items (q1..q9, r1..r3) instead of the total.
    start_date : str, optional
        If given, times are calendar dates: each patient's first screening visit falls within
        6 months (staggered accrual) after this date.
    random_seed : int, optional
        Seed; the same seed gives the same trial.
    **natural_history_params
        Overrides of :data:`DEFAULT_NATURAL_HISTORY`.

    Returns
    -------
    data : TrialData
        Built with :meth:`TrialData.from_frames`; times are months since each patient's first
        screening visit (or dates). The patients table has an ``arm`` column ("treated" /
        "control") when ``n_controls > 0``.
    truth : dict
        ``patients`` (DataFrame indexed by patient: ``arm``, ``bulbar_onset``, ``runin_slope``
        (observed, points/month), ``rate_runin`` and ``rate_cycle1``.. (mean natural latent slope,
        points/month, negative = decline; NaN for cycles not reached), ``u``, ``n_injections``,
        ``dropout_month`` (months after the first injection; NaN if completed), ``rho``
        (months-weighted mean of rho_ik over observed cycles) and ``responder`` (rho > 0.25,
        treated only)); ``slowing`` (patient x cycle: ``rho``, ``gap``, ``cycle_length`` (to the
        next injection, the last to the last visit, months), ``observed_months``, ``observed``,
        ``natural_slope`` and ``slope`` (latent, points/month)); and the scalars used
        (``effect``, ``effect_sd``, ``interval_effect``, ``interval_ref``,
        ``enrolment_threshold``, ``n_screened``, ``gaps``, ``runin_months``,
        ``followup_months``, ``natural_history``).
    """
    if n_patients < 0 or n_controls < 0 or n_patients + n_controls < 1:
        raise ValueError("n_patients and n_controls must be >= 0 with at least one patient.")
    if enrolment not in ("runin_slope", "runin_change"):
        raise ValueError(f"enrolment must be 'runin_slope' or 'runin_change', not {enrolment!r}.")
    if runin_months < visit_every:
        raise ValueError("runin_months must allow at least two run-in visits.")
    p = _params(natural_history_params)
    rng = np.random.default_rng(random_seed)
    gaps_a = np.asarray(gaps, dtype=float).ravel()
    n_inj = gaps_a.size + 1
    needed = n_patients + n_controls
    span = runin_months + gaps_a.sum() + followup_months + 4.0 * _GAP_JITTER * max(gaps_a.size, 1)
    n_steps = int(np.ceil(span / _DT)) + 2

    # ---- screening: run-in visits, run-in slope, enrolment
    n_run = int(np.floor(runin_months / visit_every + 1e-9)) + 1
    nominal_run = np.linspace(-runin_months, 0.0, n_run)
    threshold: float | None = None
    chosen: list[dict[str, Any]] = []
    n_enrolled = 0
    n_screened = 0
    first = True
    while n_enrolled < needed:
        batch = max(200, 4 * needed) if first else max(50, 4 * (needed - n_enrolled))
        pat = _draw_patients(rng, batch, p)
        rate = _latent_rates(rng, pat["pace"], pat["accel"], n_steps, p)
        t_run = np.tile(nominal_run, (batch, 1))
        t_run[:, 1:-1] += rng.normal(0.0, p["visit_jitter"] * visit_every, (batch, n_run - 2))
        t_run = np.round(np.sort(t_run, axis=1), 4)
        rows = np.repeat(np.arange(batch), n_run)
        loss = _cumulative(rate)
        items = _observe(rng, pat, loss, rate, rows, t_run.ravel() + runin_months, p)
        total = items.sum(axis=1)
        if enrolment == "runin_slope":
            slope = _ls_slopes(rows, t_run.ravel(), total, batch)
        else:
            tot = total.reshape(batch, n_run)
            slope = (tot[:, -1] - tot[:, 0]) / (t_run[:, -1] - t_run[:, 0])
        if first:
            if isinstance(enrolment_max_slope, str):
                if enrolment_max_slope != "median":
                    raise ValueError("enrolment_max_slope must be a number, 'median' or None.")
                threshold = float(np.median(slope))
            elif enrolment_max_slope is not None:
                threshold = float(enrolment_max_slope)
            first = False
        ok = np.ones(batch, bool) if threshold is None else slope < threshold
        idx = np.flatnonzero(ok)[: needed - n_enrolled]
        remaining = needed - n_enrolled
        n_screened += batch if idx.size < remaining else int(np.flatnonzero(ok)[remaining - 1]) + 1
        if idx.size:
            chosen.append({"pat": _subset(pat, idx), "rate": rate[idx], "t_run": t_run[idx],
                           "items_run": items.reshape(batch, n_run, _N_ITEMS)[idx],
                           "slope": slope[idx]})
            n_enrolled += idx.size
        if n_screened > 10_000 * needed:
            raise RuntimeError("enrolment rule too strict: almost no screened patient meets it.")
    pat = {k: np.concatenate([c["pat"][k] for c in chosen]) for k in chosen[0]["pat"]}
    nat_rate = np.concatenate([c["rate"] for c in chosen])
    t_run = np.concatenate([c["t_run"] for c in chosen])
    items_run = np.concatenate([c["items_run"] for c in chosen])
    runin_slope = np.concatenate([c["slope"] for c in chosen])
    n = needed

    # ---- randomisation, injections, slowing
    treated = np.zeros(n, bool)
    treated[rng.permutation(n)[:n_patients]] = True
    steps = np.maximum(gaps_a[None, :] + rng.normal(0.0, _GAP_JITTER, (n, gaps_a.size)), 1.0)
    tau = np.round(np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1), 4)
    last_gap = gaps_a[-1] if gaps_a.size else interval_ref
    gap_k = np.concatenate([steps, np.full((n, 1), last_gap)], axis=1)
    u = rng.normal(0.0, effect_sd, n)
    rho = effect + interval_effect * (gap_k - interval_ref) + u[:, None]
    rho = np.where(treated[:, None], rho, 0.0)
    end = tau[:, -1] + followup_months

    g_mid = (np.arange(n_steps) + 0.5) * _DT - runin_months  # months from the first injection
    cyc = (g_mid[None, :, None] >= tau[:, None, :]).sum(axis=2) - 1  # -1 = run-in
    mult = np.where(cyc >= 0, 1.0 - np.take_along_axis(rho, np.clip(cyc, 0, None), axis=1), 1.0)
    rate = nat_rate * mult
    loss = _cumulative(rate)

    # ---- dropout (hazard on the grid after the first injection)
    drop = np.full(n, np.inf)
    if dropout is not False:
        base = _DROPOUT_BASE if dropout is True else float(dropout)
        tot = _expected_total(pat, loss)[:, 1:]
        haz = base * (np.abs(rate) / 0.9) ** _DROPOUT_PACE_POWER \
            * np.exp(_DROPOUT_PER_POINT * (38.0 - tot))
        haz = np.where((g_mid[None, :] >= 0) & (g_mid[None, :] < end[:, None]), haz, 0.0)
        cum = np.cumsum(haz * _DT, axis=1)
        e = rng.exponential(1.0, n)
        hit = cum >= e[:, None]
        has = hit.any(axis=1)
        drop[has] = g_mid[np.argmax(hit[has], axis=1)] + 0.5 * _DT
    stop = np.minimum(end, drop)

    # ---- post-injection visits: a grid plus every injection day, cut at dropout
    n_post = int(np.floor(span / visit_every)) + 1
    nominal = visit_every * np.arange(1, n_post + 1)
    t_post = np.round(
        nominal[None, :] + rng.normal(0.0, p["visit_jitter"] * visit_every, (n, n_post)), 4)
    near = (np.abs(t_post[:, :, None] - tau[:, None, :]) < 0.25 * visit_every).any(axis=2)
    keep_post = (t_post > 0.0) & (t_post <= end[:, None]) & ~near & (t_post < stop[:, None])
    inj_keep = tau < stop[:, None]
    inj_keep[:, 0] = True  # the first injection is enrolment
    rows_p = np.concatenate([np.nonzero(keep_post)[0], np.nonzero(inj_keep[:, 1:])[0]])
    times_p = np.concatenate([t_post[keep_post], tau[:, 1:][inj_keep[:, 1:]]])
    items_p = _observe(rng, pat, loss, rate, rows_p, times_p + runin_months, p)

    # ---- frames
    width = max(2, len(str(n)))
    ids = np.array([f"P{i + 1:0{width}d}" for i in range(n)], dtype=object)
    rows_all = np.concatenate([np.repeat(np.arange(n), n_run), rows_p])
    t_all = np.concatenate([t_run.ravel(), times_p])
    items_all = np.concatenate([items_run.reshape(-1, _N_ITEMS), items_p])
    order = np.lexsort((t_all, rows_all))
    rows_all, t_all, items_all = rows_all[order], t_all[order], items_all[order]
    visits = _items_frame(ids[rows_all], t_all + runin_months, items_all, item_level)
    if item_level:
        visits = visits.drop(columns="alsfrs_r")
    ir, ik = np.nonzero(inj_keep)
    injections = pd.DataFrame({"patient": ids[ir], "time": np.round(tau[ir, ik] + runin_months, 4),
                               "cycle": ik + 1})
    arm = np.where(treated, "treated", "control")
    if start_date is not None:
        origin = pd.Timestamp(start_date)
        accrual = rng.uniform(0.0, 6.0, n)
        for frame in (visits, injections):
            r = pd.Index(ids).get_indexer(frame["patient"])
            days = np.round((frame["time"].to_numpy(float) + accrual[r]) * DAYS_PER_MONTH)
            frame["time"] = (origin + pd.to_timedelta(days, unit="D")).normalize()
    patients = pd.DataFrame({"patient": ids, "arm": arm}) if n_controls > 0 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = TrialData.from_frames(visits, injections, patients)

    # ---- truth
    last_visit = np.full(n, -np.inf)
    np.maximum.at(last_visit, rows_all, t_all)
    nxt = np.concatenate([tau[:, 1:], np.full((n, 1), np.inf)], axis=1)
    n_got = inj_keep.sum(axis=1)
    obs_end = np.minimum(nxt, last_visit[:, None])
    obs_months = np.where(inj_keep, np.clip(obs_end - tau, 0.0, None), 0.0)
    has_visit = np.zeros((n, n_inj), bool)
    for k in range(n_inj):  # a loop over cycles only
        inside = (t_all > tau[rows_all, k]) & (t_all <= nxt[rows_all, k]) & inj_keep[rows_all, k]
        has_visit[np.unique(rows_all[inside]), k] = True
    observed = has_visit & (obs_months > 0)
    cycle_len = np.where(np.arange(n_inj)[None, :] < (n_got - 1)[:, None], gap_k,
                         np.clip(last_visit[:, None] - tau, 0.0, None))
    cycle_len = np.where(inj_keep, cycle_len, np.nan)
    w = np.where(observed, obs_months, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_i = np.where(w.sum(axis=1) > 0, (w * rho).sum(axis=1) / w.sum(axis=1), np.nan)

    def mean_rate(r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        inside = (g_mid[None, :] >= lo[:, None]) & (g_mid[None, :] < hi[:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            return -(r * inside).sum(axis=1) / inside.sum(axis=1)

    truth_pat = pd.DataFrame(
        {"arm": arm, "bulbar_onset": pat["bulbar"], "runin_slope": runin_slope,
         "rate_runin": mean_rate(nat_rate, np.full(n, -runin_months), np.zeros(n))},
        index=pd.Index(ids, name="patient"))
    slow_rows = []
    for k in range(n_inj):
        hi = np.minimum(np.where(np.isfinite(nxt[:, k]), nxt[:, k], end), stop)
        nat_k = np.where(inj_keep[:, k], mean_rate(nat_rate, tau[:, k], hi), np.nan)
        truth_pat[f"rate_cycle{k + 1}"] = nat_k
        slow_rows.append(pd.DataFrame({
            "patient": ids, "cycle": k + 1, "rho": rho[:, k], "gap": gap_k[:, k],
            "cycle_length": cycle_len[:, k], "observed_months": obs_months[:, k],
            "observed": observed[:, k], "natural_slope": nat_k,
            "slope": nat_k * (1.0 - rho[:, k]), "_keep": inj_keep[:, k]}))
    slowing = pd.concat(slow_rows, ignore_index=True)
    slowing = slowing[slowing.pop("_keep")].sort_values(["patient", "cycle"]).reset_index(drop=True)
    truth_pat["u"] = np.where(treated, u, 0.0)
    truth_pat["n_injections"] = n_got
    truth_pat["dropout_month"] = np.where(np.isfinite(drop) & (drop < end), drop, np.nan)
    truth_pat["rho"] = rho_i
    truth_pat["responder"] = treated & (np.nan_to_num(rho_i, nan=0.0) > 0.25)
    truth = {
        "patients": truth_pat,
        "slowing": slowing,
        "effect": effect,
        "effect_sd": effect_sd,
        "interval_effect": interval_effect,
        "interval_ref": interval_ref,
        "enrolment": enrolment,
        "enrolment_threshold": threshold,
        "n_screened": n_screened,
        "gaps": tuple(float(g) for g in gaps_a),
        "runin_months": runin_months,
        "followup_months": followup_months,
        "natural_history": p,
    }
    return data, truth
