"""The bundled example trial end to end: fit, print the tables, save, reload, write the report.

Usage: python examples/bundled_trial.py [OUT_DIR]

Writes fit.nc and report/ (report.html, the publication tables as CSV, Markdown and LaTeX,
methods.txt, results.txt) to OUT_DIR, or to a new temporary folder.

The bundled trial is SIMULATED: shaped like the phase II trial NCT04821479, no patient is real.
Sampling is kept short so that the example runs in well under a minute; expect warnings that
R-hat or ESS are out of bounds. Real analyses use the defaults (``model.fit()``: 4 chains x 1000
draws after 1000 tuning steps) and cite numbers only when the diagnostics are in bounds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the report draws figures to files; no window is needed

import pandas as pd  # noqa: E402

from slopeshift import FitResult, SlopeShiftModel, example_trial  # noqa: E402
from slopeshift.tables import cycle_table, population_table  # noqa: E402

# Short runs for a quick example; real analyses use the defaults of SlopeShiftModel.fit.
QUICK = {"draws": 300, "tune": 500, "chains": 2}
SEED = 2021


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit the bundled example trial end to end.")
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="output folder (default: a new temporary folder)")
    out = parser.parse_args(argv).out or Path(tempfile.mkdtemp(prefix="slopeshift-bundled-"))
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 20)

    # 1. Data: validated, with times converted to months since each patient's first injection.
    data = example_trial()
    print("Trial:", data.overview())

    # 2. Model: building is cheap and never samples; fit() samples (seeded: reproducible).
    model = SlopeShiftModel(data)
    fit = model.fit(**QUICK, random_seed=SEED, progressbar=False)
    print(fit)
    print("Diagnostics:", {k: round(v, 3) if isinstance(v, float) else v
                           for k, v in fit.diagnostics().attrs.items()})

    # 3. Tables. fit.population() etc. are numeric (fractions: 0.25 = 25% slower decline);
    #    slopeshift.tables formats them for publication (percent, "15/19" responders).
    print("\nPopulation slowing (numeric):")
    print(fit.population().round(3).to_string(index=False))
    print("\nPopulation slowing (publication table):")
    print(population_table(fit).to_string(index=False))
    print("\nSlowing and responders per cycle:")
    print(cycle_table(fit).to_string(index=False))
    print("\nNumber of responders over all cycles, P(R >= r):")
    resp = fit.responders()
    overall = resp[resp["scope"] == "overall"]
    likely = overall[overall["p_eq"] >= 0.005]  # leave out counts with negligible probability
    print(likely[["responders", "p_eq", "p_ge"]].round(3).to_string(index=False))
    print("\nInterval effect (theta per extra month between injections):")
    print(fit.interval_effect().round(3).to_string(index=False))

    # 4. Save and reload: the file holds the posterior, the data and the configuration;
    #    passing the model makes load() refuse a file fitted with another configuration.
    path = fit.save(out / "fit.nc")
    reloaded = FitResult.load(path, model=model)
    pd.testing.assert_frame_equal(fit.patients(), reloaded.patients())
    print(f"\nSaved {path}; the reloaded fit gives identical tables.")

    # 5. Report: self-contained HTML with figures, tables (CSV/Markdown/LaTeX) and paragraphs.
    #    From the shell: slopeshift report fit.nc --out report/
    html = reloaded.report(out / "report")
    print(f"Report: {html}")
    print(population_table(fit).attrs["note"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
