"""Simulated trials with known truth, and the bundled example trial.

The bundled example (:func:`example_trial`) is **simulated**: it is shaped like the phase II trial
NCT04821479 (20 patients, one withdrawn before the first injection, 1-4 intrathecal injections
about 3 months apart then 5 months, run-in about 7.8 months), but no patient in it is real.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

from slopeshift.data import DAYS_PER_MONTH, TrialData
from slopeshift.errors import DataWarning

__all__ = ["example_frames", "example_trial", "simulate_trial"]


def simulate_trial(
    n_patients: int = 20,
    *,
    rho: float | Sequence[float] = 0.4,
    theta: float = -0.08,
    interval_ref: float = 3.0,
    sd_patient: float = 0.2,
    sd_patient_cycle: float = 0.1,
    mu_alpha: float = 31.0,
    sd_alpha: float = 6.0,
    mu_beta: float = -1.1,
    sd_beta: float = 0.35,
    sigma: float = 1.5,
    sd_drift: float = 0.0,
    acceleration: float = 0.0,
    n_cycles_probs: Sequence[float] = (0.2, 0.17, 0.1, 0.53),
    gaps: Sequence[float] = (3.0, 3.0, 5.0),
    gap_jitter: float = 0.5,
    runin_months: float = 7.8,
    followup_months: float = 6.0,
    visit_every: float = 1.0,
    visit_jitter: float = 0.2,
    dropout_per_month: float = 0.005,
    dropout_response: float = 0.0,
    n_untreated: int = 0,
    cycles_per_patient: Sequence[int] | None = None,
    outcome: str = "alsfrs_r",
    bounds: tuple[float | None, float | None] = (0.0, 48.0),
    integer_scores: bool = True,
    start_date: str | None = None,
    random_seed: int | None = 0,
) -> tuple[TrialData, dict]:
    """Simulate a trial from the slopeshift model with known parameters.

    Each patient has a run-in of about ``runin_months`` months with visits every
    ``visit_every`` months (jittered), then 1-4 injections; cycle k of patient i declines at
    ``beta_i0 * (1 - rho_ik)`` with ``rho_ik = rho_k + theta * (g_ik - interval_ref) + u_i + e_ik``
    (the ratio parameterisation of the model). The interval g_ik is the months from injection k
    to injection k+1 as planned for the patient: the actual gap where the next injection
    happened, and for a patient's last cycle the gap that would have followed (the jittered gap
    to an injection cancelled by dropout, or the protocol's mean gap after the last planned
    injection). It is never the months to the last visit: how long a patient stayed is not an
    injection interval (the model leaves open cycles out of theta for that reason).

    Parameters
    ----------
    n_patients : int
        Number of patients enrolled (including ``n_untreated``).
    rho : float or sequence of float
        Population slowing per cycle (fraction of the pre-treatment rate; 0.4 = 40% slower).
    theta : float
        Change of slowing per extra month of cycle length (per month).
    interval_ref : float
        Reference interval g_ref, months.
    sd_patient, sd_patient_cycle : float
        SD of the patient's responsiveness u_i and of the cycle-to-cycle variation e_ik.
    mu_alpha, sd_alpha : float
        Score at the first injection (points): population mean and SD.
    mu_beta, sd_beta : float
        Pre-treatment slope (points/month): population mean and SD. Slopes are kept below
        -0.1 points/month (the ratio is undefined for patients who do not decline).
    sigma : float
        Visit-to-visit noise SD (points).
    sd_drift : float
        SD of the natural drift of each period's rate (points/month): the run-in and each cycle
        get their own ``d ~ N(0, sd_drift)`` added to the slope, as in the default model. 0 (the
        default) keeps every patient's natural rate fixed.
    acceleration : float
        Systematic change of the natural rate, points/month per month, from the middle of the
        run-in to the middle of each cycle (negative: decline steepens), as in the default model.
    n_cycles_probs : sequence of float
        Probability that a patient receives 1, 2, 3, ... injections.
    gaps : sequence of float
        Mean months between injections 1-2, 2-3, 3-4, ...
    gap_jitter : float
        SD of the per-patient jitter added to each gap (months; gaps are kept >= 2 months).
    runin_months : float
        Mean run-in length, months (SD 1.5, at least 3).
    followup_months : float
        Follow-up after the last injection, months.
    visit_every, visit_jitter : float
        Months between visits and the SD of their jitter.
    dropout_per_month : float
        Monthly hazard of leaving the study after the first injection.
    dropout_response : float
        Informative dropout: the log hazard ratio of leaving per SD of the patient's own
        responsiveness, poor responders leaving sooner (hazard ``dropout_per_month *
        exp(-dropout_response * u_i / sd_patient)``). 0 (default): dropout ignores response.
    n_untreated : int
        Patients who withdraw during the run-in (never injected).
    cycles_per_patient : sequence of int, optional
        Number of injections of each patient (0 = never injected), overriding
        ``n_cycles_probs`` and ``n_untreated``; its length must be ``n_patients``.
    outcome : str
        Name of the outcome column.
    bounds : (float or None, float or None)
        Floor and ceiling of the scale: simulated scores are clipped to them.
    integer_scores : bool
        Round scores to whole points.
    start_date : str, optional
        If given (e.g. ``"2019-01-07"``), times are calendar dates instead of months.
    random_seed : int, optional
        Seed; the same seed gives the same trial.

    Returns
    -------
    data : TrialData
    truth : dict
        ``rho_k`` (per cycle), ``rho_bar`` (patient-month weighted), ``theta``, and DataFrames
        ``slowing`` (patient x cycle rho_ik with the cycle's months ``cycle_length`` and its
        planned ``interval`` g_ik) and ``patients`` (alpha, beta_pre,
        u, overall slowing), plus the scalars used.
    """
    rng = np.random.default_rng(random_seed)
    probs = np.asarray(n_cycles_probs, dtype=float)
    probs = probs / probs.sum()
    k_max = len(probs)
    if cycles_per_patient is not None:
        if len(cycles_per_patient) != n_patients:
            raise ValueError(f"cycles_per_patient needs {n_patients} entries, one per patient.")
        k_max = max(k_max, max(cycles_per_patient))
    rho_k = np.broadcast_to(np.asarray(rho, dtype=float), (k_max,)).copy()
    gaps = np.asarray(gaps, dtype=float)
    if len(gaps) < k_max - 1:
        raise ValueError(f"gaps needs {k_max - 1} entries for {k_max} cycles.")

    visits, injections, slow_rows, pat_rows = [], [], [], []
    for i in range(n_patients):
        pid = f"P{i + 1:02d}" if n_patients < 100 else f"P{i + 1:04d}"
        if cycles_per_patient is not None:
            untreated = cycles_per_patient[i] == 0
        else:
            untreated = i >= n_patients - n_untreated
        alpha = rng.normal(mu_alpha, sd_alpha)
        beta0 = min(rng.normal(mu_beta, sd_beta), -0.1)
        u = rng.normal(0.0, sd_patient)
        runin = max(rng.normal(runin_months, 1.5), 3.0)
        k_i = 0 if untreated else int(rng.choice(k_max, p=probs)) + 1
        if cycles_per_patient is not None:
            k_i = int(cycles_per_patient[i])
        tau = [0.0]
        for k in range(1, k_i):
            tau.append(tau[-1] + max(gaps[k - 1] + rng.normal(0.0, gap_jitter), 2.0))
        tau = np.asarray(tau[:k_i]) if k_i else np.zeros(0)
        # each cycle's planned interval: the gap to the next injection; after the last planned
        # injection, the protocol's mean gap for that cycle (g_ref for a one-injection design)
        after = gaps[min(k_i - 1, len(gaps) - 1)] if len(gaps) else interval_ref
        planned = np.append(np.diff(tau), after) if k_i else tau
        end = tau[-1] + followup_months if k_i else -rng.uniform(0.5, runin - 1.0)
        if k_i and dropout_per_month > 0:
            hazard = dropout_per_month
            if dropout_response:
                hazard *= np.exp(-dropout_response * u / max(sd_patient, 1e-12))
            leave = rng.exponential(1.0 / hazard)
            if leave < end:
                end = max(leave, 0.5)
                tau = tau[tau < end]
                k_i = len(tau)
                planned = planned[:k_i]
        n_v = int(np.floor((end + runin) / visit_every)) + 1
        t = -runin + visit_every * np.arange(n_v) + rng.normal(0.0, visit_jitter, n_v)
        t = np.sort(np.clip(t, -runin, end))
        t = np.unique(np.round(np.concatenate([t, tau]), 4))
        # months in each cycle: to the next injection, the last to the last visit
        lengths = np.append(np.diff(tau), t[-1] - tau[-1]) if k_i else np.zeros(0)
        e = rng.normal(0.0, sd_patient_cycle, size=k_i)
        rho_i = rho_k[:k_i] + theta * (planned - interval_ref) + u + e
        natural = np.full(k_i, beta0)
        pre = beta0
        if sd_drift > 0 or acceleration != 0:
            # natural change: the model's own form (drift per period, acceleration over the
            # months from the run-in's middle to each cycle's middle)
            drift = rng.normal(0.0, sd_drift, k_i + 1) if sd_drift > 0 else np.zeros(k_i + 1)
            pre = beta0 + drift[0]
            natural = beta0 + acceleration * (runin / 2.0 + tau + lengths / 2.0)
            natural_drift = drift[1:]
        else:
            natural_drift = np.zeros(k_i)
        betas = natural * (1.0 - rho_i) + natural_drift
        mu = alpha + pre * np.minimum(t, 0.0)
        for k in range(k_i):
            mu = mu + betas[k] * np.clip(t - tau[k], 0.0, lengths[k])
        y = mu + rng.normal(0.0, sigma, t.size)
        if integer_scores:
            y = np.round(y)
        lo, hi = bounds
        y = np.clip(y, lo if lo is not None else -np.inf, hi if hi is not None else np.inf)
        visits += [{"patient": pid, "time": tt, outcome: yy} for tt, yy in zip(t, y, strict=True)]
        injections += [{"patient": pid, "time": tt, "cycle": k + 1} for k, tt in enumerate(tau)]
        for k in range(k_i):
            slow_rows.append({"patient": pid, "cycle": k + 1, "rho": rho_i[k],
                              "cycle_length": lengths[k], "interval": planned[k],
                              "slope": betas[k]})
        overall = float(np.sum(lengths * rho_i) / lengths.sum()) if k_i and lengths.sum() > 0 \
            else np.nan
        pat_rows.append({"patient": pid, "alpha": alpha, "beta_pre": beta0, "u": u,
                         "n_cycles": k_i, "rho": overall, "treated": k_i > 0})

    vis = pd.DataFrame(visits)
    inj = pd.DataFrame(injections, columns=["patient", "time", "cycle"])
    if start_date is not None:
        origin = pd.Timestamp(start_date)
        for frame in (vis, inj):
            days = np.round(frame["time"].to_numpy(float) * DAYS_PER_MONTH)
            frame["time"] = (origin + pd.to_timedelta(days, unit="D")).normalize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = TrialData.from_frames(vis, inj, outcome=outcome)
    slowing = pd.DataFrame(slow_rows, columns=["patient", "cycle", "rho", "cycle_length",
                                               "interval", "slope"])
    observed = set(data.unobserved_cycles())
    slowing["observed"] = [
        (p, int(k)) not in observed for p, k in zip(slowing["patient"], slowing["cycle"],
                                                    strict=True)
    ]
    w = slowing[slowing["observed"]].groupby("cycle")["cycle_length"].sum()
    w = w.reindex(range(1, k_max + 1), fill_value=0.0).to_numpy()
    truth = {
        "rho_k": rho_k,
        "rho_bar": float(np.sum(w * rho_k) / w.sum()) if w.sum() > 0 else float(rho_k.mean()),
        "theta": theta,
        "interval_ref": interval_ref,
        "sd_patient": sd_patient,
        "sd_patient_cycle": sd_patient_cycle,
        "mu_beta": mu_beta,
        "sd_beta": sd_beta,
        "mu_alpha": mu_alpha,
        "sigma": sigma,
        "sd_drift": sd_drift,
        "acceleration": acceleration,
        "slowing": slowing,
        "patients": pd.DataFrame(pat_rows).set_index("patient"),
    }
    return data, truth


def example_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return the bundled example trial's raw tables (visits, injections, patients).

    Returns
    -------
    visits : pandas.DataFrame
        ``patient``, ``date``, ``alsfrs_r`` (points) and ``fvc`` (% predicted; measured at
        about every third visit, missing otherwise).
    injections : pandas.DataFrame
        ``patient``, ``date``, ``cycle``.
    patients : pandas.DataFrame
        ``patient``, ``age`` (years), ``sex``, ``disease_duration`` (months at enrolment).
    """
    root = resources.files("slopeshift") / "data"
    out = []
    for name in ("example_visits.csv", "example_injections.csv", "example_patients.csv"):
        with resources.as_file(root / name) as path:
            out.append(pd.read_csv(path))
    return out[0], out[1], out[2]


def example_trial(outcome: str = "alsfrs_r") -> TrialData:
    """Load the bundled **simulated** example trial.

    It is shaped like the phase II trial NCT04821479 (MSC, ALS): 20 patients, one withdrawn
    before the first injection, 1-4 injections about 3 months apart then about 5 months, run-in
    about 7.8 months, follow-up about 6 months after the last injection. No patient is real.

    Parameters
    ----------
    outcome : {"alsfrs_r", "fvc"}
        ALSFRS-R total (points) or FVC (% predicted; visits without an FVC measurement are
        dropped, and the drop is reported in :attr:`TrialData.dropped`).

    Returns
    -------
    TrialData
    """
    visits, injections, patients = example_frames()
    return TrialData.from_frames(
        visits, injections, patients, outcome=outcome, time_col="date",
        on_missing="drop" if outcome == "fvc" else "raise",
    )
