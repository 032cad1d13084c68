"""Floor detection on hand-made ALSFRS-R item data (slopeshift.floors); no sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from slopeshift.data import ALSFRS_ITEMS, TrialData
from slopeshift.errors import DataWarning
from slopeshift.floors import (
    floor_cycles,
    floor_factors,
    floor_patients,
    floor_table,
    has_items,
)

# A: visits at months -2..6, injections at 0 and 3. Gross motor (q7-q9) 12, 9, 6, 3, then 0 from
#    month 2 on (q9 already 0 at month 1): a lasting floor at month 2, run-in maximum 12.
# B: visits at -2..3, one injection at 0. Fine motor 0 at month 1 only, then 1: no floor.
# C: visits at -2, -1, 0, 2, one injection at 0. Respiratory 3, then 0 from month -1: run-in floor.
GROSS_A = {-2: (4, 4, 4), -1: (3, 3, 3), 0: (2, 2, 2), 1: (1, 2, 0)}
FINE_B = {-2: (2, 2, 2), -1: (1, 1, 1), 0: (1, 1, 0), 1: (0, 0, 0), 2: (1, 0, 0), 3: (1, 0, 0)}


def _row(pid: str, month: float, *, fine=(4, 4, 4), gross=(4, 4, 4), resp=(4, 4, 4)) -> dict:
    items = (3, 3, 3, *fine, *gross, *resp)
    return {"patient": pid, "time": month, **dict(zip(ALSFRS_ITEMS, items, strict=True))}


def item_rows() -> pd.DataFrame:
    rows = [_row("A", m, gross=GROSS_A.get(m, (0, 0, 0))) for m in range(-2, 7)]
    rows += [_row("B", m, fine=FINE_B[m]) for m in range(-2, 4)]
    rows += [_row("C", m, resp=(1, 1, 1) if m == -2 else (0, 0, 0)) for m in (-2, -1, 0, 2)]
    return pd.DataFrame(rows)


def item_trial() -> TrialData:
    inj = pd.DataFrame({"patient": ["A", "A", "B", "C"], "time": [0, 3, 0, 0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return TrialData.from_frames(item_rows(), inj, outcome="alsfrs_r")


def total_trial() -> TrialData:
    visits = pd.DataFrame(
        {"patient": ["A"] * 4, "time": [-2, -1, 1, 2], "alsfrs_r": [20, 10, 0, 0]}
    )
    return TrialData.from_frames(visits, pd.DataFrame({"patient": ["A"], "time": [0]}))


def test_lasting_domain_floors_and_capacity():
    data = item_trial()
    assert has_items(data)
    tab = floor_table(data)
    assert list(tab.columns) == ["patient", "domain", "floor_month", "points_lost_capacity"]
    assert tab.to_dict("records") == [
        {"patient": "A", "domain": "gross_motor", "floor_month": 2.0,
         "points_lost_capacity": 12.0},
        {"patient": "C", "domain": "respiratory", "floor_month": -1.0,
         "points_lost_capacity": 3.0},
    ]


def test_transient_zero_is_not_a_floor():
    data = item_trial()
    assert data.visits.loc[data.visits["patient"] == "B", "fine_motor"].min() == 0
    assert "B" not in set(floor_table(data)["patient"])


def test_item_level_needs_item_columns():
    data = item_trial()
    if not all(c in data.visits.columns for c in ALSFRS_ITEMS):
        with pytest.raises(ValueError, match="item-level floors need the item columns"):
            floor_table(data, level="item")
        # the same data with the items attached to the visits
        items = item_rows().sort_values(["patient", "time"], kind="stable")
        for c in ALSFRS_ITEMS:
            data.visits[c] = items[c].to_numpy()
    tab = floor_table(data, level="item")
    got = {(p, i): (f, c) for p, i, f, c in tab.itertuples(index=False)}
    assert got[("A", "q9")] == (1.0, 4.0)
    assert got[("A", "q7")] == (2.0, 4.0) and got[("A", "q8")] == (2.0, 4.0)
    assert got[("C", "r1")] == (-1.0, 1.0)
    # B: q4 rises back to 1 (no floor), q5 stays 0 from month 1 and q6 from month 0
    assert ("B", "q4") not in got
    assert got[("B", "q5")] == (1.0, 2.0) and got[("B", "q6")] == (0.0, 2.0)
    with pytest.raises(ValueError, match="level must be"):
        floor_table(data, level="total")


def test_cycles_affected_and_not():
    cyc = floor_cycles(item_trial())
    assert list(zip(cyc["patient"], cyc["cycle"], strict=True)) == [
        ("A", 1), ("A", 2), ("B", 1), ("C", 1)
    ]
    assert cyc["start_month"].tolist() == [0.0, 3.0, 0.0, 0.0]
    assert cyc["end_month"].tolist() == [3.0, 6.0, 3.0, 2.0]
    assert cyc["affected"].tolist() == [True, True, False, True]
    assert cyc["any_floor"].tolist() == [True, True, False, True]
    assert cyc["floored_domains"].tolist() == [
        ["gross_motor"], ["gross_motor"], [], ["respiratory"]
    ]
    np.testing.assert_allclose(cyc["floor_share"], [1 / 3, 1.0, 0.0, 1.0])
    # a floor over only a third of cycle 1 no longer counts with share=0.5
    strict = floor_cycles(item_trial(), share=0.5)
    assert strict["affected"].tolist() == [False, True, False, True]
    assert strict["any_floor"].tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="share must be in"):
        floor_cycles(item_trial(), share=1.0)


def test_floor_patients_summary():
    pat = floor_patients(item_trial())
    assert pat["patient"].tolist() == ["A", "B", "C"]
    assert pat["floored_domains"].tolist() == [["gross_motor"], [], ["respiratory"]]
    np.testing.assert_array_equal(pat["first_floor_month"], [2.0, np.nan, -1.0])
    assert pat["any_floor_in_runin"].tolist() == [False, False, True]
    assert pat["any_floor_in_followup"].tolist() == [True, False, False]


def test_total_only_data_give_empty_tables():
    data = total_trial()
    assert not has_items(data)
    tab = floor_table(data)
    assert tab.empty and list(tab.columns) == [
        "patient", "domain", "floor_month", "points_lost_capacity"
    ]
    assert floor_table(data, level="item").empty
    assert floor_cycles(data).empty and "affected" in floor_cycles(data).columns
    assert floor_patients(data).empty and "first_floor_month" in floor_patients(data).columns
    assert floor_factors(data).empty and "floor_factor" in floor_factors(data).columns


def test_floor_factors_weigh_items_by_their_run_in_decline():
    ff = floor_factors(item_trial()).set_index(["patient", "cycle"])
    # A: q7-q9 fall 1 point/month in the run-in (weight 1.02 each), the 9 others are flat
    # (0.02 each); all 12 active through the run-in. Cycle 1 visits at 0-3: all active, q9 at
    # 0, then only the 9 flat items; cycle 2 (3-6): the 9 flat items only.
    flat, total = 0.18, 3.24
    a1 = (1 + (1 - 1.02 / total) + 2 * flat / total) / 4
    np.testing.assert_allclose(ff.loc[("A", 1), ["active_runin", "active_cycle", "floor_factor"]],
                               [1.0, a1, a1])
    np.testing.assert_allclose(ff.loc[("A", 2), "floor_factor"], flat / total)
    # B: fine motor q4, q5 fall 0.5/month and q6 1/month; q6 reaches 0 at month 0, all three
    # at month 1, q4 is back at 1 at months 2-3 (a rise counts: the item can fall again)
    total = 0.52 + 0.52 + 1.02 + flat
    runin = (2 + 1 - 1.02 / total) / 3
    cyc = ((1 - 1.02 / total) + flat / total + 2 * (flat + 0.52) / total) / 4
    np.testing.assert_allclose(ff.loc[("B", 1), ["active_runin", "floor_factor"]],
                               [runin, cyc / runin])
    # C: respiratory at 0 from month -1 on (weights 0.52 each); the cycle has only the rest
    total = 3 * 0.52 + flat
    runin = (1 + 2 * flat / total) / 3
    np.testing.assert_allclose(ff.loc[("C", 1), "floor_factor"], (flat / total) / runin)
    assert (ff["floor_factor"] <= 1).all() and (ff["floor_factor"] > 0).all()


def test_floor_factors_are_one_without_item_floors():
    rows = [_row("D", m, gross=(4, 4, 3) if m < 0 else (3, 3, 3)) for m in range(-3, 5)]
    inj = pd.DataFrame({"patient": ["D", "D"], "time": [0, 2]})
    data = TrialData.from_frames(pd.DataFrame(rows), inj, outcome="alsfrs_r")
    ff = floor_factors(data)
    assert ff["floor_factor"].tolist() == [1.0, 1.0]
    # one run-in visit: nothing to weigh the items by
    rows = [_row("E", m) for m in (0, 1, 2)]
    with pytest.warns(DataWarning, match="fewer than 2 run-in visits"):
        data = TrialData.from_frames(pd.DataFrame(rows),
                                     pd.DataFrame({"patient": ["E"], "time": [0]}))
    assert floor_factors(data)["floor_factor"].tolist() == [1.0]


def test_lasting_floor_cells_get_a_vague_deviation_of_their_own():
    from slopeshift.model import SlopeShiftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SlopeShiftModel(item_trial())
        adjust = SlopeShiftModel(item_trial(), floors="adjust")
    k = model._constants()
    d = model.design
    floor = d["floor"].values & d["has_cycle"].values & d["effect"].values[:, None]
    assert floor.any()
    np.testing.assert_array_equal(k["floor_cell"], floor.astype(float))
    # those cells carry no effect, and the vague SD is 3 x the median run-in rate
    assert not (k["effect"] * k["floor_cell"]).any()
    median = abs(float(np.nanmedian(d["runin_slope"].values)))
    assert k["floor_sd"] == pytest.approx(3.0 * max(median, 0.1))
    assert not adjust._constants()["floor_cell"].any()
    # the cell's effect SD: sqrt(load^2 sd_pc^2 + sd_drift^2 + floor_sd^2 [floor cell])
    load = np.ones(floor.shape)
    loadings, _ = model._loadings(load, 0.3, 0.2, 0.5, np.sqrt)
    for j in range(floor.shape[1]):
        want = np.sqrt(0.2**2 + 0.5**2 + (k["floor_sd"] * floor[:, j]) ** 2)
        np.testing.assert_allclose(loadings[(j, j)], want)


def test_domain_floor_factors_weigh_each_domains_own_items():
    from slopeshift.floors import domain_floor_factors

    ff = domain_floor_factors(item_trial()).set_index(["patient", "cycle", "domain"])
    assert len(ff) == 4 * 4  # (A: 2 cycles, B: 1, C: 1) x 4 domains
    # A's gross motor: items 4,3,2 in the run-in (equal weights), then (1, 2, 0) at month 1
    # and 0 from month 2: cycle 1 (months 0-3) keeps (1 + 2/3 + 0 + 0) / 4 of its capacity
    assert ff.loc[("A", 1, "gross_motor"), "floor_factor"] == pytest.approx(5.0 / 12.0)
    assert ff.loc[("A", 2, "gross_motor"), "floor_factor"] == 0.0
    # the other domains of A never reach 0
    assert (ff.loc[("A", 1), "floor_factor"].drop("gross_motor") == 1.0).all()
    assert ff.loc[("C", 1, "respiratory"), "floor_factor"] == 0.0
    # totals give an empty table with the same columns
    empty = domain_floor_factors(total_trial())
    assert empty.empty and "domain" in empty.columns
