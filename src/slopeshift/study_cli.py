"""``slopeshift study calibrate|design|null SPEC.toml --out DIR``: studies from the shell.

A study's specification is a TOML file (paths in it are relative to the file):

``design`` (:func:`slopeshift.study.power`)::

    n_trials = 200
    seed = 1
    rule = ["rho_bar_given", 0.0, 0.975]     # optional
    [design]                                  # fields of TrialDesign
    n_patients = 40
    gaps = [3.0, 3.0, 3.0]
    [[effects]]
    effect = 0.0
    [[effects]]
    effect = 0.5
    interval_effect = -0.08
    [grid]                                    # optional: a grid over designs (design_grid)
    n_patients = [20, 40]                     # any TrialDesign field, each a list of values
    gaps = [[3.0, 3.0, 3.0], [6.0, 6.0, 6.0]]
    arms = ["single", "two-arm"]              # two-arm: as many controls as treated

  With a ``[grid]`` the summary has one row per design and effect, and the figure of
  :func:`slopeshift.plots.plot_operating_characteristics` is written beside it.

``null`` (:func:`slopeshift.study.null_check`)::

    reference = "registry_visits.csv"         # patient, time (months), alsfrs_r
    n_patients = 20
    n_resamples = 200
    gaps = [3.0, 3.0, 3.0]                    # and runin_months, followup_months, target, ...

``calibrate`` (:func:`slopeshift.study.calibrate`)::

    data = "example"                          # or {visits = "v.csv", injections = "i.csv"}
    n_trials = 200

Each may have ``[model]`` (options of SlopeShiftModel) and ``[fit]`` (draws, tune, chains)
tables. The results are written to ``--out``: the study's store, and the summary as CSV.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["add_study_parser", "run_study_command"]

_KINDS = ("calibrate", "design", "null")


def add_study_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``study`` command to the CLI's subparsers."""
    p = sub.add_parser(
        "study", help="calibration, trial design or null check: many fits, resumable",
        description="Run a study of many fits from a TOML specification (see "
                    "docs/studies.md): calibrate (simulation-based calibration on a design), "
                    "design (operating characteristics of a TrialDesign) or null (false "
                    "positives on untreated patients given sham injections). An interrupted "
                    "study resumes when run again with the same --out.")
    p.add_argument("kind", choices=_KINDS, help="the job")
    p.add_argument("spec", type=Path, help="TOML file specifying the study")
    p.add_argument("--out", type=Path, required=True,
                   help="folder of the study's store and summary CSV (required)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: half the cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                        "(needs pip install 'slopeshift[dask]') (default: local processes)")
    p.add_argument("--quiet", action="store_true", help="no progress line (default: off)")


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file.") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not a valid TOML file: {err}.") from None


def _take(spec: dict, path: Path, key: str, kind: type = int) -> Any:
    if key not in spec:
        raise ValueError(f"{path}: '{key}' is missing (see docs/studies.md).")
    return kind(spec[key])


def run_study_command(args: argparse.Namespace) -> None:
    """Run ``slopeshift study`` (parsed ``args``) and write the summary to ``--out``."""
    from slopeshift.study import (
        TrialDesign,
        calibrate,
        design_grid,
        expand_designs,
        null_check,
        power,
    )

    spec = _read_spec(args.spec)
    base = args.spec.parent
    run = {"progress": not args.quiet, "seed": int(spec.get("seed", 0)),
           "model_options": spec.get("model"), "fit_options": spec.get("fit")}
    if args.scheduler:
        run["scheduler"] = args.scheduler
    elif args.workers:
        run["workers"] = args.workers
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.kind == "design":
        try:
            design = TrialDesign(**{k: tuple(v) if k == "gaps" else v
                                    for k, v in spec.get("design", {}).items()})
        except TypeError as err:
            raise ValueError(f"{args.spec}: [design]: {err} (see TrialDesign).") from None
        effects = spec.get("effects") or [{"effect": 0.0}]
        rule = spec.get("rule")
        rule = None if rule is None else tuple(rule)
        n_trials = _take(spec, args.spec, "n_trials")
        if "grid" in spec:
            from slopeshift.plots import plot_operating_characteristics

            axes = dict(spec["grid"])
            arms = axes.pop("arms", None)
            cells = expand_designs(design, arms=arms, **axes)
            table = design_grid(cells, effects, n_trials, out / "study", rule=rule, **run)
            _save_figure(plot_operating_characteristics(table),
                         out / "operating_characteristics.png")
        else:
            table = power(design, effects, n_trials, out / "study", rule=rule, **run)
        tables = {"power": table}
    elif args.kind == "null":
        ref = base / _take(spec, args.spec, "reference", str)
        if not ref.is_file():
            raise ValueError(f"{args.spec}: reference {ref}: no such file.")
        reference = pd.read_csv(ref)
        options = {k: (tuple(v) if k in ("gaps", "rule") else v) for k, v in spec.items()
                   if k in ("runin_months", "gaps", "followup_months", "enrolment_max_slope",
                            "min_runin_visits", "rule", "threshold", "prob", "target",
                            "outcome", "patient_col", "time_col")}
        check = null_check(reference, _take(spec, args.spec, "n_patients"),
                           _take(spec, args.spec, "n_resamples"), out, **options, **run)
        tables = {"null_check": check.summary}
    else:
        data = _calibration_data(spec.get("data", "example"), base, args.spec)
        cal = calibrate(data, _take(spec, args.spec, "n_trials"), out,
                        threshold=float(spec.get("threshold", 0.25)), **run)
        cal.ranks.to_netcdf(out / "sbc_ranks.nc")
        tables = {"coverage": cal.coverage, "reliability": cal.reliability}
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        print(f"{name}:\n{table.to_string(index=False)}\n")
    print(f"Wrote {', '.join(f'{n}.csv' for n in tables)} and the study's store to {out}/")


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=130)
    plt.close(fig)
    print(f"Wrote {path}")


def _calibration_data(value: Any, base: Path, path: Path):
    from slopeshift import TrialData, example_trial

    if value == "example":
        return example_trial()
    if not isinstance(value, dict) or "visits" not in value or "injections" not in value:
        raise ValueError(f"{path}: data must be \"example\" or a table with visits and "
                         "injections CSV files (and optionally patients).")
    patients = value.get("patients")
    return TrialData.from_csv(base / value["visits"], base / value["injections"],
                              None if patients is None else base / patients,
                              outcome=value.get("outcome", "alsfrs_r"))
