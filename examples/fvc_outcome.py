"""FVC (% predicted) as the outcome, with visits that lack a measurement dropped and reported.

Usage: python examples/fvc_outcome.py [OUT_DIR]

In the bundled (simulated) trial FVC was measured at about every third visit. A missing score is
an error unless ``on_missing="drop"``: ``example_trial("fvc")`` passes it, so the visits without
FVC are dropped with a DataWarning and listed in ``data.dropped``. Writes population.csv to
OUT_DIR (or a new temporary folder).

Sampling is kept short so that the example runs in well under a minute; expect warnings that
R-hat or ESS are out of bounds. Real analyses use the defaults (``model.fit()``: 4 chains x 1000
draws after 1000 tuning steps).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from slopeshift import DataWarning, SlopeShiftModel, default_priors, example_trial
from slopeshift.tables import export_table, population_table

# Short runs for a quick example; real analyses use the defaults of SlopeShiftModel.fit.
QUICK = {"draws": 300, "tune": 500, "chains": 2}
SEED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit the example trial with FVC as outcome.")
    parser.add_argument("out", nargs="?", type=Path, default=None,
                        help="output folder (default: a new temporary folder)")
    out = parser.parse_args(argv).out or Path(tempfile.mkdtemp(prefix="slopeshift-fvc-"))
    pd.set_option("display.width", 160)

    # The drop is announced by a DataWarning; catch it here to print it in our own words.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        data = example_trial("fvc")
    for w in caught:
        print(f"{w.category.__name__}: {w.message}")
    print(f"\n{len(data.dropped)} visits dropped (data.dropped), e.g.:")
    print(data.dropped.head(3).to_string(index=False))
    print(f"\nKept {len(data.visits)} FVC visits of {len(data.patients)} patients.")

    # FVC has its own default priors (% predicted per month), e.g. for the pre-treatment slope:
    priors = default_priors("fvc")
    print("FVC priors: mu_beta", priors["mu_beta"], " sd_beta", priors["sd_beta"],
          " sigma", priors["sigma"])

    fit = SlopeShiftModel(data).fit(**QUICK, random_seed=SEED, progressbar=False)

    # Slowing is a fraction of each patient's own pre-treatment FVC decline (0.25 = 25% slower);
    # the publication table prints it in percent.
    print("\nPopulation slowing of FVC decline:")
    print(fit.population().round(3).to_string(index=False))
    table = population_table(fit)
    print()
    print(table.to_string(index=False))
    path = export_table(table, out / "population.csv")
    print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
