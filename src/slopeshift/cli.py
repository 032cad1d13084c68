"""Command line: ``slopeshift demo``, ``slopeshift fit VISITS.csv INJECTIONS.csv --out DIR`` and
``slopeshift report FIT.nc --out DIR``.

The CLI only wires the library together: read data, fit, write the fit and the tables, print
the headline table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from slopeshift.data import TrialData
from slopeshift.errors import DataValidationError
from slopeshift.fit import FitResult
from slopeshift.model import SlopeShiftModel
from slopeshift.simulate import example_trial
from slopeshift.summaries import CAVEAT, natural_history_note

__all__ = ["headline", "main", "write_tables"]

TABLES = ("slowing", "patients", "cycles", "population", "responders", "interval_effect")


def write_tables(fit: FitResult, out: Path, threshold: list[float]) -> list[Path]:
    """Write every summary table of ``fit`` to ``out/<table>.csv``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in TABLES:
        path = out / f"{name}.csv"
        getattr(fit, name)(threshold=threshold).to_csv(path, index=False)
        paths.append(path)
    return paths


def _fmt_row(r: pd.Series, c: float) -> str:
    return (f"{r['mean']:6.2f} [{r['ci_2.5']:5.2f}, {r['ci_97.5']:5.2f}]"
            f"   P(>0) {r['p_gt_0']:.3f}   P(>{c:g}) {r[f'p_gt_{c:g}']:.3f}")


def headline(fit: FitResult, threshold: float = 0.25) -> str:
    """The headline table as text: population slowing, interval effect, responders, patients.

    Parameters
    ----------
    fit : FitResult
    threshold : float, default 0.25
        Slowing threshold defining a responder (fraction of the pre-treatment rate).

    Returns
    -------
    str
    """
    c = threshold
    lines = []
    o = fit.data.overview()
    lines.append(
        f"{fit.data.spec.label}: {o['patients']} patients ({o['treated']} treated, "
        f"{o['untreated']} untreated), {o['visits']} visits, {o['injections']} injections, "
        f"mean run-in {o['mean_runin_months']:.1f} months."
    )
    lines.append("")
    lines.append("Population slowing of decline (fraction of the pre-treatment rate; "
                 "mean [95% interval])")
    pop = fit.population(threshold=c)
    g_ref = pop.attrs.get("interval_ref", 3.0)
    for given, head in ((True, "at the intervals the patients had"),
                        (False, f"at a {g_ref:g}-month interval")):
        lines.append(f"  {head}:")
        for _, r in pop.iterrows():
            q = r["quantity"]
            if ("_given" in q) != given:
                continue
            name = {"rho_bar": "all cycles", "rho_bar_given": "all cycles",
                    "new_patient": "a new patient"}.get(q) or "cycle " + q.split("[")[1][:-1]
            lines.append(f"    {name:<14}{_fmt_row(r, c)}")
    lines.append("")
    iv = fit.interval_effect(threshold=c)
    th = iv.iloc[0]
    lines.append(
        f"Interval effect theta (change of slowing per extra month between injections): "
        f"{th['mean']:.3f} [{th['ci_2.5']:.3f}, {th['ci_97.5']:.3f}], P(theta < 0) "
        f"{th['p_lt_0']:.3f}"
    )
    for _, r in iv.iloc[1:].iterrows():
        lines.append(f"  at {r['interval_months']:g} months     {_fmt_row(r, c)}")
    lines.append("")
    lines.append(f"Number of responders (slowing > {c:.0%}): posterior P(R >= r)")
    resp = fit.responders(threshold=c)
    for scope, grp in resp.groupby("scope", sort=False):
        n = int(grp["n_evaluable"].iloc[0])
        ge = " ".join(f"{int(r)}:{p:.2f}" for r, p in zip(grp["responders"], grp["p_ge"],
                                                          strict=True) if p >= 0.005 and r > 0)
        mode = int(grp.loc[grp["p_eq"].idxmax(), "responders"])
        lines.append(f"  {scope:<9} most likely {mode}/{n}   P(R>=r) {ge}")
    lines.append("")
    lines.append(f"Patients: overall slowing and P(responder) = P(slowing > {c:.0%})")
    pt = fit.patients(threshold=c)
    for _, r in pt.iterrows():
        if r["status"] != "treated":
            lines.append(f"  {r['patient']:<8} {r['status']}")
            continue
        lines.append(
            f"  {r['patient']:<8} {r['n_cycles']} cycle(s)  pre-slope {r['pre_slope_mean']:6.2f}"
            f" {fit.data.spec.unit}/month  slowing {r['mean']:6.2f} "
            f"[{r['ci_2.5']:5.2f}, {r['ci_97.5']:5.2f}]  P(responder) {r[f'p_gt_{c:g}']:.2f}"
        )
    lines.append("")
    diag = fit.diagnostics().attrs
    verdict = "healthy" if diag["ok"] else "OUT OF BOUNDS (see warnings)"
    lines.append(
        f"Sampling: {verdict}: max R-hat {diag['max_r_hat']:.3f}, min ESS bulk "
        f"{diag['min_ess_bulk']:.0f} / tail {diag['min_ess_tail']:.0f}, "
        f"{diag['divergences']} divergences."
    )
    lines.append(CAVEAT)
    lines.append(natural_history_note(fit.config))
    return "\n".join(lines)


def _thresholds(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"threshold must be numbers separated by commas, e.g. 0.25 or 0.2,0.25; got {text!r}"
        ) from err


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draws", type=int, default=1000, help="posterior draws per chain")
    p.add_argument("--tune", type=int, default=1000, help="tuning steps per chain")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=2021, help="random seed (default 2021)")
    p.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc", "numpyro"])
    p.add_argument("--threshold", type=_thresholds, default=[0.25],
                   help="slowing threshold(s) for responders, e.g. 0.25 or 0.2,0.25")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true",
                   help="with --out: skip the HTML report and publication tables")


def _fit_and_report(data: TrialData, args, out: Path | None) -> FitResult:
    model = SlopeShiftModel(data, parameterization=getattr(args, "parameterization", "ratio"))
    t0 = time.perf_counter()
    fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                    sampler=args.sampler, progressbar=not args.quiet)
    print(headline(fit, args.threshold[0]))
    if out is not None:
        path = fit.save(out / "fit.nc")
        write_tables(fit, out, args.threshold)
        print(f"\nWrote the fit ({path}) and tables ({', '.join(TABLES)}) to {out}/")
        if not args.no_report:
            _use_agg()
            html = fit.report(out / "report", args.threshold[0])
            print(f"Report: {html}")
    print(f"Done in {time.perf_counter() - t0:.0f} s.")
    return fit


def _use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slopeshift`` command."""
    ap = argparse.ArgumentParser(
        prog="slopeshift",
        description="Bayesian analysis of slowing of decline across treatment cycles.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the bundled simulated example trial")
    _add_fit_options(demo)
    demo.add_argument("--out", type=Path, default=Path("slopeshift-demo"),
                      help="folder for the fit, the tables and the HTML report "
                           "(default: ./slopeshift-demo)")
    fit = sub.add_parser("fit", help="fit a trial from CSV files")
    fit.add_argument("visits", type=Path, help="CSV: patient, time, outcome (one row per visit)")
    fit.add_argument("injections", type=Path, help="CSV: patient, time[, cycle]")
    fit.add_argument("--patients", type=Path, default=None, help="CSV of patient covariates")
    fit.add_argument("--out", type=Path, required=True, help="folder for the fit and tables")
    fit.add_argument("--outcome", default="alsfrs_r", help="alsfrs_r (default), fvc, or a column")
    fit.add_argument("--patient-col", default="patient")
    fit.add_argument("--time-col", default="time")
    fit.add_argument("--on-missing", default="raise", choices=["raise", "drop"])
    fit.add_argument("--parameterization", default="ratio", choices=["ratio", "additive"])
    _add_fit_options(fit)
    rep = sub.add_parser("report", help="HTML report and publication tables of a saved fit")
    rep.add_argument("fit", type=Path, help="a fit saved by slopeshift (fit.nc)")
    rep.add_argument("--out", type=Path, required=True, help="folder for the report")
    rep.add_argument("--threshold", type=float, default=0.25,
                     help="slowing threshold for responders (default 0.25)")
    rep.add_argument("--seed", type=int, default=0,
                     help="seed of the posterior predictive check (default 0)")
    args = ap.parse_args(argv)

    warnings.simplefilter("default")
    try:
        if args.command == "demo":
            print("Bundled example: a SIMULATED trial shaped like NCT04821479 (no real patient).")
            _fit_and_report(example_trial(), args, args.out)
        elif args.command == "report":
            _use_agg()
            from slopeshift.report import write_report

            path = write_report(FitResult.load(args.fit), args.out, args.threshold,
                                random_seed=args.seed)
            print(f"Wrote {path} and the tables to {args.out}/")
        else:
            data = TrialData.from_csv(
                args.visits, args.injections, args.patients, outcome=args.outcome,
                patient_col=args.patient_col, time_col=args.time_col,
                on_missing=args.on_missing,
            )
            _fit_and_report(data, args, args.out)
    except (DataValidationError, FileNotFoundError, ValueError) as err:
        print(f"slopeshift: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
