"""The jobs of :mod:`slopeshift.study`: trial design (power) and null checks on real patients.

Each job builds the specs of a study, runs them with :func:`slopeshift.study.run_study` (local
process pool, any executor, or a Dask cluster; resumable) and summarises the records:

- :func:`power`: simulate trials of a :class:`TrialDesign` under given effects (realistic
  natural history, :func:`slopeshift.simulate_realistic_trial`), fit each, and report the
  probability of success under a decision rule, the type-I error under no effect, bias and
  coverage of the population slowing and the interval effect, and responder counts;
- :func:`null_check`: resample patients of an untreated reference cohort (the user's registry
  extract), give them the trial's schedule as sham injections, fit each resample, and report
  how often the analysis declares responders or a population effect where there is none, and
  the decision thresholds that keep those false-positive rates at a target.

- :func:`calibrate`: simulation-based calibration on a trial's own design (ranks of the truth
  among posterior draws, interval coverage, reliability of P(rho_ik > threshold)).

These are the public names ``slopeshift.study.TrialDesign``, ``power``, ``null_check`` and
``calibrate``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slopeshift.data import TrialData

__all__ = ["SBC_QUANTITIES", "Calibration", "NullCheck", "TrialDesign", "calibrate", "decision",
           "design_grid", "expand_designs", "null_check", "power", "sham_trial", "true_rho_bar"]

#: Sampler settings of each fit of a study (the library's defaults).
FIT_DEFAULTS = {"draws": 1000, "tune": 1000, "chains": 4}


@dataclass(frozen=True)
class TrialDesign:
    """A trial to simulate: size, arms, schedule, enrolment and natural history.

    Parameters
    ----------
    n_patients : int, default 20
        Treated patients enrolled.
    n_controls : int, default 0
        Concurrent controls (sham injections on the same schedule); 0 for single-arm.
    runin_months : float, default 6.0
        Run-in before the first injection, months.
    gaps : tuple of float, default (3.0, 3.0, 3.0)
        Planned months between consecutive injections (``len(gaps) + 1`` injections).
    followup_months : float, default 6.0
        Follow-up after the last injection, months.
    visit_every : float, default 1.0
        Months between visits.
    enrolment_max_slope : float, "median" or None, default "median"
        Enrolment on the run-in least-squares slope (points/month): enrol below this value,
        below the screened population's median, or everyone.
    dropout : bool or float, default True
        Informative dropout (a float: the base hazard per month).
    natural_history : dict, optional
        Parameters of the natural-history generator
        (:func:`slopeshift.simulate_realistic_trial`'s ``**natural_history_params``).

    Examples
    --------
    >>> TrialDesign(n_patients=40, gaps=(4.5, 4.5), n_controls=40)  # doctest: +SKIP
    """

    n_patients: int = 20
    n_controls: int = 0
    runin_months: float = 6.0
    gaps: tuple[float, ...] = (3.0, 3.0, 3.0)
    followup_months: float = 6.0
    visit_every: float = 1.0
    enrolment_max_slope: float | str | None = "median"
    dropout: bool | float = True
    natural_history: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (gaps as a list)."""
        out = asdict(self)
        out["gaps"] = list(self.gaps)
        out["natural_history"] = dict(self.natural_history)
        return out

    def simulate(self, effect: float = 0.0, interval_effect: float = 0.0,
                 effect_sd: float = 0.2, random_seed: int = 0) -> tuple[TrialData, dict]:
        """One simulated trial of this design (see :func:`slopeshift.simulate_realistic_trial`).

        Parameters
        ----------
        effect : float
            Population slowing (fraction of the natural pace) at a 3-month interval.
        interval_effect : float
            Change of slowing per month of interval beyond 3 months (per month).
        effect_sd : float
            SD of a patient's own slowing.
        random_seed : int

        Returns
        -------
        (TrialData, dict)
            The trial and its truth.
        """
        from slopeshift.natural import simulate_realistic_trial

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return simulate_realistic_trial(
                self.n_patients, n_controls=self.n_controls, runin_months=self.runin_months,
                gaps=tuple(self.gaps), followup_months=self.followup_months,
                visit_every=self.visit_every, enrolment_max_slope=self.enrolment_max_slope,
                effect=effect, effect_sd=effect_sd, interval_effect=interval_effect,
                dropout=self.dropout, random_seed=random_seed, **dict(self.natural_history))


def decision(rule: tuple[str, float, float] | None) -> tuple[str, float, float]:
    """Check a decision rule ``(quantity, threshold, probability)``.

    The trial succeeds when P(quantity > threshold) >= probability, ``quantity`` a row of
    :meth:`FitResult.population` (default ``("rho_bar_given", 0.0, 0.975)``: the primary
    population slowing is positive with probability at least 0.975).
    """
    rule = ("rho_bar_given", 0.0, 0.975) if rule is None else tuple(rule)
    if len(rule) != 3 or not 0 < float(rule[2]) < 1:
        raise ValueError("rule must be (quantity, threshold, probability), e.g. "
                         f"('rho_bar_given', 0.0, 0.975); got {rule!r}.")
    return str(rule[0]), float(rule[1]), float(rule[2])


def _record(fit, rule: tuple[str, float, float], threshold: float, prob: float) -> dict:
    """The summaries of one fit that the jobs keep (a flat dict of scalars)."""
    quantity, c, p = rule
    pop = fit.population([threshold, c] if c != threshold else threshold)
    pop = pop.set_index("quantity")
    if quantity not in pop.index:
        raise ValueError(f"the rule's quantity {quantity!r} is not in the population table "
                         f"({list(pop.index)}).")
    p_rule = float(pop.loc[quantity, f"p_gt_{c:g}"]) if c != 0 else float(
        pop.loc[quantity, "p_gt_0"])
    pt = fit.patients(threshold).set_index("patient")
    pt = pt[pt["status"] == "treated"]
    pcol = f"p_gt_{threshold:g}"
    cyc = pop.loc[[q for q in pop.index if q.startswith("rho_cycle[")]]
    theta = fit.interval_effect(threshold).set_index("quantity").loc["theta"]
    bar = pop.loc["rho_bar_given"]
    diag = fit.diagnostics().attrs
    return {
        "p_rule": p_rule,
        "success": bool(p_rule >= p),
        "rho_bar_mean": float(bar["mean"]),
        "rho_bar_lo": float(bar["ci_2.5"]),
        "rho_bar_hi": float(bar["ci_97.5"]),
        "p_rho_bar_gt_0": float(bar["p_gt_0"]),
        "max_p_cycle_gt_0": float(cyc["p_gt_0"].max()),
        "theta_mean": float(theta["mean"]),
        "theta_lo": float(theta["ci_2.5"]),
        "theta_hi": float(theta["ci_97.5"]),
        "n_evaluable": int(pt[pcol].notna().sum()),
        "declared": int((pt[pcol] >= prob).sum()),
        "max_p_patient": float(pt[pcol].max()) if pt[pcol].notna().any() else float("nan"),
        "max_r_hat": float(diag["max_r_hat"]),
        "min_ess": float(min(diag["min_ess_bulk"], diag["min_ess_tail"])),
        "divergences": int(diag["divergences"]),
    }


def _fit(data: TrialData, spec: Mapping, seed: int):
    from slopeshift.model import SlopeShiftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SlopeShiftModel(data, **dict(spec.get("model", {})))
        return model.fit(**(FIT_DEFAULTS | dict(spec.get("fit", {}))), random_seed=seed,
                         progressbar=False, check=False)


def _power_task(spec: dict, seed: int) -> dict:
    """One simulated trial of a design under one effect, fitted (a study task)."""
    start = time.perf_counter()
    design = TrialDesign(**(spec["design"] | {"gaps": tuple(spec["design"]["gaps"])}))
    data, truth = design.simulate(spec["effect"], spec["interval_effect"], spec["effect_sd"],
                                  random_seed=seed)
    fit = _fit(data, spec, seed)
    rec = _record(fit, tuple(spec["rule"]), spec["threshold"], spec["prob"])
    pats = truth["patients"]
    treated = pats[pats["arm"] == "treated"] if "arm" in pats else pats
    rec["true_responders"] = int(treated["responder"].sum()) if "responder" in treated else -1
    rec["true_rho_bar"] = true_rho_bar(truth)
    rec["seconds"] = time.perf_counter() - start  # simulation, fit and summaries
    return rec


def true_rho_bar(truth: Mapping[str, Any]) -> float:
    """The population slowing a trial's primary estimand targets, from a simulation's truth.

    ``rho_bar_given`` weights each cycle's population slowing at the intervals the patients
    had by the treated patient-months observed in it; the population slowing of a cell is
    ``effect + interval_effect * (gap - interval_ref)`` (the patients' own deviations average
    to 0 in the population). So the truth is the same weighted mean over the treated, observed
    cells of the simulation (:func:`slopeshift.simulate_realistic_trial`'s ``truth``).

    Returns
    -------
    float
        The true population slowing (fraction of the natural pace); ``effect`` where no
        treated cell was observed.
    """
    cells = truth["slowing"]
    pats = truth["patients"]
    treated = pats.index[pats["arm"] == "treated"] if "arm" in pats else pats.index
    cells = cells[cells["patient"].isin(treated) & cells["observed"]]
    w = cells["observed_months"].to_numpy(float)
    if not len(cells) or w.sum() <= 0:
        return float(truth["effect"])
    pop = truth["effect"] + truth["interval_effect"] * (cells["gap"].to_numpy(float)
                                                        - truth["interval_ref"])
    return float((w * pop).sum() / w.sum())


def _power_specs(design: TrialDesign, effects, n_trials: int, rule, threshold: float,
                 prob: float, model_options, fit_options, label: str | None) -> list[dict]:
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, not {n_trials}.")
    effects = [effects] if isinstance(effects, Mapping) else list(effects)
    if not effects:
        raise ValueError("effects is empty: give at least one, e.g. [{'effect': 0.0}].")
    specs = []
    for eff in effects:
        unknown = set(eff) - {"effect", "interval_effect", "effect_sd"}
        if unknown:
            raise ValueError(f"effects: unknown key(s) {sorted(unknown)} in {dict(eff)!r}; "
                             "use effect, interval_effect and effect_sd.")
        e = {"effect": 0.0, "interval_effect": 0.0} | dict(eff)
        # no effect means none for anyone (the type-I error), unless a spread is given
        e.setdefault("effect_sd", 0.2 if e["effect"] != 0 else 0.0)
        for _ in range(n_trials):
            spec = {"design": design.to_dict(), **e, "rule": list(rule),
                    "threshold": threshold, "prob": prob,
                    "model": dict(model_options or {}), "fit": dict(fit_options or {})}
            # power() keeps the spec of earlier versions (no label), so its stores resume
            specs.append(spec if label is None else {"label": label} | spec)
    return specs


def power(design: TrialDesign, effects: Sequence[Mapping[str, float]] | Mapping[str, float],
          n_trials: int, out_dir: str | Path, *, rule: tuple[str, float, float] | None = None,
          threshold: float = 0.25, prob: float = 0.9, seed: int = 0,
          model_options: Mapping[str, Any] | None = None,
          fit_options: Mapping[str, Any] | None = None, **run_options: Any) -> pd.DataFrame:
    """Operating characteristics of a design under a decision rule, by simulation.

    Parameters
    ----------
    design : TrialDesign
    effects : mapping or sequence of mappings
        Each ``{"effect": rho, "interval_effect": theta, "effect_sd": sd}`` (missing keys: 0,
        0, and 0.2, or 0 where the effect is 0: no effect for anyone); include
        ``{"effect": 0}`` for the type-I error.
    n_trials : int
        Simulated trials per effect.
    out_dir : str or Path
        The study's store (resumable; see :func:`slopeshift.study.run_study`).
    rule : (str, float, float), optional
        Decision rule (see :func:`decision`; default: P(rho_bar_given > 0) >= 0.975).
    threshold : float, default 0.25
        Responder threshold (fraction of the pre-treatment rate).
    prob : float, default 0.9
        Probability at which a patient is declared a responder.
    seed : int, default 0
        Study seed.
    model_options, fit_options : mapping, optional
        Options of :class:`~slopeshift.model.SlopeShiftModel` and of ``fit()`` (default: the
        library's defaults, 4 chains x 1000 draws).
    **run_options
        ``workers``, ``executor``, ``scheduler``, ``progress`` of
        :func:`slopeshift.study.run_study`.

    Returns
    -------
    pandas.DataFrame
        One row per effect: ``effect``, ``interval_effect``, ``n_trials`` (finished without
        error), ``p_success`` and its Monte Carlo SE ``p_success_se`` (the type-I error where
        the effect is 0), ``true_rho_bar`` (the population slowing at the intervals the
        simulated patients had, averaged over trials: :func:`true_rho_bar`),
        ``rho_bar_bias`` (mean posterior mean of ``rho_bar_given`` minus that truth, trial by
        trial), ``rho_bar_coverage`` (95% intervals), ``theta_bias`` and ``theta_coverage``,
        ``declared_mean`` (patients declared responders) and ``true_responders_mean``,
        ``healthy`` (share of fits with R-hat <= 1.01, ESS >= 400, no divergence).
        ``attrs["records"]``: the per-trial table.
    """
    from slopeshift.study import run_study

    rule = decision(rule)
    specs = _power_specs(design, effects, n_trials, rule, threshold, prob, model_options,
                         fit_options, None)
    records = run_study(_power_task, specs, out_dir, seed=seed, name="power", **run_options)
    return _power_summary(records, rule)


def expand_designs(base: TrialDesign | None = None, *, arms: Sequence[str] | None = None,
                   **axes: Sequence[Any]) -> dict[str, TrialDesign]:
    """Every combination of design settings: the cells of a design grid.

    Parameters
    ----------
    base : TrialDesign, optional
        The settings not varied (default ``TrialDesign()``).
    arms : sequence of {"single", "two-arm"}, optional
        ``"two-arm"`` adds a concurrent control arm as large as the treated arm
        (``n_controls = n_patients``); ``"single"`` has none.
    **axes : sequences
        Values of :class:`TrialDesign` fields, e.g. ``n_patients=[20, 40, 80]``,
        ``gaps=[(3, 3, 3), (6, 6, 6)]`` (months).

    Returns
    -------
    dict of str to TrialDesign
        Keyed by a label naming the varied settings, e.g. ``"n=40, gaps 3/3/3, two-arm"``,
        in the order of the product (the last axis varies fastest).

    Examples
    --------
    >>> cells = expand_designs(n_patients=[20, 40], gaps=[(3, 3, 3), (6, 6)],
    ...                        arms=["single", "two-arm"])
    >>> len(cells), next(iter(cells))
    (8, 'n=20, gaps 3/3/3, single-arm')
    """
    import itertools
    from dataclasses import fields, replace

    base = TrialDesign() if base is None else base
    known = {f.name for f in fields(TrialDesign)}
    unknown = set(axes) - known
    if unknown:
        raise ValueError(f"expand_designs: unknown setting(s) {sorted(unknown)}; the fields of "
                         f"TrialDesign are {sorted(known)}.")
    if "n_controls" in axes and arms is not None:
        raise ValueError("give either arms or n_controls, not both.")
    arms = list(arms) if arms is not None else [None]
    bad = [a for a in arms if a not in (None, "single", "two-arm")]
    if bad:
        raise ValueError(f"arms must be 'single' or 'two-arm', not {bad}.")
    names = list(axes)
    cells = {}
    for values in itertools.product(*(list(axes[n]) for n in names), arms):
        setting = dict(zip(names, values[:-1], strict=True))
        if "gaps" in setting:
            setting["gaps"] = tuple(float(g) for g in setting["gaps"])
        design = replace(base, **setting)
        if values[-1] is not None:
            design = replace(design, n_controls=design.n_patients if values[-1] == "two-arm"
                             else 0)
        parts = []
        for n in names:
            v = getattr(design, n)
            if n == "gaps":
                parts.append("gaps " + "/".join(f"{g:g}" for g in v))
            else:
                parts.append({"n_patients": "n", "n_controls": "controls"}.get(n, n) + f"={v}")
        if values[-1] is not None:
            parts.append("two-arm" if values[-1] == "two-arm" else "single-arm")
        cells[", ".join(parts)] = design
    return cells


def design_grid(designs: Mapping[str, TrialDesign] | Sequence[TrialDesign],
                effects: Sequence[Mapping[str, float]] | Mapping[str, float], n_trials: int,
                out_dir: str | Path, *, rule: tuple[str, float, float] | None = None,
                threshold: float = 0.25, prob: float = 0.9, seed: int = 0,
                model_options: Mapping[str, Any] | None = None,
                fit_options: Mapping[str, Any] | None = None,
                **run_options: Any) -> pd.DataFrame:
    """Operating characteristics of several designs, in one resumable study.

    Every design is simulated under every effect ``n_trials`` times and fitted as in
    :func:`power`; all trials of all designs form one study (one store, run in parallel, resumed
    together), so a grid is as easy to run on a Dask cluster as one design.

    Parameters
    ----------
    designs : mapping of str to TrialDesign, or sequence of TrialDesign
        The cells, e.g. from :func:`expand_designs`; a sequence is labelled ``design 1``, ...
    effects, n_trials, out_dir, rule, threshold, prob, seed, model_options, fit_options
        As in :func:`power` (``n_trials`` per design and effect).
    **run_options
        ``workers``, ``executor``, ``scheduler``, ``progress`` of
        :func:`slopeshift.study.run_study`.

    Returns
    -------
    pandas.DataFrame
        Tidy: one row per design and effect, with the design's settings (``design`` label,
        ``n_patients``, ``n_controls``, ``arms``, ``runin_months``, ``gaps``,
        ``followup_months``) and the columns of :func:`power`. ``attrs["records"]``: the
        per-trial table; ``attrs["rule"]``: the decision rule. Plot it with
        :func:`slopeshift.plots.plot_operating_characteristics`.
    """
    from slopeshift.study import run_study

    rule = decision(rule)
    if not isinstance(designs, Mapping):
        designs = {f"design {i + 1}": d for i, d in enumerate(designs)}
    if not designs:
        raise ValueError("designs is empty.")
    for label, d in designs.items():
        if not isinstance(d, TrialDesign):
            raise TypeError(f"design {label!r} is a {type(d).__name__}, not a TrialDesign.")
    specs = [s for label, d in designs.items()
             for s in _power_specs(d, effects, n_trials, rule, threshold, prob, model_options,
                                   fit_options, label)]
    records = run_study(_power_task, specs, out_dir, seed=seed, name="design_grid",
                        **run_options)
    table = _power_summary(records, rule)
    settings = pd.DataFrame([{
        "design": label, "n_patients": d.n_patients, "n_controls": d.n_controls,
        "arms": "two-arm" if d.n_controls else "single-arm", "runin_months": d.runin_months,
        "gaps": "/".join(f"{g:g}" for g in d.gaps), "followup_months": d.followup_months}
        for label, d in designs.items()])
    out = settings.merge(table, on="design", how="right")
    order = {label: i for i, label in enumerate(designs)}
    out = out.sort_values("design", key=lambda c: c.map(order), kind="stable")
    out = out.reset_index(drop=True)
    out.attrs = table.attrs
    return out


def _power_summary(records: pd.DataFrame, rule: tuple[str, float, float]) -> pd.DataFrame:
    ok = records[records["error"].isna()] if "error" in records else records
    if "spec_label" not in ok:  # power(): one design, no label
        ok = ok.assign(spec_label="design")
    rows = []
    for (label, eff, ie), g in ok.groupby(["spec_label", "spec_effect", "spec_interval_effect"],
                                          sort=False):
        n = len(g)
        p = float(g["success"].mean())
        truth = g["true_rho_bar"] if "true_rho_bar" in g else pd.Series(eff, index=g.index)
        healthy = (g["max_r_hat"] <= 1.01) & (g["min_ess"] >= 400) & (g["divergences"] == 0)
        rows.append({
            "design": label, "effect": eff, "interval_effect": ie, "n_trials": n,
            "p_success": p, "p_success_se": float(np.sqrt(p * (1 - p) / n)) if n else np.nan,
            "true_rho_bar": float(truth.mean()),
            "rho_bar_bias": float((g["rho_bar_mean"] - truth).mean()),
            "rho_bar_coverage": float(((g["rho_bar_lo"] <= truth) & (truth <= g["rho_bar_hi"]))
                                      .mean()),
            "theta_bias": float(g["theta_mean"].mean() - ie),
            "theta_coverage": float(((g["theta_lo"] <= ie) & (ie <= g["theta_hi"])).mean()),
            "declared_mean": float(g["declared"].mean()),
            "true_responders_mean": float(g["true_responders"].mean()),
            "healthy": float(healthy.mean()),
        })
    out = pd.DataFrame(rows, columns=None if rows else ["design", "effect", "interval_effect",
                                                         "n_trials", "p_success"])
    if len(out) and out["design"].nunique() == 1 and out["design"].iloc[0] == "design":
        out = out.drop(columns="design")  # power(): one design, no label column
    out.attrs["records"] = records
    out.attrs["rule"] = rule
    return out


# ---------------------------------------------------------------------------- null checks
def sham_trial(reference: pd.DataFrame, patients: Sequence[str], *, runin_months: float,
               gaps: Sequence[float], followup_months: float, outcome: str = "alsfrs_r",
               patient_col: str = "patient", time_col: str = "time") -> TrialData:
    """Untreated patients with a trial's schedule given as sham injections.

    Each patient's first sham injection is at their first visit + ``runin_months`` (months),
    the next ones ``gaps`` months apart while they are still followed; visits after the last
    injection + ``followup_months`` are left out.

    Parameters
    ----------
    reference : pandas.DataFrame
        Visits of untreated patients: ``patient_col``, ``time_col`` (months) and the outcome
        (or the 12 ALSFRS-R items).
    patients : sequence of str
        The patients to take (ids may repeat: a repeat is a new patient, id suffixed ``#2``).
    runin_months, gaps, followup_months : float
        The schedule, months.
    outcome, patient_col, time_col : str

    Returns
    -------
    TrialData
    """
    visits, shams = [], []
    seen: dict[str, int] = {}
    for pid in patients:
        seen[pid] = seen.get(pid, 0) + 1
        new_id = pid if seen[pid] == 1 else f"{pid}#{seen[pid]}"
        v = reference[reference[patient_col] == pid].sort_values(time_col)
        t = v[time_col].to_numpy(dtype=float)
        first = t.min() + runin_months
        times = [first]
        for g in gaps:
            if times[-1] + g > t.max():
                break
            times.append(times[-1] + g)
        v = v[v[time_col] <= times[-1] + followup_months].copy()
        v[patient_col] = new_id
        visits.append(v)
        shams.append(pd.DataFrame({patient_col: new_id, time_col: times,
                                   "cycle": np.arange(1, len(times) + 1)}))
    vis = pd.concat(visits, ignore_index=True)
    return TrialData.from_frames(
        vis.rename(columns={patient_col: "patient", time_col: "time"}),
        pd.concat(shams, ignore_index=True).rename(columns={patient_col: "patient",
                                                             time_col: "time"}),
        outcome=outcome)


def _eligible(reference: pd.DataFrame, runin_months: float, min_runin_visits: int,
              min_after_months: float, outcome: str, patient_col: str,
              time_col: str) -> pd.DataFrame:
    """Patients with a run-in of at least ``min_runin_visits`` visits and follow-up after the
    first sham injection; with their run-in least-squares slope (units/month)."""
    rows = []
    for pid, v in reference.groupby(patient_col, sort=True):
        t = v[time_col].to_numpy(dtype=float)
        y = v[outcome].to_numpy(dtype=float) if outcome in v else None
        start = t.min() + runin_months
        run = t <= start
        if run.sum() < min_runin_visits or t.max() < start + min_after_months or y is None:
            continue
        slope = float(np.polyfit(t[run], y[run], 1)[0])
        rows.append({"patient": pid, "runin_slope": slope})
    return pd.DataFrame(rows, columns=["patient", "runin_slope"])


def _null_task(spec: dict, seed: int) -> dict:
    """One resample of the reference cohort with sham injections, fitted (a study task)."""
    reference = pd.read_parquet(spec["reference"])
    pool = pd.read_parquet(spec["pool"])
    rng = np.random.default_rng(seed)
    pick = rng.choice(pool["patient"].to_numpy(), size=spec["n_patients"],
                      replace=spec["n_patients"] > len(pool))
    data = sham_trial(reference, [str(p) for p in pick], runin_months=spec["runin_months"],
                      gaps=spec["gaps"], followup_months=spec["followup_months"],
                      outcome=spec["outcome"])
    fit = _fit(data, spec, seed)
    rec = _record(fit, tuple(spec["rule"]), spec["threshold"], spec["prob"])
    pt = fit.patients(spec["threshold"]).set_index("patient")
    pt = pt[pt["status"] == "treated"]
    # every evaluable patient's P(slowing > threshold), for the calibrated patient threshold
    rec["p_patients"] = ";".join(f"{v:.6f}" for v in pt[f"p_gt_{spec['threshold']:g}"].dropna())
    return rec


@dataclass
class NullCheck:
    """What :func:`null_check` found.

    Attributes
    ----------
    records : pandas.DataFrame
        One row per resample (see :func:`slopeshift.study.load_study`).
    summary : pandas.DataFrame
        One row per check: ``check``, ``rate`` (false-positive rate), ``se`` (Monte Carlo),
        ``n`` (resamples or patients it is over), ``calibrated`` (the decision probability
        that would keep the rate at ``target``).
    target : float
    """

    records: pd.DataFrame
    summary: pd.DataFrame
    target: float


def null_check(reference: pd.DataFrame, n_patients: int, n_resamples: int,
               out_dir: str | Path, *, runin_months: float = 6.0,
               gaps: Sequence[float] = (3.0, 3.0, 3.0), followup_months: float = 6.0,
               enrolment_max_slope: float | str | None = "median", min_runin_visits: int = 3,
               rule: tuple[str, float, float] | None = None, threshold: float = 0.25,
               prob: float = 0.9, target: float = 0.05, seed: int = 0,
               outcome: str = "alsfrs_r", patient_col: str = "patient", time_col: str = "time",
               model_options: Mapping[str, Any] | None = None,
               fit_options: Mapping[str, Any] | None = None, **run_options: Any) -> NullCheck:
    """False-positive rates of the analysis on untreated patients given sham injections.

    Each resample draws ``n_patients`` patients (without replacement when the cohort is large
    enough) from the eligible patients of ``reference`` (a run-in of ``runin_months`` months
    with at least ``min_runin_visits`` visits, and follow-up after it; enrolled by
    ``enrolment_max_slope`` on the run-in least-squares slope, as the trial enrols), gives them
    the trial's schedule as sham injections (:func:`sham_trial`) and fits the model. Nothing
    was done to these patients, so every responder declared and every population effect found
    is a false positive.

    Parameters
    ----------
    reference : pandas.DataFrame
        Visits of untreated patients (a registry extract): ``patient_col``, ``time_col``
        (months) and the outcome (or the 12 ALSFRS-R items). Third-party patient data stay
        with the user: nothing is written but the study's store in ``out_dir``.
    n_patients : int
        Patients per resampled trial.
    n_resamples : int
        Resampled trials.
    out_dir : str or Path
        The study's store (resumable, in ``out_dir/study``), beside a copy of the reference
        visits (``reference.parquet``) and the eligible patients with their run-in slopes
        (``eligible.parquet``).
    runin_months, gaps, followup_months : float
        The trial's schedule, months.
    enrolment_max_slope : float, "median" or None, default "median"
        Enrolment on the run-in slope (points/month): below this value, below the eligible
        cohort's median, or everyone.
    min_runin_visits : int, default 3
    rule : (str, float, float), optional
        The trial's decision rule (:func:`decision`; default P(rho_bar_given > 0) >= 0.975).
    threshold : float, default 0.25
        Responder threshold (fraction of the pre-treatment rate).
    prob : float, default 0.9
        Probability at which a patient is declared a responder.
    target : float, default 0.05
        False-positive rate the calibrated thresholds keep.
    seed : int, default 0
    outcome, patient_col, time_col : str
    model_options, fit_options : mapping, optional
    **run_options
        ``workers``, ``executor``, ``scheduler``, ``progress`` of
        :func:`slopeshift.study.run_study`.

    Returns
    -------
    NullCheck
        ``summary`` rows: ``patients declared responders`` (share of evaluable patients with
        P(slowing > threshold) >= prob; calibrated: the (1 - target) quantile of those
        probabilities), ``trial: any cycle P(rho_k > 0) >= prob`` (calibrated: the quantile of
        each trial's largest cycle probability) and ``trial: decision rule met``
        (calibrated: the quantile of P(rule)).
    """
    from slopeshift.study import run_study

    rule = decision(rule)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    missing = [c for c in (patient_col, time_col) if c not in reference]
    if missing:
        raise ValueError(f"reference: missing column(s) {missing}; found {list(reference)}.")
    pool = _eligible(reference, runin_months, min_runin_visits, min(gaps[:1] or [3.0]),
                     outcome, patient_col, time_col)
    if enrolment_max_slope is not None and len(pool):
        cut = (float(pool["runin_slope"].median()) if enrolment_max_slope == "median"
               else float(enrolment_max_slope))
        pool = pool[pool["runin_slope"] < cut]
    if len(pool) < 2:
        raise ValueError(
            f"reference: {len(pool)} patient(s) have a run-in of {runin_months:g} months with "
            f"at least {min_runin_visits} visits, follow-up after it and meet the enrolment "
            "rule; a null check needs a cohort (ideally several times n_patients).")
    if len(pool) < n_patients:
        warnings.warn(f"only {len(pool)} eligible patients for trials of {n_patients}: "
                      "patients are drawn with replacement (a repeat counts as a new patient).",
                      stacklevel=2)
    ref_path = out / "reference.parquet"
    cols = [c for c in reference.columns]
    reference[cols].rename(columns={patient_col: "patient", time_col: "time"}).to_parquet(
        ref_path)
    pool_path = out / "eligible.parquet"
    pool.to_parquet(pool_path)
    spec = {"reference": str(ref_path), "pool": str(pool_path),
            "n_patients": int(n_patients), "runin_months": float(runin_months),
            "gaps": [float(g) for g in gaps], "followup_months": float(followup_months),
            "outcome": outcome, "rule": list(rule), "threshold": float(threshold),
            "prob": float(prob), "model": dict(model_options or {}),
            "fit": dict(fit_options or {})}
    records = run_study(_null_task, [dict(spec, resample=i) for i in range(n_resamples)],
                        out / "study", seed=seed, name="null_check", **run_options)
    return NullCheck(records, _null_summary(records, prob, target), target)


def _null_summary(records: pd.DataFrame, prob: float, target: float) -> pd.DataFrame:
    ok = records[records["error"].isna()] if "error" in records else records
    p_pat = np.array([float(x) for s in ok["p_patients"] for x in str(s).split(";") if x])
    n_t = len(ok)

    def row(check, hits, n, values):
        rate = float(np.mean(hits)) if n else np.nan
        return {"check": check, "rate": rate,
                "se": float(np.sqrt(rate * (1 - rate) / n)) if n else np.nan, "n": n,
                "calibrated": float(np.quantile(values, 1 - target)) if n else np.nan}

    return pd.DataFrame([
        row("patients declared responders", p_pat >= prob, len(p_pat), p_pat),
        row(f"trial: any cycle P(rho_k > 0) >= {prob:g}", ok["max_p_cycle_gt_0"] >= prob, n_t,
            ok["max_p_cycle_gt_0"]),
        row("trial: decision rule met", ok["success"].astype(bool), n_t, ok["p_rule"]),
    ])


# ---------------------------------------------------------------------------- calibration
#: Quantities whose simulation-based calibration ranks :func:`calibrate` records.
SBC_QUANTITIES = ("rho_bar", "theta", "mu_beta", "sd_patient")


def _calibration_task(spec: dict, seed: int) -> dict:
    """One trial simulated from the priors on the template's design, fitted (a study task)."""
    import pickle

    from slopeshift.model import SlopeShiftModel
    from slopeshift.prior_check import prior_trial

    with open(spec["template"], "rb") as fh:
        template = pickle.load(fh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator = SlopeShiftModel(template, **spec["model"])
        data, truth = prior_trial(generator, seed)
        # the fit keeps the generator's priors (mu_alpha's default is centred on the scores)
        fit = SlopeShiftModel(data, **spec["model"], priors=generator.priors).fit(
            **(FIT_DEFAULTS | dict(spec["fit"])), random_seed=seed, progressbar=False,
            check=False)
    post = fit.posterior
    # rho_bar weighs the cycles by the patient-months of this trial's evaluable cells, which
    # depend on its scores (flat run-ins): the truth uses the fitted trial's weights
    from slopeshift.design import design_weights

    if spec["model"].get("parameterization", "ratio") == "ratio":
        truth["rho_bar"] = float(np.asarray(truth["rho_cycle"]) @ design_weights(fit.design).values)
    rng = np.random.default_rng([seed, 2])
    n = post.sizes["chain"] * post.sizes["draw"]
    keep = np.unique(np.linspace(0, n - 1, spec["n_ranks"]).round().astype(int))
    rec: dict[str, Any] = {"n_ranks": len(keep)}
    for q in SBC_QUANTITIES:
        draws = post[q].values.reshape(n)[keep]
        rank = int((draws < truth[q]).sum() + rng.integers(0, (draws == truth[q]).sum() + 1))
        rec[f"rank_{q}"] = rank
        rec[f"pit_{q}"] = (rank + rng.uniform()) / (len(keep) + 1)
        rec[f"true_{q}"] = truth[q]
    rho = post["rho"].values.reshape(n, *post["rho"].shape[2:])
    true = truth["rho"]
    cells = np.isfinite(true) & np.isfinite(rho).all(axis=0)
    r, t = rho[:, cells], true[cells]
    for level in (0.5, 0.9):
        lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2], axis=0)
        rec[f"covered_{int(level * 100)}"] = int(((lo <= t) & (t <= hi)).sum())
    rec["n_cells"] = int(cells.sum())
    c = spec["threshold"]
    p = (r > c).mean(axis=0)
    rec["cells_p"] = ";".join(f"{v:.4f}" for v in p)
    rec["cells_true"] = ";".join("1" if v > c else "0" for v in t)
    diag = fit.diagnostics().attrs
    rec["max_r_hat"] = float(diag["max_r_hat"])
    rec["divergences"] = int(diag["divergences"])
    return rec


@dataclass
class Calibration:
    """What :func:`calibrate` found.

    Attributes
    ----------
    records : pandas.DataFrame
        One row per simulated trial.
    ranks : xarray.DataTree
        Group ``prior_sbc``: one PIT value per trial (dim ``trial``) for each quantity of
        :data:`SBC_QUANTITIES`, the layout :func:`arviz_plots.plot_ecdf_pit` reads
        (``plot_ecdf_pit(cal.ranks, sample_dims=["trial"])``).
    coverage : pandas.DataFrame
        ``level``, ``coverage`` of the patient x cycle intervals of rho_ik, ``se`` (binomial,
        too small where cells of one trial are correlated), ``n_cells``.
    reliability : pandas.DataFrame
        Cells binned by P(rho_ik > threshold): ``p_mean`` (mean predicted), ``observed`` (share
        truly above the threshold), ``se``, ``n``.
    """

    records: pd.DataFrame
    ranks: Any
    coverage: pd.DataFrame
    reliability: pd.DataFrame


def calibrate(data: TrialData, n_trials: int, out_dir: str | Path, *, threshold: float = 0.25,
              n_ranks: int = 99, seed: int = 0, model_options: Mapping[str, Any] | None = None,
              fit_options: Mapping[str, Any] | None = None, **run_options: Any) -> Calibration:
    """Simulation-based calibration of the model on a trial's own design.

    Each task draws every parameter from the model's priors, simulates scores on ``data``'s
    visits, injections and arms with the model's own formulas
    (:func:`slopeshift.prior_check.prior_trial`), fits them, and records the rank of each true
    value among ``n_ranks`` posterior draws (SBC: uniform when the posterior is right), which
    patient x cycle intervals of rho_ik cover their truth, and P(rho_ik > threshold) beside
    whether rho_ik truly exceeds it. (In the additive parameterisation the truth of rho_bar
    is scaled by the template's natural rates, so its ranks are approximate there.) It checks
    the computation (sampler, integration of the effects, summaries), not the model's
    assumptions: for those, fit data that break them (``tests/independent_sim.py``,
    :func:`slopeshift.simulate_realistic_trial`, :func:`null_check`).

    Parameters
    ----------
    data : TrialData
        The design: its visit times, injections and arms (its scores are replaced).
    n_trials : int
        Simulated trials.
    out_dir : str or Path
        The study's store (resumable, ``out_dir/study``) beside the design (``template.pkl``).
    threshold : float, default 0.25
        Threshold of the reliability curve (fraction of the pre-treatment rate).
    n_ranks : int, default 99
        Posterior draws (evenly spaced) each truth is ranked among.
    seed : int, default 0
    model_options : mapping, optional
        Options of :class:`~slopeshift.model.SlopeShiftModel`; ``enrolment=None``,
        ``floors="include"``, ``jump=False`` and ``dropout="ignore"`` are imposed (the
        simulation neither selects patients nor has floors or jumps, and it keeps the
        template's visits, so who was followed for less does not depend on the simulated
        slopes).
    fit_options : mapping, optional
        Options of ``fit()`` (default 4 chains x 1000 draws).
    **run_options
        ``workers``, ``executor``, ``scheduler``, ``progress`` of
        :func:`slopeshift.study.run_study`.

    Returns
    -------
    Calibration
    """
    import pickle

    from slopeshift.study import run_study

    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, not {n_trials}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = out / "template.pkl"
    with open(template, "wb") as fh:
        pickle.dump(data, fh)
    model = dict(model_options or {}) | {"enrolment": None, "floors": "include", "jump": False,
                                         "dropout": "ignore"}
    spec = {"template": str(template), "threshold": float(threshold), "n_ranks": int(n_ranks),
            "model": model, "fit": dict(fit_options or {})}
    records = run_study(_calibration_task, [dict(spec, trial=i) for i in range(n_trials)],
                        out / "study", seed=seed, name="calibrate", **run_options)
    return _calibration_summary(records)


def _calibration_summary(records: pd.DataFrame) -> Calibration:
    import xarray as xr

    ok = records[records["error"].isna()] if "error" in records else records
    ranks = xr.DataTree.from_dict({"prior_sbc": xr.Dataset(
        {q: ("trial", ok[f"pit_{q}"].to_numpy(dtype=float)) for q in SBC_QUANTITIES},
        coords={"trial": ok["task"].to_numpy()})})
    n_cells = int(ok["n_cells"].sum())
    cov = []
    for level in (50, 90):
        c = float(ok[f"covered_{level}"].sum() / n_cells) if n_cells else np.nan
        cov.append({"level": level / 100, "coverage": c,
                    "se": float(np.sqrt(c * (1 - c) / n_cells)) if n_cells else np.nan,
                    "n_cells": n_cells})
    p = np.array([float(x) for s in ok["cells_p"] for x in str(s).split(";") if x])
    hit = np.array([int(x) for s in ok["cells_true"] for x in str(s).split(";") if x])
    rel = []
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        n = int(sel.sum())
        obs = float(hit[sel].mean()) if n else np.nan
        rel.append({"bin": f"{lo:.1f}-{hi:.1f}", "p_mean": float(p[sel].mean()) if n else np.nan,
                    "observed": obs, "se": float(np.sqrt(obs * (1 - obs) / n)) if n else np.nan,
                    "n": n})
    return Calibration(records, ranks, pd.DataFrame(cov), pd.DataFrame(rel))
