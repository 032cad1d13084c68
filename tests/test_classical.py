"""The classical per-patient least-squares analysis, on hand-made data with known slopes."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import slopeshift
from slopeshift import TrialData
from slopeshift.classical import (
    CLASSICAL_CAVEAT,
    FOLLOWUP_NOTE,
    ClassicalResult,
    classical_analysis,
    classical_slopes,
    followup_summary,
    followup_table,
    side_by_side,
)

# (patient, month, ALSFRS-R); the first injection of every treated patient is at month 0
VISITS = [
    # A: run-in -1/month; cycle 1 (0..3) -1/3; cycle 2 (3..9) -1/2; overall (0..9) -0.4
    ("A", -6, 46), ("A", -3, 43), ("A", 0, 40), ("A", 3, 39), ("A", 6, 39), ("A", 9, 36),
    # B: rising run-in (+1/3/month): no decline to slow
    ("B", -6, 30), ("B", -3, 31), ("B", 0, 32), ("B", 3, 31), ("B", 6, 30),
    # C: never injected, -0.5/month
    ("C", -6, 45), ("C", -3, 44), ("C", 0, 42),
    # D: run-in -2, after -1: reduction 0.5
    ("D", -4, 44), ("D", -2, 40), ("D", 0, 36), ("D", 2, 34), ("D", 4, 32),
    # E: run-in -1, after -2/3: reduction 1/3
    ("E", -3, 40), ("E", 0, 37), ("E", 3, 35),
    # F: one run-in visit only: no run-in slope
    ("F", 0, 38), ("F", 3, 37), ("F", 6, 36),
    # G: run-in -0.5, after -1: reduction -1 (faster decline)
    ("G", -4, 44), ("G", 0, 42), ("G", 2, 40),
    # H: run-in -1, after -0.9: reduction 0.1
    ("H", -3, 40), ("H", 0, 37), ("H", 10, 28),
]
INJECTIONS = [("A", 0), ("A", 3), ("B", 0), ("D", 0), ("E", 0), ("F", 0), ("G", 0), ("H", 0)]


def _data() -> TrialData:
    visits = pd.DataFrame(VISITS, columns=["patient", "time", "alsfrs_r"])
    inj = pd.DataFrame(INJECTIONS, columns=["patient", "time"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # F's short run-in, C never injected
        return TrialData.from_frames(visits, inj)


@pytest.fixture(scope="module")
def data() -> TrialData:
    return _data()


@pytest.fixture(scope="module")
def result(data) -> ClassicalResult:
    return classical_analysis(data, threshold=0.25)


def _cell(table: pd.DataFrame, patient: str, segment: str) -> pd.Series:
    row = table[(table["patient"] == patient) & (table["segment"] == segment)]
    assert len(row) == 1, (patient, segment)
    return row.iloc[0]


def test_slopes_exact(data):
    s = classical_slopes(data)
    assert list(s.columns) == ["patient", "segment", "n_visits", "slope", "reduction",
                               "responder", "note"]
    a = {seg: _cell(s, "A", seg) for seg in ("run-in", "cycle 1", "cycle 2", "overall")}
    assert a["run-in"]["slope"] == pytest.approx(-1.0)
    assert a["run-in"]["n_visits"] == 3 and np.isnan(a["run-in"]["reduction"])
    # cycle 1 is months 0..3 (both injection-day visits), cycle 2 months 3..9
    assert a["cycle 1"]["n_visits"] == 2 and a["cycle 1"]["slope"] == pytest.approx(-1 / 3)
    assert a["cycle 2"]["n_visits"] == 3 and a["cycle 2"]["slope"] == pytest.approx(-0.5)
    assert a["overall"]["n_visits"] == 4 and a["overall"]["slope"] == pytest.approx(-0.4)
    assert a["cycle 1"]["reduction"] == pytest.approx(2 / 3)
    assert a["cycle 2"]["reduction"] == pytest.approx(0.5)
    assert a["overall"]["reduction"] == pytest.approx(0.6)
    assert bool(a["overall"]["responder"]) and a["overall"]["note"] == ""
    assert _cell(s, "D", "overall")["reduction"] == pytest.approx(0.5)
    assert _cell(s, "E", "overall")["reduction"] == pytest.approx(1 / 3)
    g = _cell(s, "G", "overall")
    assert g["reduction"] == pytest.approx(-1.0) and not bool(g["responder"])
    assert _cell(s, "H", "overall")["reduction"] == pytest.approx(0.1)
    assert s.attrs["note"] == CLASSICAL_CAVEAT


def test_rising_runin_and_missing_runin_are_nan_with_a_note(data):
    s = classical_slopes(data)
    pre = _cell(s, "B", "run-in")
    assert pre["slope"] == pytest.approx(1 / 3) and "no decline to slow" in pre["note"]
    for seg in ("cycle 1", "overall"):
        row = _cell(s, "B", seg)
        assert row["slope"] == pytest.approx(-1 / 3)  # the slope itself is still reported
        assert np.isnan(row["reduction"]) and pd.isna(row["responder"])
        assert "no decline to slow" in row["note"]
    f = _cell(s, "F", "overall")
    assert np.isnan(_cell(s, "F", "run-in")["slope"])
    assert np.isnan(f["reduction"]) and "fewer than 2 visits in the run-in" in f["note"]
    # a stricter min_visits leaves A's 2-visit cycle 1 without a slope
    s3 = classical_slopes(data, min_visits=3)
    assert np.isnan(_cell(s3, "A", "cycle 1")["slope"])
    assert "fewer than 3 visits in cycle 1" in _cell(s3, "A", "cycle 1")["note"]
    with pytest.raises(ValueError, match="min_visits"):
        classical_slopes(data, min_visits=1)


def test_untreated_patients_are_reported_apart(data, result):
    s = classical_slopes(data)
    assert list(s.loc[s["patient"] == "C", "segment"]) == ["run-in", "overall"]
    assert _cell(s, "C", "run-in")["slope"] == pytest.approx(-0.5)
    assert _cell(s, "C", "overall")["note"] == "never injected"
    pts = result.patients.set_index("patient")
    assert pts.loc["C", "group"] == "untreated"
    assert (pts.drop("C")["group"] == "treated").all()
    r = result.responders.set_index("scope")
    assert set(result.responders["group"]) == {"treated"}
    # cycle 1: A, D, E responders, G not (B rising run-in, F no run-in, C untreated: out)
    assert r.loc["cycle 1", "label"] == "3/5"  # H (0.1) is evaluable too
    assert r.loc["cycle 2", "label"] == "1/1"
    assert r.loc["overall", "label"] == "3/5"
    assert result.comparisons == {}


def test_wilcoxon_matches_scipy(result):
    pts = result.patients.set_index("patient")
    used = ["A", "B", "D", "E", "G", "H"]  # treated with both slopes (C untreated, F no run-in)
    pre = pts.loc[used, "pre_slope"].to_numpy(float)
    post = pts.loc[used, "post_slope"].to_numpy(float)
    ref = stats.wilcoxon(post, pre, alternative="two-sided")
    w = result.wilcoxon
    assert w["n"] == len(used)
    assert w["statistic"] == pytest.approx(float(ref.statistic))
    assert w["p_value"] == pytest.approx(float(ref.pvalue))
    assert w["median_difference"] == pytest.approx(float(np.median(post - pre)))
    assert result.mean_improvement_pct == pytest.approx(100 * np.mean([0.6, 0.5, 1 / 3, -1.0,
                                                                       0.1]))
    assert "Wilcoxon signed-rank" in result.summary()
    assert "3/5 evaluable treated patients were responders" in result.summary()


def test_control_arm_mann_whitney(data):
    arm = pd.Series("treated", index=data.patients.index)
    arm[["E", "G", "H"]] = "control"
    two_arm = dataclasses.replace(data, patients=data.patients.assign(arm=arm))
    res = classical_analysis(two_arm)
    pts = res.patients.set_index("patient")
    assert set(pts.loc[["E", "G", "H"], "group"]) == {"control"}
    assert res.wilcoxon["n"] == 3  # A, B, D
    change_t = (pts.loc[["A", "B", "D"], "post_slope"] - pts.loc[["A", "B", "D"], "pre_slope"])
    change_c = (pts.loc[["E", "G", "H"], "post_slope"] - pts.loc[["E", "G", "H"], "pre_slope"])
    ref = stats.mannwhitneyu(change_t, change_c, alternative="two-sided")
    c = res.comparisons["control"]
    assert (c["n_treated"], c["n_control"]) == (3, 3)
    assert c["statistic"] == pytest.approx(float(ref.statistic))
    assert c["p_value"] == pytest.approx(float(ref.pvalue))
    control = res.responders[res.responders["group"] == "control"].set_index("scope")
    assert control.loc["overall", "label"] == "1/3"  # E 1/3 > 0.25; G, H not
    assert "control arm" in res.summary()


def test_side_by_side_agreement(result):
    fit_patients = pd.DataFrame({
        "patient": list("ABCDEFGH"),
        "status": ["treated"] * 2 + ["untreated"] + ["treated"] * 5,
        "mean": [0.5, 0.1, np.nan, 0.3, 0.2, 0.4, 0.3, 0.0],
        "p_gt_0.25": [0.95, 0.3, np.nan, 0.5, 0.9, 0.99, 0.92, 0.2],
    })
    t = side_by_side(result, fit_patients, 0.25).set_index("patient")
    assert t.loc["A", "agreement"] == "both responder"
    assert t.loc["D", "agreement"] == "classical only"
    assert t.loc["E", "agreement"] == "both responder"  # P = 0.9 counts (P >= 0.9)
    assert t.loc["G", "agreement"] == "Bayesian only"
    assert t.loc["H", "agreement"] == "neither"
    for p in ("B", "C", "F"):  # rising run-in, untreated, no run-in slope
        assert t.loc[p, "agreement"] == "not evaluable"
    assert t.loc["A", "classical_reduction"] == pytest.approx(0.6)
    assert t.loc["A", "bayesian_mean"] == 0.5 and t.loc["A", "bayesian_p_gt_0.25"] == 0.95
    assert "38%" in t.attrs["note"] and "regression to the mean" in t.attrs["note"]
    with pytest.raises(ValueError, match="p_gt_0.5"):
        side_by_side(result, fit_patients, 0.5)


def test_reexported():
    assert slopeshift.classical_analysis is classical_analysis
    assert "classical_analysis" in slopeshift.__all__


def test_fit_classical(small_fit):
    from slopeshift.report import _classical_html

    t = small_fit.classical(0.25)
    assert len(t) == len(small_fit.data.patients)
    assert {"classical_reduction", "classical_responder", "bayesian_mean", "bayesian_p_gt_0.25",
            "bayesian_responder", "agreement"} <= set(t.columns)
    assert set(t["agreement"]) <= {"both responder", "classical only", "Bayesian only",
                                   "neither", "not evaluable"}
    untreated = small_fit.data.patients.index[~small_fit.data.patients["treated"]]
    assert (t.set_index("patient").loc[untreated, "agreement"] == "not evaluable").all()
    html = _classical_html(small_fit, 0.25)
    assert "Wilcoxon signed-rank" in html and "<table>" in html and "38%" in html


def test_followup_table_splits_by_follow_up_and_averages_the_slopes(data):
    """Follow-up after the first injection: A 9, H 10 months (the 90th percentile is 9.4,
    so under 7.52 is "for less"): B 6, D 4, E 3, F 6, G 2; C was never injected."""
    t = followup_table(data)
    assert list(t["followed"]) == ["to the end", "for less"]
    assert (t["group"] == "treated").all()
    end, less = t.iloc[0], t.iloc[1]
    assert (end["patients"], less["patients"]) == (2, 5)
    assert (end["followup_min"], end["followup_max"]) == (9.0, 10.0)
    assert (less["followup_min"], less["followup_max"]) == (2.0, 6.0)
    assert end["post_slope"] == pytest.approx((-0.4 - 0.9) / 2)
    assert end["pre_slope"] == pytest.approx(-1.0)
    assert end["change"] == pytest.approx((0.6 + 0.1) / 2)
    # F has no run-in slope (one run-in visit): it counts in the post-injection mean only
    assert less["post_slope"] == pytest.approx(-(1 / 3 + 1 + 2 / 3 + 1 / 3 + 1) / 5)
    assert less["pre_slope"] == pytest.approx((1 / 3 - 2 - 1 - 0.5) / 4)
    assert less["change"] == pytest.approx((-2 / 3 + 1 + 1 / 3 - 0.5) / 4)
    assert less["with_post_slope"] == 5
    assert t.attrs["note"] == FOLLOWUP_NOTE
    text = followup_summary(t)
    assert text.startswith("5 of 7 treated patients were followed for less (2.0-6.0 months")
    assert "declined at -0.67 points/month (run-in -0.79, change +0.04)" in text
    assert "followed to the end (9.0-10.0 months) declined at -0.65" in text
    assert "%/month" in followup_summary(t, "%")


def test_followup_table_sees_dropout_of_fast_decliners_and_not_where_there_is_none():
    from slopeshift import simulate_realistic_trial

    kw = dict(n_controls=20, enrolment_max_slope="median", gaps=(3.0,), random_seed=7)
    none, _ = simulate_realistic_trial(40, dropout=False, **kw)
    t = followup_table(none)
    assert list(t["followed"]) == ["to the end", "to the end"]
    assert list(t["group"]) == ["treated", "control"]
    assert followup_summary(t).startswith("Every treated patient was followed to the end")
    # heavy dropout on the current pace: those who left had declined faster after the
    # injection than those followed to the end, in both arms
    heavy, truth = simulate_realistic_trial(40, dropout=0.05, **kw)
    t = followup_table(heavy).set_index(["group", "followed"])
    for arm in ("treated", "control"):
        assert t.loc[(arm, "for less"), "post_slope"] < t.loc[(arm, "to the end"), "post_slope"]
    assert t.loc[("treated", "for less"), "patients"] >= 10
