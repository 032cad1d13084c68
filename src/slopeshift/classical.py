"""The classical analysis: per-patient least-squares slopes and percent reduction of decline.

This is the analysis ALS cell-therapy trials usually publish, computed on the same
:class:`~slopeshift.data.TrialData` so that it can sit beside the Bayesian results. Each patient's
rate of decline (points/month) is the ordinary least-squares slope of the visits of a segment:

- **run-in**: visits at month <= 0 (months since the first injection);
- **cycle k**: visits with tau_k <= month <= tau_{k+1}, tau_k being the month of injection k and
  tau_{k+1} that of the next injection (the last cycle runs to the patient's last visit). A visit
  on the day of an injection (month = tau_k) therefore belongs to both segments it separates: it
  ends cycle k - 1 (or the run-in) and starts cycle k, as in the usual "baseline anchors both
  slopes" convention;
- **overall**: every visit at month >= 0, i.e. from the first injection on.

The percent reduction of decline is ``reduction = 1 - slope_post / slope_pre`` (a fraction:
0.25 = 25% slower decline, 1 = decline halted, negative = faster decline), defined only when the
run-in slope is negative. A patient is a classical responder when the reduction exceeds the
threshold (0.25 by default). The rule ignores measurement noise, natural drift of ALS progression
and regression to the mean: see :data:`CLASSICAL_CAVEAT`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from slopeshift.data import TrialData

__all__ = [
    "CLASSICAL_CAVEAT",
    "COMPARISON_ARMS",
    "FOLLOWUP_NOTE",
    "ClassicalResult",
    "classical_analysis",
    "classical_slopes",
    "followed_for_less",
    "followup_summary",
    "followup_table",
    "side_by_side",
]

#: Spellings of ``data.patients["arm"]`` (case-insensitive) of the comparison arms: a concurrent
#: control arm (sham injections) and an external untreated reference cohort. Any other value (or
#: no ``arm`` column) is the treated arm.
COMPARISON_ARMS: dict[str, str] = {
    "control": "control", "placebo": "control", "sham": "control",
    "external": "external", "reference": "external", "natural history": "external",
}
#: The comparison arms, in report order.
_ARMS = ("control", "external")

#: Why the classical responder call is not a measure of treatment effect.
CLASSICAL_CAVEAT = (
    "The classical rule (responder: least-squares slope after the first injection more than 25% "
    "slower than the run-in slope) ignores measurement noise in the scores, the natural drift "
    "(deceleration) of ALS progression and regression to the mean: untreated ALS patients meet "
    "the > 25% rule about 38% of the time, and 50% of fast decliners do."
)

_SIDE_NOTE = (
    CLASSICAL_CAVEAT + " The Bayesian call counts a patient as a responder when the posterior "
    "probability that the slowing exceeds the threshold is at least {prob:g}."
)


def _ls_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on t (NaN when t has no spread)."""
    tc = t - t.mean()
    ss = float(tc @ tc)
    if ss <= 0.0:
        return np.nan
    return float(tc @ (y - y.mean()) / ss)


def _group(data: TrialData) -> pd.Series:
    """Each patient's group: "treated", "untreated" (treated arm, never injected), "control" or
    "external" (from ``data.patients["arm"]``; all in the treated arm without that column)."""
    pat = data.patients
    arm = pat.get("arm")
    if arm is None:
        arm = pd.Series("treated", index=pat.index)
    arm = arm.map(lambda a: COMPARISON_ARMS.get(str(a).strip().lower(), "treated")
                  if pd.notna(a) else "treated")
    treated = pat["treated"].astype(bool).to_numpy()
    out = np.where(arm != "treated", arm, np.where(treated, "treated", "untreated"))
    return pd.Series(out, index=pat.index, name="group")


_RISING = "run-in slope >= 0 (no decline to slow): reduction undefined"


def _segment(t: np.ndarray, y: np.ndarray, sel: np.ndarray, min_visits: int,
             what: str) -> tuple[int, float, str]:
    """Visits, LS slope (points/month) and the reason it is NaN ("" when defined)."""
    n = int(sel.sum())
    if n < min_visits:
        return n, np.nan, f"fewer than {min_visits} visits {what}"
    slope = _ls_slope(t[sel], y[sel])
    if np.isnan(slope):
        return n, np.nan, f"all visits {what} at the same month"
    return n, slope, ""


def _reduction(slope: float, note: str, pre: float, pre_note: str) -> tuple[float, str]:
    """1 - slope / pre and the reason it is NaN ("" when defined)."""
    if note:
        return np.nan, note
    if np.isnan(pre):
        return np.nan, f"no run-in slope ({pre_note})"
    if pre >= 0:
        return np.nan, _RISING
    return 1.0 - slope / pre, ""


def _patient_segments(pid: str, t: np.ndarray, y: np.ndarray, taus: np.ndarray,
                      min_visits: int) -> list[dict]:
    """Rows of :func:`classical_slopes` for one patient (t in months, taus sorted)."""
    n_pre, pre, pre_note = _segment(t, y, t <= 0, min_visits, "in the run-in")
    if pre_note == "" and pre >= 0:
        pre_note = _RISING
    rows = [{"patient": pid, "segment": "run-in", "n_visits": n_pre, "slope": pre,
             "reduction": np.nan, "note": pre_note}]
    for k, tau in enumerate(taus, start=1):
        end = taus[k] if k < len(taus) else np.inf
        n, slope, note = _segment(t, y, (t >= tau) & (t <= end), min_visits, f"in cycle {k}")
        red, note = _reduction(slope, note, pre, pre_note)
        rows.append({"patient": pid, "segment": f"cycle {k}", "n_visits": n, "slope": slope,
                     "reduction": red, "note": note})
    if len(taus):
        n, slope, note = _segment(t, y, t >= 0, min_visits, "after the first injection")
        red, note = _reduction(slope, note, pre, pre_note)
    else:
        n, slope, red, note = 0, np.nan, np.nan, "never injected"
    rows.append({"patient": pid, "segment": "overall", "n_visits": n, "slope": slope,
                 "reduction": red, "note": note})
    return rows


def classical_slopes(
    data: TrialData, *, min_visits: int = 2, threshold: float = 0.25
) -> pd.DataFrame:
    """Per-patient least-squares slopes of the run-in, of each cycle and after the first injection.

    Segments (months since the patient's first injection): ``"run-in"`` uses the visits at
    month <= 0; ``"cycle k"`` the visits with tau_k <= month <= tau_{k+1} (tau_k the month of
    injection k; the last cycle runs to the last visit), so a visit on an injection day counts in
    both segments it separates, and cycle k includes its start visit if there is one;
    ``"overall"`` all visits at month >= 0 (from the first injection on).

    Parameters
    ----------
    data : TrialData
        Validated trial data.
    min_visits : int, default 2
        Fewest visits (at distinct months) a segment needs for a slope.
    threshold : float, default 0.25
        Responder threshold on the reduction (a fraction: 0.25 = 25% slower decline).

    Returns
    -------
    pandas.DataFrame
        One row per patient and segment (run-in, each cycle received, overall; never-injected
        patients have only run-in and overall rows): ``patient``, ``segment``, ``n_visits``
        (visits in the segment), ``slope`` (least-squares slope, points/month; NaN with fewer
        than ``min_visits`` visits), ``reduction`` (1 - slope / run-in slope, a fraction; NaN
        for the run-in row and where undefined), ``responder`` (reduction > threshold; NA
        where the reduction is NaN) and ``note`` (why a value is NaN, else empty). The
        reduction is undefined when either slope is missing or when the run-in slope is >= 0
        (no decline to slow). ``attrs["note"]`` holds :data:`CLASSICAL_CAVEAT`.
    """
    if int(min_visits) < 2:
        raise ValueError(f"min_visits must be at least 2 (a slope needs two visits), "
                         f"not {min_visits}.")
    min_visits = int(min_visits)
    threshold = float(threshold)
    vis = data.visits
    inj = data.injections
    rows = []
    for pid in data.patient_ids:
        pv = vis[vis["patient"] == pid]
        taus = np.sort(inj.loc[inj["patient"] == pid, "month"].to_numpy(dtype=float))
        rows += _patient_segments(pid, pv["month"].to_numpy(dtype=float),
                                  pv["value"].to_numpy(dtype=float), taus, min_visits)
    out = pd.DataFrame(rows, columns=["patient", "segment", "n_visits", "slope", "reduction",
                                      "note"])
    out["n_visits"] = out["n_visits"].astype(int)
    red = out["reduction"]
    out.insert(5, "responder", pd.array(np.where(red.notna(), red > threshold, pd.NA),
                                        dtype="boolean"))
    out.attrs["note"] = CLASSICAL_CAVEAT
    return out


@dataclass
class ClassicalResult:
    """The classical per-patient analysis of a trial (see :func:`classical_analysis`).

    Attributes
    ----------
    threshold : float
        Responder threshold on the reduction (fraction; 0.25 = 25% slower decline).
    min_visits : int
        Fewest visits a segment needs for a slope.
    slopes : pandas.DataFrame
        :func:`classical_slopes`: per patient and segment.
    patients : pandas.DataFrame
        One row per patient: ``patient``, ``group`` ("treated"; "untreated": treated arm but
        never injected; "control" or "external": a comparison arm), ``n_pre``, ``pre_slope``,
        ``n_post``, ``post_slope`` (points/month; post = all visits from the first injection
        on), ``change`` (post - pre, points/month; positive = slower decline), ``reduction``
        (fraction), ``responder`` and ``note``.
    responders : pandas.DataFrame
        Responder counts per group (treated, then control and external if any) and scope
        ("cycle 1", ..., "overall"): ``group``, ``scope``, ``responders``, ``n_evaluable``
        (patients with a defined reduction) and ``label`` ("15/19").
    wilcoxon : dict
        Wilcoxon signed-rank test (two-sided) of post vs pre slopes over treated patients with
        both slopes: ``statistic``, ``p_value``, ``n`` and ``median_difference`` (median of
        post - pre, points/month). NaN when fewer than 1 patient.
    mean_improvement_pct : float
        Mean over treated patients with a defined reduction of 100 x reduction (%), the
        "mean percent improvement" papers report.
    improvement_of_means_pct : float
        100 x (1 - mean post slope / mean pre slope) over the same patients (%).
    comparisons : dict of str to dict
        Per comparison arm present ("control", "external"): the Mann-Whitney U test
        (two-sided) of the slope change (post - pre, points/month) between treated patients
        and that arm's patients with both slopes: ``statistic``, ``p_value``, ``n_treated``,
        ``n_control`` (patients of the comparison arm), ``median_change_treated``,
        ``median_change_control``. Empty without an ``arm`` column or comparison arm.
    note : str
        :data:`CLASSICAL_CAVEAT`.
    """

    threshold: float
    min_visits: int
    slopes: pd.DataFrame
    patients: pd.DataFrame
    responders: pd.DataFrame
    wilcoxon: dict
    mean_improvement_pct: float
    improvement_of_means_pct: float
    comparisons: dict = field(default_factory=dict)
    note: str = field(default=CLASSICAL_CAVEAT)

    def summary(self) -> str:
        """One plain-English paragraph: responders, the Wilcoxon test and the arm comparison.

        Returns
        -------
        str
        """
        pct = f"{100 * self.threshold:g}%"
        w = self.wilcoxon
        r = self.responders
        overall = r[(r["group"] == "treated") & (r["scope"] == "overall")]
        s = []
        if len(overall):
            s.append(f"By the classical rule (least-squares decline from the first injection on "
                     f"more than {pct} slower than in the run-in), {overall['label'].iloc[0]} "
                     "evaluable treated patients were responders.")
        if w["n"] > 0:
            s.append(f"The median change of slope (post - pre) was "
                     f"{w['median_difference']:+.2f} points/month over {w['n']} treated patients"
                     f" (Wilcoxon signed-rank W = {w['statistic']:g}, two-sided "
                     f"p = {w['p_value']:.3g}); mean improvement "
                     f"{self.mean_improvement_pct:.1f}%.")
        for arm, c in self.comparisons.items():
            if c["n_treated"] > 0 and c["n_control"] > 0:
                s.append(f"Compared with the {arm} arm, the change of slope (median "
                         f"{c['median_change_treated']:+.2f} vs {c['median_change_control']:+.2f}"
                         f" points/month) gave Mann-Whitney U = {c['statistic']:g}, two-sided "
                         f"p = {c['p_value']:.3g} ({c['n_treated']} treated, {c['n_control']} "
                         f"{arm} patients).")
        return " ".join(s)


def _patient_rows(slopes: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    pre = slopes[slopes["segment"] == "run-in"].set_index("patient")
    post = slopes[slopes["segment"] == "overall"].set_index("patient")
    out = pd.DataFrame({
        "patient": pre.index,
        "group": group.reindex(pre.index).to_numpy(),
        "n_pre": pre["n_visits"].to_numpy(),
        "pre_slope": pre["slope"].to_numpy(),
        "n_post": post["n_visits"].reindex(pre.index).to_numpy(),
        "post_slope": post["slope"].reindex(pre.index).to_numpy(),
    })
    out["change"] = out["post_slope"] - out["pre_slope"]
    out["reduction"] = post["reduction"].reindex(pre.index).to_numpy()
    out["responder"] = post["responder"].reindex(pre.index).to_numpy()
    out["note"] = post["note"].reindex(pre.index).to_numpy()
    return out.reset_index(drop=True)


def _responder_counts(slopes: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    g = slopes["patient"].map(group)
    rows = []
    for name in ("treated", *_ARMS):
        sub = slopes[(g == name) & (slopes["segment"] != "run-in")]
        if not len(sub):
            continue
        scopes = sorted({s for s in sub["segment"] if s != "overall"},
                        key=lambda s: int(s.split()[1])) + ["overall"]
        for scope in scopes:
            cell = sub[sub["segment"] == scope]
            ok = cell["reduction"].notna()
            n = int(ok.sum())
            k = int(cell.loc[ok, "responder"].astype(bool).sum())
            rows.append({"group": name, "scope": scope, "responders": k, "n_evaluable": n,
                         "label": f"{k}/{n}"})
    return pd.DataFrame(rows, columns=["group", "scope", "responders", "n_evaluable", "label"])


def _wilcoxon(pre: np.ndarray, post: np.ndarray) -> dict:
    n = len(pre)
    if n == 0:
        return {"statistic": np.nan, "p_value": np.nan, "n": 0, "median_difference": np.nan}
    diff = post - pre
    if np.all(diff == 0):  # scipy cannot rank all-zero differences
        stat, p = 0.0, 1.0
    else:
        res = stats.wilcoxon(post, pre, alternative="two-sided")
        stat, p = float(res.statistic), float(res.pvalue)
    return {"statistic": stat, "p_value": p, "n": n, "median_difference": float(np.median(diff))}


def _mann_whitney(change_t: np.ndarray, change_c: np.ndarray) -> dict:
    out = {"statistic": np.nan, "p_value": np.nan, "n_treated": len(change_t),
           "n_control": len(change_c),
           "median_change_treated": float(np.median(change_t)) if len(change_t) else np.nan,
           "median_change_control": float(np.median(change_c)) if len(change_c) else np.nan}
    if len(change_t) and len(change_c):
        res = stats.mannwhitneyu(change_t, change_c, alternative="two-sided")
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def classical_analysis(
    data: TrialData, *, threshold: float = 0.25, min_visits: int = 2
) -> ClassicalResult:
    """The classical per-patient analysis: LS slopes, percent reduction, responders, tests.

    Parameters
    ----------
    data : TrialData
        Validated trial data. When ``data.patients`` has an ``arm`` column, patients whose arm
        is one of :data:`COMPARISON_ARMS` form the control (sham injections) or external
        (untreated reference) group; without it every patient is in the treated arm.
    threshold : float, default 0.25
        Responder threshold on the reduction of the rate of decline (fraction; 0.25 = 25%
        slower).
    min_visits : int, default 2
        Fewest visits a segment needs for a least-squares slope.

    Returns
    -------
    ClassicalResult
        Slopes (points/month) per patient and segment, the per-patient table, responder counts
        per cycle and overall ("15/19"), the Wilcoxon signed-rank test of pre vs post slopes
        over treated patients with both slopes, the mean percent improvement, and per
        comparison arm the Mann-Whitney U test of the slope change between arms. Never-injected
        patients of the treated arm ("untreated") and comparison-arm patients stay out of the
        treated-arm counts and the Wilcoxon test.
    """
    slopes = classical_slopes(data, min_visits=min_visits, threshold=threshold)
    group = _group(data)
    pts = _patient_rows(slopes, group)
    both = pts["pre_slope"].notna() & pts["post_slope"].notna()
    tr = pts[(pts["group"] == "treated") & both]
    wil = _wilcoxon(tr["pre_slope"].to_numpy(float), tr["post_slope"].to_numpy(float))
    defined = pts[(pts["group"] == "treated") & pts["reduction"].notna()]
    if len(defined):
        mean_pct = 100 * float(defined["reduction"].mean())
        of_means = 100 * (1 - defined["post_slope"].mean() / defined["pre_slope"].mean())
    else:
        mean_pct = of_means = np.nan
    comparisons = {}
    for arm in _ARMS:
        if (group == arm).any():
            other = pts[(pts["group"] == arm) & both]
            comparisons[arm] = _mann_whitney(tr["change"].to_numpy(float),
                                             other["change"].to_numpy(float))
    pts.attrs["note"] = CLASSICAL_CAVEAT
    counts = _responder_counts(slopes, group)
    counts.attrs["note"] = CLASSICAL_CAVEAT
    return ClassicalResult(
        threshold=float(threshold), min_visits=int(min_visits), slopes=slopes, patients=pts,
        responders=counts, wilcoxon=wil, mean_improvement_pct=mean_pct,
        improvement_of_means_pct=float(of_means), comparisons=comparisons,
    )


#: What the follow-up table can and cannot show.
FOLLOWUP_NOTE = (
    "Follow-up: months from the first injection to the last visit; \"for less\": under 80% of "
    "the arm's longest (its 90th percentile), whether the patient left or the protocol "
    "followed them for less. Slopes are least-squares "
    "means (per month) over the patients with one (those who left right after the "
    "injection have none). If those followed for less declined faster after the first injection "
    "than their run-in predicts, dropout followed the decline: the patients left in later "
    "cycles are the slower ones, and without a control arm that looks like slowing (the model "
    "treats missing visits as missing at random)."
)

#: Followed "for less" when under this share of the arm's longest follow-up
#: (its 90th percentile, so that one long straggler does not set it).
_EARLY = 0.8


def followed_for_less(data: TrialData) -> pd.DataFrame:
    """Each injected patient's follow-up and whether it was cut short, by arm.

    Parameters
    ----------
    data : TrialData
        Validated trial data.

    Returns
    -------
    pandas.DataFrame
        Indexed by patient, the injected patients of the treated and control arms (never
        injected and external patients are left out): ``group``, ``followup`` (months from
        the first injection to the last visit) and ``for_less`` (followed for less than 80%
        of the 90th percentile of the arm's follow-up).
    """
    group = _group(data)
    injected = data.injections["patient"].unique()
    group = group[group.index.isin(injected) & group.isin(["treated", "control"])]
    last = data.visits.groupby("patient")["month"].max()
    followup = last.reindex(group.index).clip(lower=0.0).astype(float)
    limit = followup.groupby(group).transform(lambda f: _EARLY * float(np.percentile(f, 90)))
    return pd.DataFrame({"group": group, "followup": followup, "for_less": followup < limit})


def followup_table(data: TrialData, *, min_visits: int = 2) -> pd.DataFrame:
    """Who was followed for less in each arm, and how fast they declined beside the others.

    A descriptive check of informative dropout: ALS patients who decline fast die or leave
    more, so the patients still followed in later cycles are the slower ones. The injected
    patients of each arm (treated, and control with sham injections) are split into those
    followed to the end and those followed for less (follow-up after the first injection under
    80% of the arm's longest, its 90th percentile), with each group's mean run-in and
    post-injection least-squares slopes. Follow-up cut short by the protocol (fewer
    injections, later enrolment) counts too: read the slopes beside the run-in.

    Parameters
    ----------
    data : TrialData
        Validated trial data.
    min_visits : int, default 2
        Fewest visits a slope needs (see :func:`classical_slopes`).

    Returns
    -------
    pandas.DataFrame
        One row per arm and group: ``group`` ("treated" or "control"), ``followed`` ("to the
        end" or "for less"), ``patients``, ``followup_min`` and ``followup_max`` (months
        after the first injection), ``pre_slope`` and ``post_slope`` (mean least-squares
        slopes of the run-in and of all visits from the first injection on, points/month, over
        the patients with one), ``change`` (mean post - pre over the patients with both;
        positive = slower after the injection) and ``with_post_slope`` (patients with a
        post-injection slope). ``attrs["note"]`` holds :data:`FOLLOWUP_NOTE`.
    """
    slopes = classical_slopes(data, min_visits=min_visits)
    pts = _patient_rows(slopes, _group(data)).set_index("patient")
    who = followed_for_less(data)
    rows = []
    for name in ("treated", "control"):
        arm = who[who["group"] == name]
        if not len(arm):
            continue
        f, early = arm["followup"], arm["for_less"].to_numpy()
        for label, members in (("to the end", f.index[~early]), ("for less", f.index[early])):
            if not len(members):
                continue
            sub = pts.loc[members]
            rows.append({
                "group": name, "followed": label, "patients": len(members),
                "followup_min": float(f[members].min()), "followup_max": float(f[members].max()),
                "pre_slope": float(sub["pre_slope"].mean()),
                "post_slope": float(sub["post_slope"].mean()),
                "change": float(sub["change"].mean()),
                "with_post_slope": int(sub["post_slope"].notna().sum()),
            })
    out = pd.DataFrame(rows, columns=["group", "followed", "patients", "followup_min",
                                      "followup_max", "pre_slope", "post_slope", "change",
                                      "with_post_slope"])
    out.attrs["note"] = FOLLOWUP_NOTE
    return out


def followup_summary(table: pd.DataFrame, unit: str = "points") -> str:
    """One sentence per arm from :func:`followup_table`: how many were followed for less, and
    how fast they declined after the first injection beside those followed to the end.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`followup_table`.
    unit : str, default "points"
        The outcome's unit (``TrialData.spec.unit``): slopes are in unit/month.

    Returns
    -------
    str
    """
    s = []
    for name, sub in table.groupby("group", sort=False):
        end = sub[sub["followed"] == "to the end"].iloc[0]
        left = sub[sub["followed"] == "for less"]
        if not len(left):
            s.append(f"Every {name} patient was followed to the end ({end['followup_min']:.1f}-"
                     f"{end['followup_max']:.1f} months after the first injection).")
            continue
        e = left.iloc[0]
        n = int(e["patients"] + end["patients"])
        post = ("none had a slope after it" if e["with_post_slope"] == 0 else
                f"the {int(e['with_post_slope'])} with a slope after it declined at "
                f"{e['post_slope']:.2f} {unit}/month (run-in {e['pre_slope']:.2f}, change "
                f"{e['change']:+.2f})")
        s.append(
            f"{int(e['patients'])} of {n} {name} patients were followed for less "
            f"({e['followup_min']:.1f}-{e['followup_max']:.1f} months after the first "
            f"injection): {post}; those "
            f"followed to the end ({end['followup_min']:.1f}-{end['followup_max']:.1f} "
            f"months) declined at {end['post_slope']:.2f} (run-in {end['pre_slope']:.2f}, "
            f"change {end['change']:+.2f}).")
    return " ".join(s)


def side_by_side(
    classical: ClassicalResult,
    fit_patients: pd.DataFrame,
    threshold: float = 0.25,
    *,
    prob: float = 0.9,
) -> pd.DataFrame:
    """Each patient's classical reduction and responder call beside the Bayesian ones.

    Parameters
    ----------
    classical : ClassicalResult
        From :func:`classical_analysis`.
    fit_patients : pandas.DataFrame
        ``FitResult.patients(threshold)``: columns ``patient``, ``mean`` (posterior mean
        overall slowing, fraction) and ``p_gt_<c>`` (P(slowing > c), c formatted ``f"{c:g}"``).
    threshold : float, default 0.25
        Slowing threshold c (fraction; 0.25 = 25% slower decline) of the Bayesian column.
    prob : float, default 0.9
        A patient is a Bayesian responder when P(slowing > c) >= ``prob``.

    Returns
    -------
    pandas.DataFrame
        One row per patient of ``fit_patients``: ``patient``, ``group``, ``pre_slope`` and
        ``post_slope`` (least squares, points/month), ``classical_reduction`` (fraction),
        ``classical_responder``, ``bayesian_mean`` (posterior mean slowing, fraction),
        ``bayesian_p_gt_<c>``, ``bayesian_responder`` and ``agreement``: "both responder",
        "classical only", "Bayesian only", "neither", or "not evaluable" where either call is
        undefined (untreated patients, too few visits, rising run-in). ``attrs["note"]``
        explains why the calls differ.
    """
    pcol = f"p_gt_{float(threshold):g}"
    missing = [c for c in ("patient", "mean", pcol) if c not in fit_patients.columns]
    if missing:
        raise ValueError(f"fit_patients lacks column(s) {missing}; pass "
                         f"FitResult.patients({threshold:g}).")
    bayes = fit_patients[["patient", "mean", pcol]].rename(
        columns={"mean": "bayesian_mean", pcol: f"bayesian_{pcol}"})
    bayes["patient"] = bayes["patient"].astype(str)
    cls = classical.patients[["patient", "group", "pre_slope", "post_slope", "reduction",
                              "responder"]].rename(
        columns={"reduction": "classical_reduction", "responder": "classical_responder"})
    cls = cls.assign(patient=cls["patient"].astype(str))
    out = bayes[["patient"]].merge(cls, on="patient", how="left").merge(bayes, on="patient",
                                                                         how="left")
    p = out[f"bayesian_{pcol}"]
    out["bayesian_responder"] = pd.array(np.where(p.notna(), p >= prob, pd.NA),
                                         dtype="boolean")
    c_call = out["classical_responder"].astype("boolean")
    out["classical_responder"] = c_call
    b_call = out["bayesian_responder"]
    ok = (c_call.notna() & b_call.notna()).to_numpy()
    c_v = c_call.fillna(False).to_numpy(bool)
    b_v = b_call.fillna(False).to_numpy(bool)
    label = np.select([c_v & b_v, c_v & ~b_v, ~c_v & b_v], ["both responder", "classical only",
                                                            "Bayesian only"], "neither")
    out["agreement"] = np.where(ok, label, "not evaluable")
    out.attrs["note"] = _SIDE_NOTE.format(prob=prob)
    return out
