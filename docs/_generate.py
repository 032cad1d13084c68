"""Regenerate the figures and tables shown in the documentation (docs/assets/).

Usage: .venv/bin/python docs/_generate.py

Fits the bundled simulated example trial with the default sampler settings and the seed of
``slopeshift demo`` (2021), then writes every figure of the how-to pages as PNG to
docs/assets/figures/ and the tables as Markdown to docs/assets/tables/ (the pages include them,
so their numbers come from this one fit). Takes a few minutes; ``make docs`` does not run it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from slopeshift import SlopeShiftModel, example_trial, plots  # noqa: E402
from slopeshift.loo import format_comparison, loo_pit  # noqa: E402
from slopeshift.sensitivity import format_power_scaling  # noqa: E402
from slopeshift.tables import (  # noqa: E402
    cycle_table,
    export_table,
    interval_table,
    patient_table,
    population_table,
    responder_counts,
)

ASSETS = Path(__file__).resolve().parent / "assets"
SEED = 2021


def _numeric(df: pd.DataFrame, path: Path, decimals: int = 3) -> None:
    """A numeric summary table as a Markdown pipe table (numbers rounded)."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda x: "" if pd.isna(x) else f"{x:.{decimals}f}")
    export_table(out, path)


def main() -> None:
    figs, tabs = ASSETS / "figures", ASSETS / "tables"
    figs.mkdir(parents=True, exist_ok=True)
    tabs.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example trial's data notes; diagnostics are printed
        fit = SlopeShiftModel(example_trial()).fit(random_seed=SEED, progressbar=False)
    print(fit, fit.diagnostics().attrs)

    # publication tables (formatted strings, with their footnotes)
    for name, table in (("population", population_table(fit)), ("cycles", cycle_table(fit)),
                        ("patients", patient_table(fit)), ("interval", interval_table(fit))):
        export_table(table, tabs / f"{name}.md")
    # numeric tables, as returned by FitResult
    _numeric(fit.population(threshold=[0.25, 0.5]), tabs / "population_numeric.md")
    _numeric(fit.cycles(), tabs / "cycles_numeric.md")
    _numeric(fit.patients().head(6), tabs / "patients_numeric.md")
    resp = fit.responders()
    overall = resp[(resp["scope"] == "overall") & (resp["p_eq"] >= 0.005)]
    _numeric(overall, tabs / "responders_numeric.md")
    _numeric(responder_counts(fit), tabs / "responder_counts.md", 0)
    _numeric(fit.interval_effect(), tabs / "interval_numeric.md")
    _numeric(fit.slowing().head(6), tabs / "slowing_numeric.md")
    diag = fit.diagnostics()
    _numeric(diag.reset_index(), tabs / "diagnostics.md", 3)
    # model checking: leave-one-patient-out comparison of the ladder (five refits), and
    # power-scaling sensitivity of the priors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comparison = fit.compare()
    export_table(format_comparison(comparison), tabs / "comparison.md")
    export_table(format_power_scaling(fit.power_scaling()), tabs / "power_scaling.md")
    pit = loo_pit(fit)
    print(f"LOO-PIT of the post-injection slopes: {pit.round(2).values}")

    first = [str(p) for p in fit.design["patient"].values][:8]
    patients = list(dict.fromkeys([*first, "P18"]))  # include the untreated patient
    figures = {
        "trajectories": lambda: plots.plot_trajectories(fit, patients, ncols=3),
        "patient-forest": lambda: plots.plot_patient_forest(fit),
        "cycles": lambda: plots.plot_cycles(fit),
        "responders": lambda: plots.plot_responders(fit),
        "interval-effect": lambda: plots.plot_interval_effect(fit),
        "trace": lambda: plots.plot_trace(fit, ["mu_beta", "sigma", "theta", "rho_bar",
                                                "sd_patient"]),
        "rank": lambda: plots.plot_trace(fit, ["theta", "rho_bar"], kind="rank"),
        "ppc": lambda: plots.plot_ppc(fit, random_seed=0),
        "loo-pit": lambda: plots.plot_loo_pit(fit),
    }
    for name, make in figures.items():
        fig = make()
        fig.savefig(figs / f"{name}.png", dpi=80)
        plt.close(fig)
    print(f"wrote {len(figures)} figures and the tables to {ASSETS}")


if __name__ == "__main__":
    main()
