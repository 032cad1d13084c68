"""Publication tables: rounding, the trial's "15/19" form, and CSV / Markdown / LaTeX export."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from slopeshift.summaries import CAVEAT
from slopeshift.tables import (
    cycle_table,
    export_table,
    format_estimate,
    format_number,
    format_probability,
    interval_table,
    patient_table,
    population_table,
    responder_counts,
)

ESTIMATE_1 = re.compile(r"^-?\d+\.\d \(-?\d+\.\d to -?\d+\.\d\)$")
PROB_2 = re.compile(r"^(<0\.01|>0\.99|0\.\d\d)$")


def test_formatters_round_and_never_print_certainty():
    assert format_number(-0.04, 1) == "0.0"
    assert format_number(12.346, 2) == "12.35"
    assert format_number(float("nan")) == "n/a"
    assert format_estimate(0.4991, 0.2876, 0.6903, 1, 100) == "49.9 (28.8 to 69.0)"
    assert format_estimate(0.231, -0.1004, 0.517, 0, 100) == "23 (-10 to 52)"
    assert format_probability(0.456) == "0.46"
    assert format_probability(0.004) == "<0.01"
    assert format_probability(0.996) == ">0.99"
    assert format_probability(1.0, 3) == ">0.999"
    assert format_probability(0.0004, 3) == "<0.001"
    assert format_probability(0.0126, 3) == "0.013"


def test_population_table_rounds_the_fit_summary(small_fit):
    df = population_table(small_fit, 0.25)
    num = small_fit.population(0.25)
    assert list(df.columns) == ["Quantity", "Role", "Slowing, % (95% CrI)", "P(slowing > 0)",
                                "P(slowing > 25%)"]
    # the primary estimand first, per-cycle rows exploratory
    n_k = len(small_fit.design["cycle"])
    assert df["Role"].tolist() == (["primary"] + ["exploratory"] * n_k + ["secondary"]
                                   + ["exploratory"] * n_k + ["secondary"])
    assert num.set_index("quantity").loc["rho_bar_given", "role"] == "primary"
    cycles = small_fit.design["cycle"].values
    given = num.attrs["given_interval"]
    # first at the intervals the patients had, then at the reference interval
    assert list(df["Quantity"]) == (
        ["All cycles"]
        + [f"Cycle {k} (mean interval {g:.1f} months)" if np.isfinite(g)
           else f"Cycle {k} (open, at a 3-month interval)" for k, g in zip(cycles, given,
                                                                           strict=True)]
        + ["All cycles, at a 3-month interval"]
        + [f"Cycle {k}, at a 3-month interval" for k in cycles]
        + ["New patient (predictive), at a 3-month interval"])
    first = num.set_index("quantity").loc["rho_bar_given"]
    assert df.iloc[0, 2] == (f"{100 * first['mean']:.1f} ({100 * first['ci_2.5']:.1f} to "
                             f"{100 * first['ci_97.5']:.1f})")
    assert all(ESTIMATE_1.match(v) for v in df.iloc[:, 2])
    assert all(PROB_2.match(v) for v in df.iloc[:, 3:].to_numpy().ravel())
    assert CAVEAT in df.attrs["note"]
    whole = population_table(small_fit, 0.25, pct_decimals=0, prob_decimals=3)
    assert not any("." in v for v in whole.iloc[:, 2])
    assert all(re.match(r"^(<0\.001|>0\.999|0\.\d{3})$", v)
               for v in whole.iloc[:, 3:].to_numpy().ravel())


def test_cycle_table_responders_in_trial_form(small_fit):
    df = cycle_table(small_fit, 0.25)
    cyc = small_fit.cycles(0.25)
    assert len(df) == len(cyc) + 1 and df["Cycle"].iloc[-1] == "All cycles"
    form = re.compile(r"^(\d+)/(\d+) \((\d+) to (\d+)\)$")
    for cell, n, med in zip(df["Responders (95% CrI)"].iloc[:-1], cyc["n_patients"],
                            cyc["responders_median_0.25"], strict=True):
        m = form.match(cell)
        assert m, cell
        r, total, lo, hi = map(int, m.groups())
        assert total == n and lo <= r <= hi <= total
        assert abs(r - med) <= 0.5  # the same median as the numeric summary
    treated = small_fit.patients(0.25).query("status == 'treated'")
    last = form.match(df["Responders (95% CrI)"].iloc[-1])
    assert last and int(last.group(2)) == len(treated)
    assert df["Patients"].iloc[0] == str(int(cyc["n_patients"].iloc[0]))
    assert df["Patient-months"].iloc[0] == f"{cyc['patient_months'].iloc[0]:.1f}"
    assert all(ESTIMATE_1.match(v) for v in df["Slowing, % (95% CrI)"])


def test_responder_counts_follow_the_posterior_distribution(small_fit):
    counts = responder_counts(small_fit, 0.25).set_index("scope")
    dist = small_fit.responders(0.25)
    for scope, g in dist.groupby("scope"):
        cdf = g["p_eq"].cumsum().to_numpy()
        med = counts.loc[scope, "median"]
        assert cdf[med] >= 0.5 - 1e-9 and (med == 0 or cdf[med - 1] < 0.5)
        assert counts.loc[scope, "label"] == f"{med}/{int(g['n_evaluable'].iloc[0])}"
        assert counts.loc[scope, "ci_2.5"] <= med <= counts.loc[scope, "ci_97.5"]


def test_patient_table(small_fit):
    df = patient_table(small_fit, 0.25)
    num = small_fit.patients(0.25)
    assert list(df["Patient"]) == list(num["patient"])
    assert "Pre-treatment slope, points/month (95% CrI)" in df.columns
    untreated = df[df["Status"] == "untreated"]
    assert len(untreated) >= 1
    assert set(untreated["Overall slowing, % (95% CrI)"]) == {"n/a"}
    assert set(untreated["P(slowing > 25%)"]) == {"n/a"}
    treated = df[df["Status"] == "treated"]
    assert all(ESTIMATE_1.match(v) for v in treated["Overall slowing, % (95% CrI)"])
    assert all(re.match(r"^-?\d+\.\d\d \(", v) for v in
               df["Pre-treatment slope, points/month (95% CrI)"])


def test_interval_table(small_fit):
    df = interval_table(small_fit, 0.25, intervals=(3, 4.5, 6))
    assert len(df) == 4
    assert df["Quantity"].iloc[0].startswith("Change per extra month of interval")
    assert PROB_2.match(df["P(theta < 0)"].iloc[0])
    assert df["P(slowing > 0)"].iloc[0] == "" and set(df["P(theta < 0)"].iloc[1:]) == {""}
    assert list(df["Quantity"].iloc[1:]) == [f"Population slowing at {g} months"
                                             for g in ("3", "4.5", "6")]


def test_threshold_and_decimals_are_checked(small_fit):
    with pytest.raises(ValueError, match="one finite number"):
        cycle_table(small_fit, [0.2, 0.25])
    with pytest.raises(ValueError, match="decimals"):
        population_table(small_fit, pct_decimals=-1)


def test_export_csv_md_tex(small_fit, tmp_path):
    df = cycle_table(small_fit, 0.25)
    csv = export_table(df, tmp_path / "out" / "cycles.csv")
    back = pd.read_csv(csv, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, df.astype(str))

    md = export_table(df, tmp_path / "cycles.md", caption="Cycles").read_text()
    lines = md.splitlines()
    assert lines[0] == "**Cycles**"
    header = lines.index("| " + " | ".join(df.columns) + " |")
    assert re.fullmatch(r"\| :--- (\| ---: )+\|", lines[header + 1])
    assert sum(ln.startswith("| ") for ln in lines) == len(df) + 2
    assert CAVEAT in md

    tex = export_table(df, tmp_path / "cycles.tex", caption="Cycles 50%",
                       label="tab:cycles").read_text()
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{lrrrrrr}",
                r"\caption{Cycles 50\%}", r"\label{tab:cycles}", r"\begin{table}"):
        assert cmd in tex
    assert r"P(slowing \textgreater{} 25\%)" in tex
    body = tex[tex.index(r"\midrule"):tex.index(r"\bottomrule")]
    assert body.count(r"\\") == len(df)
    signs = export_table(pd.DataFrame({"Quantity": ["a_b & c"], "Estimate": ["-3.2 (-12.4 to 6.1)"],
                                       "Responders": ["11-18"]}), tmp_path / "s.tex").read_text()
    assert r"a\_b \& c & $-$3.2 ($-$12.4 to 6.1) & 11-18 \\" in signs
    plain = export_table(interval_table(small_fit), tmp_path / "interval.tex").read_text()
    assert r"\begin{table}" not in plain and r"\toprule" in plain


def test_export_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv, \.md or \.tex"):
        export_table(pd.DataFrame({"a": [1]}), tmp_path / "t.xlsx")
    numeric = export_table(pd.DataFrame({"name": ["x|y"], "v": [np.float64(1.5)]}),
                           tmp_path / "t.md").read_text()
    assert r"x\|y" in numeric and "| :--- | ---: |" in numeric
