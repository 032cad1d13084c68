"""A first analysis from CSV files with calendar dates.

Usage: python examples/csv_with_dates.py [OUT_DIR]

Writes a small trial (12 patients of the bundled simulated example, one never injected) to
visits.csv, injections.csv and patients.csv in OUT_DIR (or a new temporary folder), reads the
files back with ``TrialData.from_csv(..., time_col="date")``, fits the model and prints the
patient table.

Sampling is kept short so that the example runs in well under a minute; expect warnings that
R-hat or ESS are out of bounds. Real analyses use the defaults (``model.fit()``: 4 chains x 1000
draws after 1000 tuning steps).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from slopeshift import SlopeShiftModel, TrialData
from slopeshift.simulate import example_frames
from slopeshift.tables import patient_table

# Short runs for a quick example; real analyses use the defaults of SlopeShiftModel.fit.
QUICK = {"draws": 300, "tune": 500, "chains": 2}
SEED = 7
KEEP = [f"P{i:02d}" for i in range(9, 21)]  # P09-P20; P18 withdrew before the first injection


def write_csvs(out: Path) -> tuple[Path, Path, Path]:
    """Write the three input tables of a small trial, with dates, as CSV files."""
    visits, injections, patients = example_frames()
    paths = []
    for name, frame in (("visits", visits), ("injections", injections),
                        ("patients", patients)):
        path = out / f"{name}.csv"
        frame[frame["patient"].isin(KEEP)].to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1], paths[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Analyse a trial given as CSV files with dates.")
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="output folder (default: a new temporary folder)")
    out = parser.parse_args(argv).out or Path(tempfile.mkdtemp(prefix="slopeshift-csv-"))
    out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 20)

    # The input format: one row per visit (patient, date, score; other columns such as fvc are
    # ignored), one row per injection (patient, date, cycle), one row per patient (covariates).
    visits_csv, injections_csv, patients_csv = write_csvs(out)
    for path in (visits_csv, injections_csv, patients_csv):
        print(f"{path}:")
        print(pd.read_csv(path).head(3).to_string(index=False), "\n")

    # Dates become months since each patient's first injection (1 month = 30.4375 days).
    # A problem in the files raises one DataValidationError that names every bad CSV line.
    data = TrialData.from_csv(visits_csv, injections_csv, patients_csv, time_col="date")
    print("Visits in months since the first injection:")
    print(data.visits.head(3).to_string(index=False))
    print("Patient covariates available to the model:", data.covariates)
    for note in data.notes:
        print("Note:", note)

    fit = SlopeShiftModel(data).fit(**QUICK, random_seed=SEED, progressbar=False)

    # One row per patient: the pre-treatment slope (points/month), the overall slowing (fraction
    # of the pre-treatment rate of decline) and P(slowing > 25%), the probability that the
    # patient is a responder. The untreated patient has no slowing and counts as no responder.
    cols = ["patient", "status", "n_cycles", "pre_slope_mean", "mean", "ci_2.5", "ci_97.5",
            "p_gt_0.25"]
    print("\nPatient table (numeric; slowing 0.25 = 25% slower decline):")
    print(fit.patients(threshold=0.25)[cols].round(2).to_string(index=False))
    print("\nPatient table (publication):")
    print(patient_table(fit).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
