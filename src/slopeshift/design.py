"""Design of the piecewise-linear ("broken stick") mean, as plain NumPy in an xarray Dataset.

For patient i with injections at tau_i1 < ... < tau_iK (months since the first injection, so
tau_i1 = 0), the mean score at month t is::

    mu_i(t) = alpha_i + beta_i0 * x_pre(t) + sum_k beta_ik * x_k(t) [+ sum_k J_ik * jump_k(t)]
    x_pre(t) = min(t - tau_i1, 0)            run-in exposure (months, <= 0)
    x_k(t)   = clip(t - tau_ik, 0, L_ik)     months spent in cycle k by month t
    jump_k(t) = 1[t >= tau_ik]

L_ik is the cycle length: months from injection k to injection k+1, and for the last cycle to
the patient's last visit (0 when no visit follows the last injection).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from slopeshift.data import TrialData
from slopeshift.floors import floor_cycles, floor_factors

__all__ = ["INTERVALS", "build_design", "design_weights", "evaluable_cells", "given_interval_shift"]

#: One-sided 95% normal quantile: a run-in establishes decline when its least-squares slope
#: plus this many standard errors is still below 0.
DECLINE_Z = 1.645

#: Interval covariates: how g_ik, the months an injection must carry the patient, is defined.
INTERVALS = ("cycle_length", "since_previous")


def build_design(
    data: TrialData,
    *,
    interval: str = "cycle_length",
    covariates: Sequence[str] | None = None,
    planned_interval: float | None = None,
) -> xr.Dataset:
    """Build the design of the piecewise-linear model.

    Parameters
    ----------
    data : TrialData
        Validated trial data.
    interval : str, default "cycle_length"
        The injection-interval covariate g_ik (months): ``"cycle_length"`` (months from
        injection k to injection k+1; NaN for a patient's last, open cycle, whose length is
        follow-up, not an interval, unless ``planned_interval`` is given),
        ``"since_previous"`` (months since the previous injection; cycle 1 has none and gets
        NaN, which the model treats as the reference interval), or the name of a numeric column
        of the injections table (a per-cycle covariate such as dose).
    covariates : sequence of str, optional
        Per-patient covariates (columns of ``data.patients``) to include, raw (not centred).
    planned_interval : float, optional
        The protocol's planned interval (months), given to every open cycle (a last cycle that
        no injection closed) that has no interval of its own. Without it such a cycle informs
        its cycle's mean slowing but not the interval effect theta.

    Returns
    -------
    xarray.Dataset
        Dims ``visit``, ``patient``, ``cycle`` (1..K) and ``covariate``. Variables:

        - ``patient_index`` (visit): position of the visit's patient.
        - ``month`` (visit): months since the patient's first injection.
        - ``y`` (visit): the outcome.
        - ``x_pre`` (visit): run-in exposure min(t - tau_1, 0), months (<= 0).
        - ``x_cycle`` (visit, cycle): months spent in cycle k by the visit, clip(t - tau_k, 0, L_k).
        - ``x_jump`` (visit, cycle): 1 from injection k on, else 0.
        - ``treated`` (patient), ``n_cycles`` (patient).
        - ``has_cycle`` (patient, cycle): the patient received injection k.
        - ``injection_month`` (patient, cycle): tau_ik (NaN where no injection).
        - ``cycle_length`` (patient, cycle): L_ik in months (0 where no injection).
        - ``observed`` (patient, cycle): at least one visit after injection k and no later than
          injection k+1 (cells without one stay out of responder counts).
        - ``interval`` (patient, cycle): the covariate g_ik (NaN where undefined: no injection,
          or an open last cycle without a planned interval).
        - ``arm`` (patient): "treated", "control" or "external" (see :class:`TrialData`).
        - ``effect`` (patient): the patient carries a treatment effect (injected, treated arm);
          controls' and external patients' cycles are natural history only.
        - ``floor`` (patient, cycle): an ALSFRS-R domain sat at its lasting floor (0) during
          the cycle (item-level data only; see :func:`slopeshift.floors.floor_cycles`).
        - ``floor_factor`` (patient, cycle): the share (0-1) of the patient's run-in decline
          that the items still above 0 can carry in cycle k (1 for totals and where no item
          reached 0; see :func:`slopeshift.floors.floor_factors`).
        - ``natural_time`` (patient, cycle): months from the middle of the run-in to the middle
          of cycle k, over which the natural rate of decline changes systematically.
        - ``runin_sxx`` (patient): sum of squared deviations of the run-in visit months from
          their mean (months squared; 0 with fewer than 2 run-in visits): the run-in
          least-squares slope has variance sigma^2 / runin_sxx.
        - ``runin_slope`` (patient): least-squares slope of the run-in visits (points/month;
          NaN with fewer than 2 run-in visits), used as an initial value and for warnings.
        - ``runin_intercept`` (patient): its value at month 0.
        - ``runin_se`` (patient): its standard error (points/month), from the residual SD
          pooled over the run-ins with at least 3 visits (NaN without one).
        - ``decline_established`` (patient): the run-in establishes decline: the run-in slope's
          one-sided 95% upper bound, ``runin_slope + 1.645 runin_se``, is below 0. A slowing
          is a fraction of a decline, so patients without one stay out of responder counts by
          default (``flat_runin="exclude"``; see :func:`evaluable_cells`).
        - ``covariate_values`` (patient, covariate).
    """
    ids = data.patient_ids
    pos = {p: i for i, p in enumerate(ids)}
    n_p = len(ids)
    K = data.n_cycles
    vis = data.visits
    inj = data.injections

    p_idx = vis["patient"].map(pos).to_numpy(dtype=np.int64)
    t = vis["month"].to_numpy(dtype=float)
    y = vis["value"].to_numpy(dtype=float)
    n_v = len(vis)

    tau = np.full((n_p, K), np.nan)
    for pid, k, m in zip(inj["patient"], inj["cycle"], inj["month"], strict=True):
        tau[pos[pid], int(k) - 1] = m
    has = ~np.isnan(tau)
    n_cyc = has.sum(axis=1)

    last_visit = np.full(n_p, -np.inf)
    np.maximum.at(last_visit, p_idx, t)

    # cycle lengths: to the next injection, the last cycle to the last visit (never negative)
    L = np.zeros((n_p, K))
    for i in range(n_p):
        for k in range(n_cyc[i]):
            end = tau[i, k + 1] if k + 1 < n_cyc[i] else max(last_visit[i], tau[i, k])
            L[i, k] = end - tau[i, k]

    x_pre = np.minimum(t, 0.0)  # tau_i1 = 0 by construction; untreated patients: t <= 0
    tau_v = tau[p_idx]  # (visit, cycle)
    L_v = L[p_idx]
    with np.errstate(invalid="ignore"):
        x_cycle = np.where(has[p_idx], np.clip(t[:, None] - np.nan_to_num(tau_v), 0.0, L_v), 0.0)
        x_jump = np.where(has[p_idx], (t[:, None] >= np.nan_to_num(tau_v)).astype(float), 0.0)

    nxt = np.full((n_p, K), np.inf)
    nxt[:, :-1] = np.where(np.isnan(tau[:, 1:]), np.inf, tau[:, 1:])
    start = np.where(has, tau, np.inf)
    in_cycle = (t[:, None] > start[p_idx]) & (t[:, None] <= nxt[p_idx])
    observed = np.zeros((n_p, K), dtype=bool)
    np.logical_or.at(observed, p_idx, in_cycle)

    g = _interval_covariate(data, interval, tau, L, has, pos)
    if planned_interval is not None:
        if not np.isfinite(planned_interval) or planned_interval <= 0:
            raise ValueError(f"planned_interval must be a positive number of months; got "
                             f"{planned_interval!r}.")
        g = np.where(has & np.isnan(g), float(planned_interval), g)

    slope = np.full(n_p, np.nan)
    intercept = np.full(n_p, np.nan)
    sxx = np.zeros(n_p)
    first_visit = np.zeros(n_p)
    np.minimum.at(first_visit, p_idx, t)
    rss, dof = 0.0, 0  # residuals of the run-in lines with >= 3 visits (pooled SD below)
    for i in range(n_p):
        sel = (p_idx == i) & (t <= 0)
        if sel.sum() >= 2 and np.ptp(t[sel]) > 0:
            b, a = np.polyfit(t[sel], y[sel], 1)
            slope[i], intercept[i] = b, a
            sxx[i] = float(((t[sel] - t[sel].mean()) ** 2).sum())
            if sel.sum() >= 3:
                rss += float(((y[sel] - a - b * t[sel]) ** 2).sum())
                dof += int(sel.sum()) - 2
        elif sel.any():
            intercept[i] = y[sel][np.argmax(t[sel])]
    # does the run-in establish decline? the least-squares slope's one-sided 95% upper bound,
    # with the residual SD pooled over every run-in with at least 3 visits
    s_pool = np.sqrt(rss / dof) if dof > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        runin_se = np.where(sxx > 0, s_pool / np.sqrt(sxx), np.nan)
    upper = slope + DECLINE_Z * np.nan_to_num(runin_se)
    established = np.isfinite(slope) & (upper < 0)
    # months from the middle of the run-in to the middle of each cycle (natural acceleration)
    natural_time = np.where(has, np.nan_to_num(tau) + L / 2.0 - first_visit[:, None] / 2.0, 0.0)
    arm = data.patients["arm"].to_numpy(dtype=str) if "arm" in data.patients else np.full(
        n_p, "treated")
    floor = np.zeros((n_p, K), dtype=bool)
    fl = floor_cycles(data)
    for pid, k, hit in zip(fl["patient"], fl["cycle"], fl["affected"], strict=True):
        floor[pos[pid], int(k) - 1] = bool(hit)
    factor = np.ones((n_p, K))
    ff = floor_factors(data)
    for pid, k, f in zip(ff["patient"], ff["cycle"], ff["floor_factor"], strict=True):
        factor[pos[pid], int(k) - 1] = float(f)

    covs = list(covariates or [])
    unknown = [c for c in covs if c not in data.covariates]
    if unknown:
        raise ValueError(
            f"unknown covariate(s) {unknown}; the patients table provides {data.covariates}."
        )
    cov_vals = (
        data.patients[covs].to_numpy(dtype=float) if covs else np.zeros((n_p, 0), dtype=float)
    )

    cycles = np.arange(1, K + 1)
    return xr.Dataset(
        {
            "patient_index": ("visit", p_idx),
            "month": ("visit", t),
            "y": ("visit", y),
            "x_pre": ("visit", x_pre),
            "x_cycle": (("visit", "cycle"), x_cycle),
            "x_jump": (("visit", "cycle"), x_jump),
            "treated": ("patient", n_cyc > 0),
            "n_cycles": ("patient", n_cyc),
            "has_cycle": (("patient", "cycle"), has),
            "injection_month": (("patient", "cycle"), tau),
            "cycle_length": (("patient", "cycle"), L),
            "observed": (("patient", "cycle"), observed),
            "interval": (("patient", "cycle"), g),
            "arm": ("patient", arm),
            "effect": ("patient", (n_cyc > 0) & (arm == "treated")),
            "natural_time": (("patient", "cycle"), natural_time),
            "floor": (("patient", "cycle"), floor),
            "floor_factor": (("patient", "cycle"), factor),
            "runin_sxx": ("patient", sxx),
            "runin_slope": ("patient", slope),
            "runin_intercept": ("patient", intercept),
            "runin_se": ("patient", runin_se),
            "decline_established": ("patient", established),
            "covariate_values": (("patient", "covariate"), cov_vals),
        },
        coords={
            "visit": np.arange(n_v),
            "patient": np.asarray(ids, dtype=str),
            "cycle": cycles,
            "covariate": np.asarray(covs, dtype=str),
        },
        attrs={"interval": interval, "outcome": data.outcome},
    )


def _interval_covariate(data, interval, tau, L, has, pos) -> np.ndarray:
    if interval == "cycle_length":
        # only a next injection closes an interval: the open last cycle's length is follow-up
        closed = np.zeros_like(has)
        closed[:, :-1] = has[:, 1:]
        return np.where(closed, L, np.nan)
    if interval == "since_previous":
        g = np.full_like(tau, np.nan)
        g[:, 1:] = tau[:, 1:] - tau[:, :-1]
        return np.where(has, g, np.nan)
    inj = data.injections
    if interval not in inj.columns:
        raise ValueError(
            f"interval must be one of {INTERVALS} or a column of the injections table; "
            f"{interval!r} is neither (columns: {list(inj.columns)})."
        )
    vals = pd.to_numeric(inj[interval], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(vals)):
        bad = inj.loc[~np.isfinite(vals), ["patient", "cycle"]]
        cells = ", ".join(f"{p} cycle {k}" for p, k in bad.itertuples(index=False))
        raise ValueError(
            f"injections column {interval!r} is missing, not a number or not finite for {cells}."
        )
    g = np.full_like(tau, np.nan)
    for pid, k, v in zip(inj["patient"], inj["cycle"], vals, strict=True):
        g[pos[pid], int(k) - 1] = v
    return g


def evaluable_cells(design: xr.Dataset, *, flat_runin: bool = False) -> xr.DataArray:
    """Patient x cycle cells that count for slowing: observed, treated arm, not at a floor,
    after a run-in that established decline.

    A cell counts when the patient had a visit during the cycle, carries a treatment effect
    (injected, in the treated arm), unless the model kept floors (``floors="include"``) no
    ALSFRS-R domain sat at its lasting floor during the cycle, and unless the model kept them
    (``flat_runin="include"``) the patient's run-in established decline (``decline_established``:
    a slowing is a fraction of a decline the data must show). Responder counts, the patients'
    overall slowing and the weights of the population slowing use these cells only.

    Parameters
    ----------
    design : xarray.Dataset
        From :func:`build_design` (with the model's ``floors`` and ``flat_runin`` in attrs).
    flat_runin : bool, default False
        Count the cells of patients whose run-in did not establish decline whatever the model's
        setting (their slope change in points/month is still reported).

    Returns
    -------
    xarray.DataArray
        Boolean, (patient, cycle).
    """
    eff = design["effect"] if "effect" in design else design["treated"]
    out = design["observed"] & eff
    if "floor" in design and design.attrs.get("floors", "exclude") == "exclude":
        out = out & ~design["floor"]
    if (not flat_runin and "decline_established" in design
            and design.attrs.get("flat_runin", "exclude") == "exclude"):
        out = out & design["decline_established"]
    return out


def design_weights(design: xr.Dataset) -> xr.DataArray:
    """Patient-months observed in each cycle (the weights of rho_bar), normalised to sum to 1.

    Only patients who carry a treatment effect (the treated arm) count.
    """
    w = (design["cycle_length"] * evaluable_cells(design)).sum("patient")
    if float(w.sum()) <= 0:
        eff = design["effect"] if "effect" in design else design["treated"]
        w = (design["has_cycle"] * eff).sum("patient").astype(float)
    return w / w.sum()


def given_interval_shift(design: xr.Dataset, interval_ref: float) -> xr.DataArray:
    """Mean of g_ik - g_ref over each cycle's cells with an effect and a known interval (months).

    The model's cycle means are sampled at these intervals (the cycle's own mean interval), so
    rho_k + theta * shift_k is the population slowing of cycle k at the intervals the patients
    actually had. NaN for a cycle without such a cell (an open last cycle): it stays at g_ref.
    """
    eff = design["effect"] if "effect" in design else design["treated"]
    g = design["interval"]
    known = design["has_cycle"] & np.isfinite(g) & eff
    total = (g - interval_ref).where(known, 0.0).sum("patient")
    n = known.sum("patient")
    return total / n.where(n > 0)
