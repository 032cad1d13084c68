"""Validation and conversion of trial tables (TrialData); no sampling."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from slopeshift.data import ALSFRS_ITEMS, DAYS_PER_MONTH, TrialData
from slopeshift.errors import DataValidationError, DataWarning

# --------------------------------------------------------------------------- helpers
# A clean trial in raw months (arbitrary origin):
#   A: visits at 10, 12, 14, 16, 18; injections at 14 and 17 (months -4, -2, 0, 2, 4; tau 0, 3)
#   B: visits at 0, 1, 2, 4; one injection at 2 (months -2, -1, 0, 2)
#   C: never injected; visits at 5, 7, 9 (months -4, -2, 0 from the last visit)


def visits_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient": ["A"] * 5 + ["B"] * 4 + ["C"] * 3,
            "time": [10, 12, 14, 16, 18, 0, 1, 2, 4, 5, 7, 9],
            "alsfrs_r": [40, 39, 38, 38, 37, 30, 29, 28, 28, 44, 43, 42],
        }
    )


def injections_frame() -> pd.DataFrame:
    return pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 17, 2]})


def patients_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"patient": ["A", "B", "C"], "age": [50.0, 61.5, 44.0], "sex": ["M", "F", "M"]}
    )


def build(visits=None, injections=None, patients=None, **kwargs) -> TrialData:
    """from_frames on the clean trial (or the given tables), failing on any unexpected warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return TrialData.from_frames(
            visits_frame() if visits is None else visits,
            injections_frame() if injections is None else injections,
            patients,
            **kwargs,
        )


def problems_of(excinfo) -> list[str]:
    return excinfo.value.problems


def item_visits(rows: list[list[int]], times: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(ALSFRS_ITEMS))
    frame.insert(0, "time", times)
    frame.insert(0, "patient", "A")
    return frame


# --------------------------------------------------------------------------- clean data
def test_clean_trial_is_accepted_without_warning():
    data = build()
    assert data.patient_ids == ["A", "B", "C"]
    assert data.outcome == "alsfrs_r"
    assert data.time_kind == "months"
    assert data.n_cycles == 2
    assert data.dropped.empty
    assert data.patients["treated"].tolist() == [True, True, False]
    assert data.patients["n_injections"].tolist() == [2, 1, 0]
    assert data.patients["n_visits"].tolist() == [5, 4, 3]
    assert data.patients["n_runin_visits"].tolist() == [3, 3, 3]
    assert data.injections["cycle"].tolist() == [1, 2, 1]
    assert data.unobserved_cycles() == []


def test_on_missing_must_be_raise_or_drop():
    with pytest.raises(ValueError, match="on_missing must be 'raise' or 'drop'"):
        TrialData.from_frames(visits_frame(), injections_frame(), on_missing="ignore")


# --------------------------------------------------------------------------- columns
def test_missing_visit_column_is_named():
    with pytest.raises(DataValidationError, match=r"visits: missing column\(s\) 'alsfrs_r'"):
        build(visits=visits_frame().drop(columns="alsfrs_r"))


def test_missing_injection_column_is_named():
    with pytest.raises(DataValidationError, match=r"injections: missing column\(s\) 'time'") as e:
        build(injections=injections_frame().drop(columns="time"))
    assert len(problems_of(e)) == 1
    assert "found ['patient']" in problems_of(e)[0]


def test_missing_columns_of_both_tables_are_listed_together():
    with pytest.raises(DataValidationError) as e:
        build(
            visits=visits_frame().drop(columns=["patient", "alsfrs_r"]),
            injections=injections_frame().drop(columns="patient"),
        )
    probs = problems_of(e)
    assert len(probs) == 2
    assert probs[0].startswith("visits: missing column(s) 'patient', 'alsfrs_r'")
    assert probs[1].startswith("injections: missing column(s) 'patient'")


def test_missing_patient_id_is_reported_with_its_row():
    v = visits_frame().astype({"patient": object})
    v.loc[3, "patient"] = None
    with pytest.raises(DataValidationError, match=r"visits row 3: patient id in 'patient'"):
        build(visits=v)


# --------------------------------------------------------------------------- patients
def test_unknown_patient_in_injections_with_patients_table():
    inj = pd.concat(
        [injections_frame(), pd.DataFrame({"patient": ["Z"], "time": [3]})], ignore_index=True
    )
    z = pd.DataFrame({"patient": ["Z"] * 2, "time": [1, 5], "alsfrs_r": [30, 29]})
    v = pd.concat([visits_frame(), z], ignore_index=True)
    with pytest.raises(DataValidationError) as e:
        build(visits=v, injections=inj, patients=patients_frame())
    probs = problems_of(e)
    assert "injections row 3: unknown patient id(s) Z (not in patients)." in probs
    assert "visits rows 12, 13: unknown patient id(s) Z (not in patients)." in probs


def test_injected_but_never_visited():
    inj = pd.concat(
        [injections_frame(), pd.DataFrame({"patient": ["Z"], "time": [3]})], ignore_index=True
    )
    with pytest.raises(
        DataValidationError,
        match=r"injections row 3: patient\(s\) Z were injected but have no visit in visits",
    ) as e:
        build(injections=inj)
    assert len(problems_of(e)) == 1


def test_patient_ids_are_strings_and_match_across_tables():
    v = visits_frame().replace({"patient": {"A": 7, "B": 8, "C": 9}})
    inj = injections_frame().replace({"patient": {"A": 7, "B": 8}})
    data = build(visits=v, injections=inj)
    assert data.patient_ids == ["7", "8", "9"]
    assert data.visits["patient"].tolist()[:2] == ["7", "7"]
    assert data.injections["patient"].tolist() == ["7", "7", "8"]


# --------------------------------------------------------------------------- scores
def test_duplicated_visit_names_patient_and_rows():
    v = visits_frame()
    v.loc[3, "time"] = 14  # A already has a visit at 14 (row 2)
    with pytest.raises(
        DataValidationError,
        match=r"visits rows 2, 3: patient A has more than one visit at time = 14",
    ) as e:
        build(visits=v)
    assert len(problems_of(e)) == 1


def test_same_time_for_different_patients_is_not_a_duplicate():
    v = visits_frame()
    v.loc[9:11, "time"] = [0, 1, 2]  # C's raw times now equal B's first three
    data = build(visits=v)
    assert len(data.visits) == 12
    assert data.visits.loc[data.visits["patient"] == "C", "month"].tolist() == [-2.0, -1.0, 0.0]


def test_non_numeric_score():
    v = visits_frame().astype({"alsfrs_r": object})
    v.loc[6, "alsfrs_r"] = "n/a?"
    with pytest.raises(
        DataValidationError, match=r"visits row 6: column 'alsfrs_r' is not a number \('n/a\?'\)"
    ):
        build(visits=v)


def test_non_numeric_score_is_not_dropped_by_on_missing_drop():
    v = visits_frame().astype({"alsfrs_r": object})
    v.loc[6, "alsfrs_r"] = "abc"
    with pytest.raises(DataValidationError, match=r"visits row 6: column 'alsfrs_r'"):
        build(visits=v, on_missing="drop")


def test_missing_score_raises_by_default():
    v = visits_frame().astype({"alsfrs_r": float})
    v.loc[4, "alsfrs_r"] = np.nan
    with pytest.raises(
        DataValidationError,
        match=r"visits row 4: ALSFRS-R total is missing \(patients A\).*on_missing='drop'",
    ) as e:
        build(visits=v)
    assert len(problems_of(e)) == 1


def test_missing_score_dropped_with_warning():
    v = visits_frame().astype({"alsfrs_r": float})
    v.loc[1, "alsfrs_r"] = np.nan
    v.loc[6, "alsfrs_r"] = np.nan
    with pytest.warns(
        DataWarning, match=r"2 visit\(s\) dropped for a missing ALSFRS-R total: visits rows 1, 6"
    ) as rec:
        data = TrialData.from_frames(v, injections_frame(), on_missing="drop")
    assert len(rec) == 1
    assert data.dropped.to_dict("records") == [
        {"table": "visits", "row": 1, "patient": "A", "reason": "missing ALSFRS-R total"},
        {"table": "visits", "row": 6, "patient": "B", "reason": "missing ALSFRS-R total"},
    ]
    assert len(data.visits) == 10
    assert data.visits["value"].notna().all()
    assert data.patients["n_visits"].tolist() == [4, 3, 3]
    assert data.patients["n_runin_visits"].tolist() == [2, 2, 3]
    # A's visit at month -2 (raw 12) is gone; the others stay
    a = data.visits[data.visits["patient"] == "A"]
    assert a["month"].tolist() == [-4.0, 0.0, 2.0, 4.0]
    assert a["value"].tolist() == [40.0, 38.0, 38.0, 37.0]
    assert any("dropped" in n for n in data.notes)


@pytest.mark.parametrize("bad", [49, -1])
def test_out_of_range_score(bad):
    v = visits_frame()
    v.loc[7, "alsfrs_r"] = bad
    with pytest.raises(
        DataValidationError,
        match=rf"visits row 7 \(patient \w+\): column 'alsfrs_r': ALSFRS-R total out of range "
        rf"0-48 \(points\); found {bad}\.",
    ):
        build(visits=v)


def test_score_range_bounds_are_inclusive():
    v = visits_frame()
    v.loc[0, "alsfrs_r"] = 48
    v.loc[8, "alsfrs_r"] = 0
    data = build(visits=v)
    assert data.visits["value"].max() == 48.0
    assert data.visits["value"].min() == 0.0


def test_non_integer_alsfrs_total():
    v = visits_frame().astype({"alsfrs_r": float})
    v.loc[1, "alsfrs_r"] = 38.5
    with pytest.raises(
        DataValidationError,
        match=r"visits row 1: ALSFRS-R total must be a whole number of points; found 38\.5\.",
    ):
        build(visits=v)


def test_infinite_score():
    v = visits_frame().astype({"alsfrs_r": float})
    v.loc[2, "alsfrs_r"] = np.inf
    with pytest.raises(DataValidationError, match=r"visits row 2: ALSFRS-R total is infinite"):
        build(visits=v)


# --------------------------------------------------------------------------- times
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bad_visit_time(bad):
    v = visits_frame().astype({"time": float})
    v.loc[6, "time"] = bad
    with pytest.raises(
        DataValidationError,
        match=r"visits row 6 \(patient \w+\): column 'time' must be a number of months; found "
        r"missing, "
        r"infinite or unreadable values",
    ) as e:
        build(visits=v)
    assert len(problems_of(e)) == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_injection_time(bad):
    inj = injections_frame().astype({"time": float})
    inj.loc[1, "time"] = bad
    with pytest.raises(
        DataValidationError,
        match=r"injections row 1 \(patient \w+\): column 'time' must be a number of months"
    ):
        build(injections=inj)


def test_unreadable_date():
    v = pd.DataFrame(
        {
            "patient": ["A"] * 3,
            "time": ["2021-01-01", "not a date", "2021-06-01"],
            "alsfrs_r": [40, 39, 38],
        }
    )
    inj = pd.DataFrame({"patient": ["A"], "time": ["2021-03-02"]})
    with pytest.raises(
        DataValidationError,
        match=r"visits row 1 \(patient A\): column 'time' must be a date \(e\.g\. 2021-03-15\)"
        r".*'not a date'",
    ):
        build(visits=v, injections=inj)


def test_dates_in_visits_and_months_in_injections():
    v = visits_frame()
    v["time"] = pd.Timestamp("2021-01-01") + pd.to_timedelta(v["time"] * 30, unit="D")
    with pytest.raises(
        DataValidationError,
        match=r"visits give 'time' as date but injections give it as months",
    ):
        build(visits=v)


def test_months_in_visits_and_dates_in_injections():
    inj = injections_frame()
    inj["time"] = ["2021-01-01", "2021-04-01", "2021-01-01"]
    with pytest.raises(
        DataValidationError,
        match=r"visits give 'time' as months but injections give it as date",
    ):
        build(injections=inj)


def test_dates_converted_to_months_since_first_injection():
    v = pd.DataFrame(
        {
            "patient": ["A"] * 4,
            "time": ["2021-01-01", "2021-03-02", "2021-06-01", "2021-09-01"],
            "alsfrs_r": [40, 39, 38, 37],
        }
    )
    inj = pd.DataFrame({"patient": ["A", "A"], "time": ["2021-03-02", "2021-07-01"]})
    data = build(visits=v, injections=inj)
    assert data.time_kind == "date"
    # day offsets from 2021-03-02: -60, 0, 91, 183; second injection +121
    np.testing.assert_allclose(
        data.visits["month"], np.array([-60, 0, 91, 183]) / DAYS_PER_MONTH, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(data.injections["month"], [0.0, 121 / DAYS_PER_MONTH], atol=1e-12)
    assert DAYS_PER_MONTH == 30.4375
    # the original times are kept as given
    assert data.visits["time"].tolist()[0] == "2021-01-01"


def test_datetime_and_text_dates_mix():
    v = pd.DataFrame(
        {
            "patient": ["A"] * 3,
            "time": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]),
            "alsfrs_r": [40, 39, 38],
        }
    )
    inj = pd.DataFrame({"patient": ["A"], "time": ["2020-02-01"]})
    data = build(visits=v, injections=inj)
    np.testing.assert_allclose(
        data.visits["month"], np.array([-31, 0, 29]) / DAYS_PER_MONTH, atol=1e-12
    )


def test_numeric_months_shifted_to_first_injection():
    data = build()
    vis = data.visits
    assert vis.loc[vis["patient"] == "A", "month"].tolist() == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert vis.loc[vis["patient"] == "B", "month"].tolist() == [-2.0, -1.0, 0.0, 2.0]
    assert vis.loc[vis["patient"] == "A", "time"].tolist() == [10, 12, 14, 16, 18]
    assert data.injections["month"].tolist() == [0.0, 3.0, 0.0]
    assert data.injections["time"].tolist() == [14, 17, 2]


def test_untreated_patient_kept_with_months_relative_to_last_visit():
    data = build()
    c = data.visits[data.visits["patient"] == "C"]
    assert c["month"].tolist() == [-4.0, -2.0, 0.0]
    assert (c["month"] <= 0).all()
    assert c["value"].tolist() == [44.0, 43.0, 42.0]
    row = data.patients.loc["C"]
    assert not row["treated"]
    assert row["n_injections"] == 0
    assert row["n_runin_visits"] == 3
    assert "C" not in set(data.injections["patient"])
    assert any(n.startswith("untreated") and n.endswith(": C") for n in data.notes)


def test_visits_are_sorted_by_patient_and_month():
    v = visits_frame().iloc[::-1].reset_index(drop=True)
    data = build(visits=v)
    assert data.visits["patient"].tolist() == ["A"] * 5 + ["B"] * 4 + ["C"] * 3
    assert data.visits["month"].tolist()[:5] == [-4.0, -2.0, 0.0, 2.0, 4.0]


# --------------------------------------------------------------------------- cycles
def test_cycle_numbers_contradicting_time_order():
    inj = pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 17, 2], "cycle": [2, 1, 1]})
    with pytest.raises(
        DataValidationError,
        match=r"injections rows 0, 1: patient A's cycle numbers \[2, 1\] contradict the time "
        r"order of the injections \(expected \[1, 2\]",
    ) as e:
        build(injections=inj)
    assert len(problems_of(e)) == 1


def test_cycle_numbers_agreeing_with_time_order_are_accepted_in_any_row_order():
    inj = pd.DataFrame({"patient": ["A", "B", "A"], "time": [17, 2, 14], "cycle": [2.0, 1.0, 1.0]})
    data = build(injections=inj)
    assert data.injections[["patient", "cycle"]].values.tolist() == [["A", 1], ["A", 2], ["B", 1]]
    assert data.injections["month"].tolist() == [0.0, 3.0, 0.0]
    assert list(data.injections.columns) == ["patient", "time", "month", "cycle"]


def test_cycle_number_must_be_whole_and_positive():
    inj = pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 17, 2], "cycle": [1, 1.5, 0]})
    with pytest.raises(
        DataValidationError, match=r"injections rows 1, 2: column 'cycle' must be a whole number"
    ):
        build(injections=inj)


def test_two_injections_at_the_same_time():
    inj = pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 14, 2]})
    with pytest.raises(
        DataValidationError,
        match=r"injections rows 0, 1: patient A has two injections at time = 14",
    ):
        build(injections=inj)


def test_extra_injection_columns_are_kept_per_cycle():
    inj = injections_frame()
    inj["dose"] = [1.0, 2.0, 1.5]
    data = build(injections=inj)
    assert list(data.injections.columns) == ["patient", "time", "month", "cycle", "dose"]
    assert data.injections["dose"].tolist() == [1.0, 2.0, 1.5]


# --------------------------------------------------------------------------- items, FVC
def test_alsfrs_items_give_total_and_domains():
    rows = [
        [4, 4, 3, 3, 2, 2, 1, 1, 0, 4, 4, 4],  # bulbar 11, fine 7, gross 2, resp 12 -> 32
        [3, 3, 3, 2, 2, 2, 1, 1, 1, 4, 3, 2],  # 9, 6, 3, 9 -> 27
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # 0
        [4] * 12,  # 48
    ]
    v = item_visits(rows, [0, 1, 2, 3])
    data = build(visits=v, injections=pd.DataFrame({"patient": ["A"], "time": [1]}))
    vis = data.visits
    assert vis["value"].tolist() == [32.0, 27.0, 0.0, 48.0]
    assert vis["bulbar"].tolist() == [11, 9, 0, 12]
    assert vis["fine_motor"].tolist() == [7, 6, 0, 12]
    assert vis["gross_motor"].tolist() == [2, 3, 0, 12]
    assert vis["respiratory"].tolist() == [12, 9, 0, 12]
    domains = vis[["bulbar", "fine_motor", "gross_motor", "respiratory"]].sum(axis=1)
    assert domains.tolist() == vis["value"].tolist()


@pytest.mark.parametrize("bad", [5, -1, 2.5])
def test_alsfrs_item_out_of_range(bad):
    rows = [[2] * 12, [2] * 12, [2] * 12]
    v = item_visits(rows, [0, 1, 2]).astype({"q5": float})
    v.loc[1, "q5"] = bad
    with pytest.raises(
        DataValidationError,
        match=rf"visits row 1: ALSFRS-R item 'q5' must be 0, 1, 2, 3 or 4; found {bad:g}\.",
    ):
        build(visits=v, injections=pd.DataFrame({"patient": ["A"], "time": [1]}))


def test_alsfrs_missing_item_is_a_missing_total():
    rows = [[2] * 12, [2] * 12, [2] * 12, [2] * 12]
    v = item_visits(rows, [0, 1, 2, 3]).astype({"r3": float})
    v.loc[3, "r3"] = np.nan
    inj = pd.DataFrame({"patient": ["A"], "time": [1]})
    with pytest.raises(DataValidationError, match=r"visits row 3: ALSFRS-R total is missing"):
        build(visits=v, injections=inj)
    with pytest.warns(DataWarning, match=r"1 visit\(s\) dropped"):
        data = TrialData.from_frames(v, inj, on_missing="drop")
    assert data.dropped["row"].tolist() == [3]
    assert data.visits["value"].tolist() == [24.0, 24.0, 24.0]


def test_alsfrs_custom_item_columns():
    cols = [f"item{j}" for j in range(1, 13)]
    v = item_visits([[1] * 12, [2] * 12, [3] * 12], [0, 1, 2])
    v.columns = ["patient", "time", *cols]
    data = build(visits=v, injections=pd.DataFrame({"patient": ["A"], "time": [1]}), item_cols=cols)
    assert data.visits["value"].tolist() == [12.0, 24.0, 36.0]
    assert data.visits["bulbar"].tolist() == [3, 6, 9]
    with pytest.raises(ValueError, match="item_cols must name the 12 ALSFRS-R items; got 3"):
        TrialData.from_frames(v, pd.DataFrame({"patient": ["A"], "time": [1]}), item_cols=cols[:3])


def test_fvc_outcome():
    v = pd.DataFrame(
        {
            "patient": ["A"] * 4,
            "time": [0, 1, 2, 3],
            "fvc": [81.5, 80.25, 77.0, 74.75],
            "alsfrs_r": [40, 39, 99, 37],
        }  # an unused column is not validated
    )
    data = build(visits=v, injections=pd.DataFrame({"patient": ["A"], "time": [1]}), outcome="fvc")
    assert data.outcome == "fvc"
    assert data.spec.label == "FVC"
    assert data.spec.unit == "% predicted"
    assert data.visits["value"].tolist() == [81.5, 80.25, 77.0, 74.75]
    assert "alsfrs_r" not in data.visits.columns


def test_fvc_out_of_range_and_missing_column():
    v = pd.DataFrame({"patient": ["A"] * 3, "time": [0, 1, 2], "fvc": [80.0, 250.0, -3.0]})
    inj = pd.DataFrame({"patient": ["A"], "time": [1]})
    with pytest.raises(
        DataValidationError,
        match=r"visits rows 1, 2 \(patient A\): column 'fvc': FVC out of range 0-200 "
        r"\(% predicted\); found 250, -3\.",
    ):
        build(visits=v, injections=inj, outcome="fvc")
    with pytest.raises(DataValidationError, match=r"visits: missing column\(s\) 'fvc'"):
        build(visits=v.rename(columns={"fvc": "FVC"}), injections=inj, outcome="fvc")


# --------------------------------------------------------------------------- warnings
def test_warns_fewer_than_two_runin_visits():
    inj = pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 17, 0]})  # B: only month 0
    with pytest.warns(DataWarning, match=r"patient\(s\) B have fewer than 2 run-in visits"):
        data = TrialData.from_frames(visits_frame(), inj)
    assert data.patients.loc["B", "n_runin_visits"] == 1
    assert data.patients.loc["A", "n_runin_visits"] == 3
    assert any("fewer than 2 run-in visits" in n for n in data.notes)


def test_warns_cycle_without_visit():
    # A's second injection at 18 is at its last visit: nothing observed after it
    inj = pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 18, 2]})
    with pytest.warns(DataWarning, match=r"no visit during A cycle 2"):
        data = TrialData.from_frames(visits_frame(), inj)
    assert data.unobserved_cycles() == [("A", 2)]


def test_unobserved_middle_cycle():
    # A injected at 14, 15, 17: no visit in (14, 15] -> cycle 1 unobserved; 16 and 18 observe
    # cycles 2 and 3
    inj = pd.DataFrame({"patient": ["A", "A", "A", "B"], "time": [14, 15, 17, 2]})
    with pytest.warns(DataWarning, match=r"no visit during A cycle 1:"):
        data = TrialData.from_frames(visits_frame(), inj)
    assert data.unobserved_cycles() == [("A", 1)]


def test_visit_at_next_injection_counts_for_the_cycle_before():
    # A injected at 14 and 16; the visit at 16 closes cycle 1, the visit at 18 is in cycle 2
    inj = pd.DataFrame({"patient": ["A", "A", "B"], "time": [14, 16, 2]})
    data = build(injections=inj)
    assert data.unobserved_cycles() == []


# --------------------------------------------------------------------------- together
def test_several_problems_reported_together():
    v = visits_frame().astype({"alsfrs_r": object, "time": float})
    v.loc[0, "alsfrs_r"] = 49  # out of range
    v.loc[1, "alsfrs_r"] = "x"  # not a number
    v.loc[2, "alsfrs_r"] = None  # missing
    v.loc[5, "alsfrs_r"] = 28.5  # not whole
    v.loc[6, "time"] = np.nan  # missing time
    with pytest.raises(DataValidationError) as e:
        build(visits=v)
    probs = problems_of(e)
    assert len(probs) == 5
    joined = "\n".join(probs)
    for pattern in [
        r"visits row 0 \(patient A\): column 'alsfrs_r': ALSFRS-R total out of range 0-48",
        r"visits row 1: column 'alsfrs_r' is not a number",
        r"visits row 2: ALSFRS-R total is missing \(patients A\)",
        r"visits row 5: ALSFRS-R total must be a whole number",
        r"visits row 6 \(patient B\): column 'time' must be a number of months",
    ]:
        assert re.search(pattern, joined), pattern
    assert str(e.value).startswith("5 problems in the input data:")


def test_several_structural_problems_reported_together():
    v = visits_frame()
    v.loc[3, "time"] = 14  # duplicate visit of A
    inj = pd.DataFrame(
        {"patient": ["A", "A", "B", "Q"], "time": [14, 14, 2, 1]}  # same time twice; Q unvisited
    )
    with pytest.raises(DataValidationError) as e:
        build(visits=v, injections=inj)
    probs = problems_of(e)
    assert len(probs) == 3
    assert any("patient A has more than one visit" in p for p in probs)
    assert any("patient A has two injections" in p for p in probs)
    assert any("patient(s) Q were injected but have no visit" in p for p in probs)


# --------------------------------------------------------------------------- patients table
def test_patients_table_two_level_text_column_coded():
    data = build(patients=patients_frame())
    assert data.covariates == ["age", "sex[M]"]
    assert data.patients["sex[M]"].tolist() == [1.0, 0.0, 1.0]
    assert data.patients["age"].tolist() == [50.0, 61.5, 44.0]
    assert "sex" not in data.patients.columns


def test_patients_table_missing_covariate_names_patient():
    p = patients_frame()
    p.loc[1, "age"] = np.nan
    with pytest.raises(
        DataValidationError,
        match=r"patients row 1: covariate 'age' is missing or not finite for patient\(s\) B\.",
    ):
        build(patients=p)


def test_patients_table_missing_text_covariate_names_patient():
    p = patients_frame()
    p.loc[2, "sex"] = None
    with pytest.raises(
        DataValidationError,
        match=r"patients row 2: covariate 'sex' is missing or not finite for patient\(s\) C\.",
    ):
        build(patients=p)


def test_patients_table_text_column_with_three_levels():
    p = patients_frame()
    p["site"] = ["north", "south", "east"]
    with pytest.raises(
        DataValidationError, match=r"patients column 'site': covariates must be numeric or have two"
    ):
        build(patients=p)


def test_patients_table_duplicate_id():
    p = pd.concat([patients_frame(), patients_frame().iloc[[1]]], ignore_index=True)
    with pytest.raises(
        DataValidationError, match=r"patients rows 1, 3: patient id\(s\) B appear more than once"
    ):
        build(patients=p)


# --------------------------------------------------------------------------- CSV
def write(path, text: str):
    path.write_text(text)
    return path


def test_from_csv_reads_a_clean_trial(tmp_path):
    v = write(tmp_path / "visits.csv", "patient,time,alsfrs_r\nA,0,40\nA,2,39\nA,4,37\n")
    i = write(tmp_path / "inj.csv", "patient,time\nA,2\n")
    p = write(tmp_path / "pat.csv", "patient,age\nA,50\n")
    data = TrialData.from_csv(v, i, p)
    assert data.visits["month"].tolist() == [-2.0, 0.0, 2.0]
    assert data.visits["value"].tolist() == [40.0, 39.0, 37.0]
    assert data.patients.loc["A", "age"] == 50.0


def test_from_csv_errors_point_at_line_numbers(tmp_path):
    v = write(
        tmp_path / "visits.csv",
        "patient,time,alsfrs_r\nA,0,40\nA,2,39\nA,4,\nA,6,37\nB,0,30\nB,2,60\nB,4,28\n",
    )
    i = write(tmp_path / "inj.csv", "patient,time\nA,2\nB,2\n")
    with pytest.raises(DataValidationError) as e:
        TrialData.from_csv(v, i)
    assert problems_of(e)[0].startswith("visits.csv line 4: ALSFRS-R total is missing")
    assert problems_of(e)[1].startswith(
        "visits.csv line 7 (patient B): column 'alsfrs_r': ALSFRS-R total out of range")


def test_from_csv_problems_are_listed_in_file_order(tmp_path):
    # an out-of-range score on line 2, an unreadable time on line 3, a missing score on line 5,
    # a non-numeric score on line 6: found by different checks, listed by line
    v = write(
        tmp_path / "visits.csv",
        "patient,time,alsfrs_r\nA,0,99\nA,soon,39\nA,4,38\nA,6,\nA,8,x\n",
    )
    i = write(tmp_path / "inj.csv", "patient,time\nA,2\n")
    with pytest.raises(DataValidationError) as e:
        TrialData.from_csv(v, i)
    found = [re.match(r"visits\.csv lines? (\d+)", p) for p in problems_of(e)]
    assert all(found), problems_of(e)
    lines = [int(m.group(1)) for m in found]
    assert lines == [2, 3, 5, 6], problems_of(e)
    # a column of months with one unreadable value: that value is the problem
    assert "line 3 (patient A): column 'time' must be a number of months" in problems_of(e)[1]


def test_from_csv_line_numbers_in_injections_and_patients(tmp_path):
    v = write(tmp_path / "v.csv", "patient,time,alsfrs_r\nA,0,40\nA,2,39\nA,4,38\n")
    i = write(tmp_path / "i.csv", "patient,time\nA,2\nA,2\n")
    with pytest.raises(
        DataValidationError, match=r"i\.csv lines 2, 3: patient A has two injections at time = 2"
    ):
        TrialData.from_csv(v, i)
    i = write(tmp_path / "i.csv", "patient,time\nA,2\n")
    p = write(tmp_path / "p.csv", "patient,age\nA,\n")
    with pytest.raises(
        DataValidationError,
        match=r"p\.csv line 2: covariate 'age' is missing or not finite for patient\(s\) A",
    ):
        TrialData.from_csv(v, i, p)


def test_from_csv_line_numbers_skip_blank_lines(tmp_path):
    v = write(
        tmp_path / "visits.csv",
        "patient,time,alsfrs_r\nA,0,40\nA,2,39\n\nA,4,38\n\nB,0,30\nB,2,99\n",
    )
    i = write(tmp_path / "inj.csv", "patient,time\nA,2\nB,2\n")
    with pytest.raises(DataValidationError, match=r"visits\.csv line 8 \(patient B\): column "
                       r"'alsfrs_r': ALSFRS-R total out of"):
        TrialData.from_csv(v, i)


def test_from_csv_with_dates_and_custom_columns(tmp_path):
    v = write(
        tmp_path / "visits.csv",
        "subject,date,alsfrs_r,fvc\n"
        "S1,2021-01-01,40,90\nS1,2021-03-02,39,\nS1,2021-06-01,38,85\n"
        "S2,2021-02-01,30,70\nS2,2021-03-01,29,69\nS2,2021-05-01,28,\n",
    )
    i = write(tmp_path / "inj.csv", "subject,date,cycle\nS1,2021-03-02,1\nS2,2021-03-01,1\n")
    p = write(tmp_path / "pat.csv", "subject,age,sex\nS1,50,M\nS2,61,F\n")
    data = TrialData.from_csv(v, i, p, patient_col="subject", time_col="date")
    assert data.patient_ids == ["S1", "S2"]
    assert data.time_kind == "date"
    s2 = data.visits[data.visits["patient"] == "S2"]
    np.testing.assert_allclose(s2["month"], np.array([-28, 0, 61]) / DAYS_PER_MONTH, atol=1e-12)
    assert data.covariates == ["age", "sex[M]"]
    assert data.patients["sex[M]"].tolist() == [1.0, 0.0]
    # the FVC column has gaps, but only the chosen outcome is validated
    with pytest.raises(DataValidationError, match=r"visits\.csv lines 3, 7: FVC is missing"):
        TrialData.from_csv(v, i, p, patient_col="subject", time_col="date", outcome="fvc")


def test_from_csv_custom_column_missing_is_named(tmp_path):
    v = write(tmp_path / "visits.csv", "patient,time,alsfrs_r\nA,0,40\nA,2,39\n")
    i = write(tmp_path / "inj.csv", "patient,time\nA,2\n")
    with pytest.raises(
        DataValidationError, match=r"visits\.csv: missing column\(s\) 'subject'.*\n.*inj\.csv"
    ):
        TrialData.from_csv(v, i, patient_col="subject")


def test_from_csv_missing_file(tmp_path):
    i = write(tmp_path / "inj.csv", "patient,time\nA,2\n")
    with pytest.raises(FileNotFoundError, match="no such file"):
        TrialData.from_csv(tmp_path / "nope.csv", i)


# --------------------------------------------------------------------------- overview
def test_overview_counts():
    assert build().overview() == {
        "patients": 3,
        "treated": 2,
        "untreated": 1,
        "treated_arm": 3,  # no arm column: everyone in the treated arm
        "control": 0,
        "external": 0,
        "visits": 12,
        "injections": 3,
        "max_cycles": 2,
        "mean_runin_months": 3.0,  # A: 4 months of run-in, B: 2 (C untreated, left out)
    }


def test_overview_without_injections():
    data = build(injections=pd.DataFrame({"patient": [], "time": []}))
    ov = data.overview()
    assert ov["treated"] == 0
    assert ov["untreated"] == 3
    assert ov["injections"] == 0
    assert ov["max_cycles"] == 0
    assert np.isnan(ov["mean_runin_months"])
    # every patient is untreated: months relative to the last visit
    assert data.visits.groupby("patient")["month"].max().tolist() == [0.0, 0.0, 0.0]


def test_patients_without_visits_are_reported():
    visits = pd.DataFrame({"patient": ["A", "A", "A", "A"], "time": [-2, -1, 0, 1],
                           "alsfrs_r": [40, 39, 38, 38]})
    injections = pd.DataFrame({"patient": ["A"], "time": [0]})
    patients = pd.DataFrame({"patient": ["A", "Z"], "age": [50, 60]})
    with pytest.warns(DataWarning, match=r"patient\(s\) Z of patients have no visit"):
        data = TrialData.from_frames(visits, injections, patients)
    assert data.patient_ids == ["A"]
    assert any("Z" in n for n in data.notes)


def test_time_zone_aware_dates_are_converted():
    visits = pd.DataFrame({
        "patient": ["A", "A", "A"],
        "time": pd.to_datetime(["2021-01-01", "2021-02-01", "2021-03-01"]).tz_localize("UTC"),
        "alsfrs_r": [40, 39, 38],
    })
    injections = pd.DataFrame({"patient": ["A"],
                               "time": pd.to_datetime(["2021-02-01"]).tz_localize("UTC")})
    data = TrialData.from_frames(visits, injections)
    assert data.visits["month"].tolist() == pytest.approx([-31 / 30.4375, 0.0, 28 / 30.4375])


def test_empty_and_header_only_files_name_the_file(tmp_path):
    good_v = write(tmp_path / "visits.csv", "patient,time,alsfrs_r\nA,0,40\nA,2,39\nA,4,37\n")
    good_i = write(tmp_path / "inj.csv", "patient,time\nA,2\n")
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(DataValidationError, match=r"empty\.csv: the file is empty"):
        TrialData.from_csv(empty, good_i)
    with pytest.raises(DataValidationError, match=r"empty\.csv: the file is empty"):
        TrialData.from_csv(good_v, empty)
    header_v = write(tmp_path / "hv.csv", "patient,time,alsfrs_r\n")
    header_i = write(tmp_path / "hi.csv", "patient,time\n")
    with pytest.raises(DataValidationError, match=r"hv\.csv: the table has a header but no rows"):
        TrialData.from_csv(header_v, good_i)
    with pytest.raises(DataValidationError,
                       match=r"hi\.csv: the table has a header but no rows \(no injections\)\. "
                       r"For untreated patients only"):
        TrialData.from_csv(good_v, header_i)


def test_bundled_templates_read_as_written():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples" / "templates"
    data = TrialData.from_csv(root / "visits.csv", root / "injections.csv", time_col="date")
    assert data.time_kind == "date" and len(data.patient_ids) == 3
