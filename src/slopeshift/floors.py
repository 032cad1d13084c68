"""Floor effects of ALSFRS-R given as items: domains (or items) that reached 0 and stayed there.

A domain at 0 cannot decline further, so the total flattens with no treatment at all and the
model would read that as slowing. These functions find such lasting floors and the cycles they
overlap. Times are months since the patient's first injection (``TrialData.visits["month"]``).

Only ALSFRS-R given as the 12 items (items and domain subscores in ``data.visits``) is
examined. For a total-only outcome every function returns an empty table (and
:func:`floor_factors` a factor of 1): a total cannot show which domain is at its floor, and a
total of 0 is already handled by censoring at the scale's bounds.

Two uses: :func:`floor_cycles` marks cycles in which a whole domain sat at its lasting floor
(kept out of responder counts by default), and :func:`floor_factors` measures how much of a
patient's run-in decline the items that have since reached 0 carried, so that the model's
natural rate in each cycle is scaled down by it (``floors="exclude"`` and ``"adjust"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slopeshift.data import ALSFRS_DOMAINS, ALSFRS_ITEMS, TrialData

__all__ = ["domain_floor_factors", "floor_cycles", "floor_factors", "floor_patients", "floor_table",
           "has_items"]

_LEVELS = {"domain": tuple(ALSFRS_DOMAINS), "item": ALSFRS_ITEMS}
_CYCLE_COLS = ["patient", "cycle", "start_month", "end_month", "any_floor", "floored_domains",
               "floor_share", "affected"]
_PATIENT_COLS = ["patient", "floored_domains", "first_floor_month", "any_floor_in_runin",
                 "any_floor_in_followup"]


def has_items(data: TrialData) -> bool:
    """Whether ``data`` is ALSFRS-R given as items, i.e. ``data.visits`` holds domain subscores.

    Parameters
    ----------
    data : TrialData
        Validated trial data.

    Returns
    -------
    bool
        True for ALSFRS-R built from the 12 items; False for totals or other outcomes.
    """
    return data.outcome == "alsfrs_r" and all(d in data.visits.columns for d in ALSFRS_DOMAINS)


def floor_table(data: TrialData, *, level: str = "domain") -> pd.DataFrame:
    """Lasting floors: domains (or items) at 0 from some visit to the end of follow-up.

    A floor is the final run of visits at 0 that reaches the patient's last visit; a 0 followed
    by any rise is not a floor.

    Parameters
    ----------
    data : TrialData
        Validated trial data.
    level : {"domain", "item"}, default "domain"
        ``"domain"``: the four subscores (0-12 points). ``"item"``: the 12 items (0-4 points);
        needs the item columns ``q1..q9, r1..r3`` in ``data.visits``.

    Returns
    -------
    pandas.DataFrame
        One row per floor, sorted by patient then questionnaire order: ``patient``, ``domain``
        (``item`` with level="item"), ``floor_month`` (months since the first injection of the
        first visit of the final run of zeros; <= 0 for a floor reached in the run-in) and
        ``points_lost_capacity`` (points: the run-in maximum of the domain, i.e. the most the
        total could have lost from it, which it can no longer lose; the first visit's value
        when the patient has no run-in visit). Empty, with these columns, for data that are not
        ALSFRS-R items.

    Raises
    ------
    ValueError
        For an unknown ``level``, or level="item" on item data whose visits do not keep items.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be 'domain' or 'item', not {level!r}.")
    cols = list(_LEVELS[level])
    out_cols = ["patient", level, "floor_month", "points_lost_capacity"]
    if not has_items(data):
        return pd.DataFrame(columns=out_cols)
    missing = [c for c in cols if c not in data.visits.columns]
    if missing:
        raise ValueError(
            f"item-level floors need the item columns {missing} in data.visits; TrialData keeps "
            "only the domain subscores. Use level='domain'."
        )
    rows = []
    for pid, vis in data.visits.sort_values(["patient", "month"]).groupby("patient", sort=True):
        month = vis["month"].to_numpy(dtype=float)
        runin = (month <= 0) if (month <= 0).any() else (np.arange(len(month)) == 0)
        for col in cols:
            val = vis[col].to_numpy(dtype=float)
            if val[-1] != 0:
                continue
            nonzero = np.flatnonzero(val != 0)
            start = nonzero[-1] + 1 if len(nonzero) else 0
            rows.append((pid, col, month[start], float(np.max(val[runin]))))
    return pd.DataFrame(rows, columns=out_cols).astype(
        {"floor_month": float, "points_lost_capacity": float}
    )


def _cycle_bounds(data: TrialData) -> pd.DataFrame:
    """Start and end (months) of each cycle received, as in ``design.cycle_length``."""
    inj = data.injections[["patient", "cycle", "month"]].rename(columns={"month": "start_month"})
    inj = inj.sort_values(["patient", "cycle"]).reset_index(drop=True)
    last = inj["patient"].map(data.visits.groupby("patient")["month"].max())
    nxt = inj.groupby("patient")["start_month"].shift(-1)
    inj["end_month"] = nxt.fillna(np.maximum(last, inj["start_month"])).astype(float)
    inj["cycle"] = inj["cycle"].astype(int)
    return inj


def floor_cycles(data: TrialData, *, share: float = 0.0) -> pd.DataFrame:
    """Cycles during which a domain was at its lasting floor.

    Cycle k spans [injection month k, injection month k+1); the last cycle runs to the last visit
    (as ``cycle_length`` in :func:`slopeshift.design.build_design`). A domain floored at month f
    covers the share clip((end - f) / (end - start), 0, 1) of the cycle (for a cycle of length 0:
    1 when f < end, else 0).

    Parameters
    ----------
    data : TrialData
        Validated trial data.
    share : float, default 0.0
        A cycle is ``affected`` when some domain covers more than this share of its months
        (0 <= share < 1; 0: any overlap, i.e. floor_month < cycle end).

    Returns
    -------
    pandas.DataFrame
        One row per (patient, cycle) received, sorted: ``patient``, ``cycle``, ``start_month``,
        ``end_month`` (months), ``any_floor`` (some domain at its floor before the cycle ends),
        ``floored_domains`` (list of those domains), ``floor_share`` (largest share covered,
        0-1), ``affected`` (bool). Empty, with these columns, for data that are not ALSFRS-R
        items.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), not {share!r}.")
    if not has_items(data) or data.injections.empty:
        return pd.DataFrame(columns=_CYCLE_COLS)
    cyc = _cycle_bounds(data)
    floors = floor_table(data)
    rows = []
    for pid, k, start, end in cyc[["patient", "cycle", "start_month", "end_month"]].itertuples(
        index=False
    ):
        fl = floors[(floors["patient"] == pid) & (floors["floor_month"] < end)]
        if end > start:
            shares = np.clip((end - fl["floor_month"].to_numpy()) / (end - start), 0.0, 1.0)
        else:
            shares = np.ones(len(fl))
        top = float(shares.max()) if len(fl) else 0.0
        rows.append((pid, k, start, end, bool(len(fl)), fl["domain"].tolist(), top,
                     bool(len(fl)) and top > share))
    return pd.DataFrame(rows, columns=_CYCLE_COLS)


def floor_patients(data: TrialData) -> pd.DataFrame:
    """Per-patient summary of lasting domain floors.

    Parameters
    ----------
    data : TrialData
        Validated trial data.

    Returns
    -------
    pandas.DataFrame
        One row per patient (all patients, sorted): ``patient``, ``floored_domains`` (list),
        ``first_floor_month`` (months since the first injection of the earliest floor; NaN
        without one), ``any_floor_in_runin`` (a floor reached at or before month 0) and
        ``any_floor_in_followup`` (a floor reached after month 0). A floor reached in the
        run-in lasts through follow-up too. Empty, with these columns, for data that are not
        ALSFRS-R items.
    """
    if not has_items(data):
        return pd.DataFrame(columns=_PATIENT_COLS)
    floors = floor_table(data)
    rows = []
    for pid in data.patient_ids:
        fl = floors[floors["patient"] == pid]
        fm = fl["floor_month"]
        rows.append((pid, fl["domain"].tolist(), float(fm.min()) if len(fl) else np.nan,
                     bool((fm <= 0).any()), bool((fm > 0).any())))
    return pd.DataFrame(rows, columns=_PATIENT_COLS)


#: Decline (points/month) credited to an item that did not decline during the run-in, so that a
#: still-moving item that was stable then keeps a little weight.
_ITEM_MIN_RATE = 0.02
_FACTOR_COLS = ["patient", "cycle", "active_runin", "active_cycle", "floor_factor"]


def floor_factors(data: TrialData) -> pd.DataFrame:
    """How much of each patient's run-in decline can still happen in each cycle.

    The ALSFRS-R total falls as the sum of its items, and an item at 0 can fall no further: once
    the items that carried a patient's run-in decline reach 0, the total slows with no treatment
    at all. For each patient, item j gets the weight w_j = max(-b_j, 0) + 0.02, with b_j the
    least-squares slope of the item over the run-in visits (points/month; the 0.02 keeps a little
    weight on items that were stable then). At each visit the *active share* is
    A = sum_j w_j 1[item j > 0] / sum_j w_j. The factor of cycle k is
    min(mean A over the cycle's visits / mean A over the run-in visits, 1): the share of the run-in
    decline that the items still above 0 can carry. The model multiplies the natural rate of the
    cycle by it, so that a total flattening because items reached 0 is natural, not slowing.

    A cycle without visits takes the active share of the patient's last visit before it (floors
    last). Patients with fewer than 2 run-in visits, or whose every item was at 0 through the
    run-in, get a factor of 1 (nothing to weigh the items by), as do outcomes other than
    ALSFRS-R given as items. When the visits keep only domain subscores, the four domains play
    the items' part.

    Parameters
    ----------
    data : TrialData
        Validated trial data.

    Returns
    -------
    pandas.DataFrame
        One row per (patient, cycle) received, sorted: ``patient``, ``cycle``, ``active_runin``
        and ``active_cycle`` (mean active share of the run-in's and of the cycle's visits, 0-1)
        and ``floor_factor`` (0-1; 1 = no floor reached since the run-in). Empty, with these
        columns, for data that are not ALSFRS-R items.
    """
    if not has_items(data) or data.injections.empty:
        return pd.DataFrame(columns=_FACTOR_COLS)
    units = list(ALSFRS_ITEMS) if all(c in data.visits.columns for c in ALSFRS_ITEMS) else list(
        ALSFRS_DOMAINS)
    rows = _factor_rows(data, units, items=units[0] == ALSFRS_ITEMS[0])
    return pd.DataFrame(rows, columns=_FACTOR_COLS).astype(
        {"active_runin": float, "active_cycle": float, "floor_factor": float})


def domain_floor_factors(data: TrialData) -> pd.DataFrame:
    """:func:`floor_factors` within each ALSFRS-R domain: how much of the domain's run-in
    decline its items still above 0 can carry in each cycle.

    The four-domain model (``SlopeShiftModel(domains=True)``) censors a domain at 0, but a
    domain also slows before it reaches 0, as its items reach 0 one by one (an item at 0 can
    fall no further). Within domain d the items are weighed by their run-in decline as in
    :func:`floor_factors`, and the domain's share of the patient's decline in cycle k is
    multiplied by the factor. When the visits keep only the domain subscores, each domain is
    its own single unit (factor 0 once it sits at 0).

    Parameters
    ----------
    data : TrialData
        Validated trial data.

    Returns
    -------
    pandas.DataFrame
        One row per (patient, cycle, domain): ``patient``, ``cycle``, ``domain``,
        ``active_runin``, ``active_cycle`` and ``floor_factor`` (0-1), as in
        :func:`floor_factors`. Empty, with these columns, for data that are not ALSFRS-R items.
    """
    cols = ["patient", "cycle", "domain", *_FACTOR_COLS[2:]]
    if not has_items(data) or data.injections.empty:
        return pd.DataFrame(columns=cols)
    items = all(c in data.visits.columns for c in ALSFRS_ITEMS)
    out = []
    for dom, pos in ALSFRS_DOMAINS.items():
        units = [ALSFRS_ITEMS[j] for j in pos] if items else [dom]
        out += [(p, k, dom, *rest) for p, k, *rest in _factor_rows(data, units, items)]
    frame = pd.DataFrame(out, columns=cols).astype(
        {"active_runin": float, "active_cycle": float, "floor_factor": float})
    order = {d: i for i, d in enumerate(ALSFRS_DOMAINS)}
    return frame.sort_values(["patient", "cycle", "domain"],
                             key=lambda c: c.map(order) if c.name == "domain" else c,
                             ignore_index=True)


def _factor_rows(data: TrialData, units: list[str], items: bool) -> list[tuple]:
    """(patient, cycle, active_runin, active_cycle, floor_factor) over the score ``units``
    (items, or domain subscores when ``items`` is False); see :func:`floor_factors`."""
    min_rate = _ITEM_MIN_RATE * (1.0 if items else 3.0)
    cyc = _cycle_bounds(data)
    vis = data.visits.sort_values(["patient", "month"])
    rows = []
    for pid, v in vis.groupby("patient", sort=True):
        mine = cyc[cyc["patient"] == pid]
        if mine.empty:
            continue
        month = v["month"].to_numpy(dtype=float)
        score = v[units].to_numpy(dtype=float)
        run = month <= 0
        active = score > 0
        share_runin = np.nan
        if run.sum() >= 2 and np.ptp(month[run]) > 0:
            t = month[run] - month[run].mean()
            slope = (t[:, None] * score[run]).sum(axis=0) / (t**2).sum()
            w = np.maximum(-slope, 0.0) + min_rate
            share = active @ w / w.sum()
            share_runin = float(share[run].mean())
        for k, start, end in mine[["cycle", "start_month", "end_month"]].itertuples(index=False):
            if not np.isfinite(share_runin) or share_runin <= 0:
                rows.append((pid, int(k), share_runin, np.nan, 1.0))
                continue
            inside = (month >= start) & (month <= end)
            if inside.any():
                share_k = float(share[inside].mean())
            else:
                before = month < start
                share_k = float(share[before][-1]) if before.any() else share_runin
            rows.append((pid, int(k), share_runin, share_k, min(share_k / share_runin, 1.0)))
    return rows
