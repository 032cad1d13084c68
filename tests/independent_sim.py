"""An ALSFRS-R trial generator written independently of slopeshift's own simulators.

It imports neither :mod:`slopeshift.simulate` nor :mod:`slopeshift.natural`: only NumPy, pandas
and :class:`slopeshift.TrialData` (to hand the tables to the model). The tests fit the default
model to its trials and check that the model's intervals and probabilities are calibrated
against a truth the model's own formulas did not produce.

Mechanism (times in months since the patient's first injection, rates in points/month)
------------------------------------------------------------------------------------------
* **Persistent rate.** Patient i declines at a persistent pace p_i ~ Gamma (mean 0.9, SD 0.5;
  always positive, right-skewed), so the persistent rate is -p_i.
* **Natural rate** at month t in period j (period 0 the run-in, period k cycle k)::

      n_i(t) = min(-p_i + a (t - c_i) + d_ij, -0.1)

  a = -0.02 (points/month per month: decline steepens), c_i the middle of the run-in, and
  d_ij ~ Normal(0, 0.35) the drift of period j. The cap at -0.1 keeps the natural course from
  ever rising (ALS totals do not improve untreated).
* **Treatment** multiplies the whole natural rate, drift included, in cycle k::

      slope_i(t) = n_i(t) (1 - rho_ik)
      rho_ik = rho_k + theta (g_ik - 3) 1[cycle closed] + u_i + e_ik

  rho_k = 0.6, 0.45, 0.3, 0.25 (cycles 1-4), theta = -0.05 per month, u_i ~ N(0, 0.3),
  e_ik ~ N(0, 0.15). g_ik is the months from injection k to injection k+1 and acts only on a
  cycle that a next injection closed; an open last cycle carries no interval term (it is at the
  reference interval of 3 months).
* **Truth of rho_ik.** At every moment of cycle k the rate is exactly (1 - rho_ik) times the
  patient's natural rate for that moment (persistent rate + acceleration + the cycle's drift),
  so rho_ik is "the fraction by which the cycle's rate is slower than the patient's natural
  rate for that cycle", the model's definition. A patient's overall truth is the
  months-weighted mean of rho_ik over the observed cycles (the model's rho_i).
* **Scores.** The mean trajectory starts at a first-visit total of about 40 (SD 3, kept
  within 34-45) and integrates the rate exactly (fine grid); each visit adds Normal noise
  (SD 1.6), is rounded to a whole point and clipped to 0-48. How many visits were clipped is
  reported (``truth["clipped"]``); starting totals are chosen so that it is rare.
* **Schedule.** Run-in of 5-7 months with visits every 1-2 months; a visit at every
  injection; 2, 3 or 4 planned injections (probabilities 0.25, 0.25, 0.5), 3-6 months apart
  (uniform); visits monthly (SD 0.15 months of jitter, 10% missed) and 3-6 months of
  follow-up after the last planned injection. A few patients (``n_untreated``) withdraw during
  the run-in.
* **Informative dropout.** Before each further injection a patient stops with probability
  ``1 / (1 + exp(-(-1.2 - 5 (r_ik - 0.2))))``, with r_ik = rho_k + u_i + e_ik the true slowing
  of the cycle just ended (about 45% at r = 0, 15% at r = 0.3, 4% at r = 0.6): poor
  responders stop early and miss later cycles, the later cycles hold the better responders.
  A patient who stops is followed 0-3 more months. Independently, faster decliners leave the
  study sooner (death or disability: monthly hazard 0.01 p_i / 0.9 from the first injection).

How it differs from the model (SlopeShiftModel defaults, MODEL.md sections 3-7)
-------------------------------------------------------------------------------
1. Drift is multiplied by the treatment: the cycle's slope is (n + d)(1 - rho), the model's
   is n (1 - rho) + d. In the model's terms the cycle's drift is d (1 - rho_ik): smaller in
   treated cycles than in the run-in, and correlated with the slowing.
2. Acceleration acts continuously: the rate changes within each period (a curved
   trajectory), where the model gives each period one slope (its mean rate is the model's
   beta_i0 + kappa s_ik, from the middle of the run-in to the middle of the cycle).
3. Persistent rates are Gamma (skewed, never positive), not Normal; natural rates are capped
   at -0.1 points/month.
4. Scores are whole points clipped at 0 and 48 (the model's likelihood is Normal, uncensored).
5. Dropout is informative: the decision depends on the true slowing of the cycle just ended
   (only noisily observed: missing not at random), and leaving the study on the pace.
6. An open last cycle has no interval term (at 3 months); the model places an open cycle at
   its cycle's mean interval over the closed cycles (theta * (mean g_k - 3) apart).
7. All-comers: no enrolment rule on the run-in slope (the model's default assumes the most
   selective rule the data allow, ``enrolment="auto"``).
8. The natural course has no per-cycle shift beyond acceleration and drift (the model's
   ``natural_shift`` prior, N(0, 0.15)), and no interval term for cycle 4, which is always open.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slopeshift import SlopeShiftModel, TrialData

__all__ = ["SimSettings", "fitted_trial", "simulate_independent_trial", "true_patient_slowing"]

_GRID = 0.01  # months: step of the grid on which the rate is integrated
_RATE_CAP = -0.1  # points/month: a natural rate never rises above this


@dataclass(frozen=True)
class SimSettings:
    """The generator's parameters (rates in points/month, times in months)."""

    rho_k: tuple[float, ...] = (0.6, 0.45, 0.3, 0.25)
    theta: float = -0.05
    interval_ref: float = 3.0
    sd_patient: float = 0.3
    sd_patient_cycle: float = 0.15
    pace_mean: float = 0.9
    pace_sd: float = 0.5
    pace_max: float = 2.2  # faster patients would reach the floor of 0 during the trial
    sd_drift: float = 0.35
    acceleration: float = -0.02
    sigma: float = 1.6
    first_score: tuple[float, float] = (40.0, 3.0)  # mean, SD; kept within 34-45
    runin_months: tuple[float, float] = (5.0, 7.0)
    runin_visit_gap: tuple[float, float] = (1.0, 1.5)
    planned_injections: dict[int, float] = field(
        default_factory=lambda: {2: 0.25, 3: 0.25, 4: 0.5})
    gap_months: tuple[float, float] = (3.0, 6.0)
    visit_jitter: float = 0.15
    missed_visit: float = 0.1
    followup_months: tuple[float, float] = (3.0, 6.0)
    stop_followup: tuple[float, float] = (0.0, 3.0)
    # logit P(stop before the next injection) = stop_logit + stop_slope * (r_ik - stop_centre)
    stop_logit: float = -1.2
    stop_slope: float = -5.0
    stop_centre: float = 0.2
    leave_hazard: float = 0.01  # per month, times pace / pace_mean
    exit_score: float = 8.0  # a mean total below this ends follow-up
    n_untreated: int = 2


def _pace(rng: np.random.Generator, s: SimSettings, n: int) -> np.ndarray:
    """Gamma paces (mean pace_mean, SD pace_sd), redrawn above pace_max."""
    shape = (s.pace_mean / s.pace_sd) ** 2
    pace = rng.gamma(shape, s.pace_sd**2 / s.pace_mean, size=n)
    while (far := pace > s.pace_max).any():
        pace[far] = rng.gamma(shape, s.pace_sd**2 / s.pace_mean, size=int(far.sum()))
    return pace


def _visits_between(rng, start: float, stop: float, s: SimSettings) -> list[float]:
    """Monthly visits after ``start`` and before ``stop`` (jittered, some missed)."""
    out = []
    j = 1
    while start + j - 0.5 < stop:
        t = start + j + rng.normal(0.0, s.visit_jitter)
        if start + 0.25 < t < stop - 0.25 and rng.random() >= s.missed_visit:
            out.append(t)
        j += 1
    return out


def _trajectory(tau, start, stop, first, pace, drift, u, e, s: SimSettings) -> dict:
    """Rates and mean total on a fine grid from ``start`` (the first visit, at -runin) to
    ``stop``, given the injections ``tau`` (the last cycle open)."""
    rho_k = np.asarray(s.rho_k, float)
    n_inj = len(tau)
    closed = np.arange(n_inj) < n_inj - 1
    gaps = np.append(np.diff(tau), np.nan) if n_inj else np.zeros(0)
    rho = np.array([rho_k[k] + (s.theta * (gaps[k] - s.interval_ref) if closed[k] else 0.0)
                    + u + e[k] for k in range(n_inj)])
    grid = np.arange(start, stop + _GRID, _GRID)
    period = np.searchsorted(tau, grid, side="right") if n_inj else np.zeros(len(grid), int)
    centre = start / 2.0  # the middle of the run-in (start = -runin)
    natural = np.minimum(-pace + s.acceleration * (grid - centre) + drift[period], _RATE_CAP)
    rate = natural * np.where(period > 0, 1.0 - np.append(0.0, rho)[period], 1.0)
    mu = first + np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2.0 * np.diff(grid))])
    return {"grid": grid, "natural": natural, "rate": rate, "mu": mu, "rho": rho,
            "closed": closed, "gaps": gaps}


def simulate_independent_trial(
    n_patients: int = 100, *, random_seed: int, settings: SimSettings | None = None, **changes
) -> tuple[TrialData, dict]:
    """Simulate a trial (see the module docstring for the mechanism).

    Parameters
    ----------
    n_patients : int
        Patients enrolled, including ``n_untreated`` who withdraw during the run-in.
    random_seed : int
    settings : SimSettings, optional
    **changes
        Fields of :class:`SimSettings` to replace.

    Returns
    -------
    data : TrialData
    truth : dict
        ``cells`` (one row per patient x injection received: ``patient``, ``cycle``,
        ``injection_month``, ``closed``, ``interval`` (g_ik; NaN for the open last cycle),
        ``cycle_length`` (to the next injection; the last to the last visit), ``observed``
        (a visit during the cycle), ``rho`` (truth rho_ik), ``response`` (r_ik, without the
        interval term), ``u``, ``e``, ``drift``, ``natural_rate`` (mean natural rate over the
        cycle, drift included) and ``slope`` (mean treated rate over the cycle)),
        ``patients`` (indexed by patient: ``pace``, ``runin`` (months), ``first`` (the mean
        total at the first visit), ``u``, ``runin_drift``, ``planned``,
        ``n_injections``, ``stopped`` (stopped injections for response), ``left`` (left the
        study early), ``treated``), ``visits`` (``patient``, ``time``, ``mu`` (noiseless
        mean), ``y``, ``clipped``), the scalars of ``settings``, and ``clipped`` (the number of
        visits whose score was clipped to 0 or 48) with ``n_visits``.
    """
    s = settings or SimSettings()
    if changes:
        s = SimSettings(**{**s.__dict__, **changes})
    rng = np.random.default_rng(random_seed)
    rho_k = np.asarray(s.rho_k, float)
    n_max = len(rho_k)
    planned_k = np.array(sorted(s.planned_injections))
    planned_p = np.array([s.planned_injections[k] for k in planned_k], float)
    planned_p /= planned_p.sum()
    if planned_k.max() > n_max:
        raise ValueError("rho_k needs a value for every planned injection.")

    pace = _pace(rng, s, n_patients)
    visit_rows, inj_rows, cell_rows, pat_rows = [], [], [], []
    for i in range(n_patients):
        pid = f"P{i + 1:03d}"
        untreated = i >= n_patients - s.n_untreated
        runin = rng.uniform(*s.runin_months)
        u = rng.normal(0.0, s.sd_patient)
        e = rng.normal(0.0, s.sd_patient_cycle, n_max)
        drift = rng.normal(0.0, s.sd_drift, n_max + 1)  # run-in, cycles 1..n_max
        first = float(np.clip(rng.normal(*s.first_score), 34.0, 45.0))

        # run-in visits: from -runin, every 1-2 months, up to the first injection (month 0)
        t_vis = [-runin]
        while True:
            nxt = t_vis[-1] + rng.uniform(*s.runin_visit_gap)
            if nxt > -0.5:
                break
            t_vis.append(nxt)

        if untreated:
            # withdrew during the run-in: visits stop before the first injection was due
            keep = max(2, int(rng.integers(2, len(t_vis) + 1)))
            t_vis = t_vis[:keep]
            tau = np.zeros(0)
            end = t_vis[-1]
            planned = 0
            stopped = left = False
        else:
            planned = int(rng.choice(planned_k, p=planned_p))
            leave = rng.exponential(1.0 / (s.leave_hazard * pace[i] / s.pace_mean))
            tau = [0.0]
            stopped = left = False
            end = None
            while True:
                k = len(tau)  # the cycle now running (1-based)
                if k == planned:
                    end = tau[-1] + rng.uniform(*s.followup_months)
                    break
                gap = rng.uniform(*s.gap_months)
                response = rho_k[k - 1] + u + e[k - 1]
                logit = s.stop_logit + s.stop_slope * (response - s.stop_centre)
                if rng.random() < 1.0 / (1.0 + np.exp(-logit)):
                    stopped = True
                    end = tau[-1] + gap + rng.uniform(*s.stop_followup)
                    break
                if tau[-1] + gap > leave:
                    end = leave
                    break
                tau.append(tau[-1] + gap)
            if leave <= end:
                left = True
                end = max(leave, 0.3)
            tau = np.asarray([t for t in tau if t <= end])
            # a patient whose total nears the floor leaves (disability, death): the first month
            # their mean falls below exit_score ends their follow-up (and cancels later cycles)
            for _ in range(3):
                path = _trajectory(tau, -runin, end, first, pace[i], drift, u, e, s)
                low = np.flatnonzero((path["grid"] > 0) & (path["mu"] < s.exit_score))
                if not low.size:
                    break
                left = True
                end = max(float(path["grid"][low[0]]), 0.3)
                tau = tau[tau <= end]
            # monthly visits after each injection, up to the next one (which has its own visit)
            bounds = list(tau) + [end]
            for k in range(len(tau)):
                t_vis.append(tau[k])
                t_vis += _visits_between(rng, tau[k], bounds[k + 1], s)
            t_vis.append(end)  # the last visit (end of follow-up, a stop or a leave)
        t_vis = np.unique(np.round(np.asarray(t_vis, float), 4))
        t_vis = t_vis[t_vis <= end + 1e-3]  # (rounding may move the last visit up)
        n_inj = len(tau)
        path = _trajectory(tau, t_vis[0], t_vis[-1], first, pace[i], drift, u, e, s)
        grid, natural, rate, rho = path["grid"], path["natural"], path["rate"], path["rho"]
        closed, gaps = path["closed"], path["gaps"]
        mu = np.interp(t_vis, grid, path["mu"])
        raw = np.round(mu + rng.normal(0.0, s.sigma, len(t_vis)))
        y = np.clip(raw, 0.0, 48.0)
        visit_rows += [{"patient": pid, "time": t, "mu": m, "y": v, "clipped": r != v}
                       for t, m, v, r in zip(t_vis, mu, y, raw, strict=True)]
        last_visit = t_vis[-1]
        for k in range(n_inj):
            stop = tau[k + 1] if closed[k] else max(last_visit, tau[k])
            inside = (grid >= tau[k]) & (grid < stop)
            nxt = tau[k + 1] if closed[k] else np.inf
            cell_rows.append({
                "patient": pid, "cycle": k + 1, "injection_month": tau[k],
                "closed": bool(closed[k]), "interval": gaps[k] if closed[k] else np.nan,
                "cycle_length": stop - tau[k],
                "observed": bool(((t_vis > tau[k]) & (t_vis <= nxt)).any()),
                "rho": rho[k], "response": rho_k[k] + u + e[k], "u": u, "e": e[k],
                "drift": drift[k + 1],
                "natural_rate": natural[inside].mean() if inside.any() else np.nan,
                "slope": rate[inside].mean() if inside.any() else np.nan,
            })
            inj_rows.append({"patient": pid, "time": tau[k], "cycle": k + 1})
        pat_rows.append({"patient": pid, "pace": pace[i], "runin": -t_vis[0], "first": first,
                         "u": u, "runin_drift": drift[0],
                         "planned": planned, "n_injections": n_inj, "stopped": stopped,
                         "left": left, "treated": n_inj > 0})

    visits = pd.DataFrame(visit_rows)
    injections = pd.DataFrame(inj_rows, columns=["patient", "time", "cycle"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unobserved cycles, short run-ins: reported by data
        data = TrialData.from_frames(
            visits[["patient", "time", "y"]].rename(columns={"y": "alsfrs_r"}), injections)
    truth = dict(s.__dict__)
    truth |= {
        "rho_k": rho_k,
        "cells": pd.DataFrame(cell_rows),
        "patients": pd.DataFrame(pat_rows).set_index("patient"),
        "visits": visits,
        "clipped": int(visits["clipped"].sum()),
        "n_visits": len(visits),
    }
    return data, truth


def true_patient_slowing(cells: pd.DataFrame) -> pd.Series:
    """Each patient's overall truth: rho_ik weighted by cycle months over observed cycles."""
    obs = cells[cells["observed"] & (cells["cycle_length"] > 0)]
    w = obs["cycle_length"]
    return (obs["rho"] * w).groupby(obs["patient"]).sum() / w.groupby(obs["patient"]).sum()


@functools.cache
def fitted_trial(seed: int, n_patients: int, model_options: tuple = ()) -> tuple:
    """(data, truth, fit): a simulated trial and its fit, computed once per test session.

    The default model (plus ``model_options``, a tuple of (name, value) pairs) with nutpie's
    default 4 chains x 1000 draws, seeded by ``seed``; shared by test_calibration.py and
    test_recovery.py so that each trial is fitted once however the tests are selected.
    """
    data, truth = simulate_independent_trial(n_patients, random_seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = SlopeShiftModel(data, **dict(model_options)).fit(
            random_seed=seed, progressbar=False, check=False)
    return data, truth, fit
