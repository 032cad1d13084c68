"""The command line, end to end (small draws: wiring, not inference)."""

from __future__ import annotations

import pandas as pd
import pytest

from slopeshift.cli import main
from slopeshift.simulate import example_frames

QUICK = ["--draws", "100", "--tune", "200", "--chains", "2", "--quiet"]


def test_demo_end_to_end(tmp_path, capsys):
    with pytest.warns(Warning):  # few draws: the diagnostics warn, as they should
        assert main(["demo", *QUICK, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out
    assert "Population slowing" in out and "Interval effect theta" in out
    assert "Number of responders" in out and "P18      untreated" in out
    assert "relative to each patient's natural rate" in out
    assert (tmp_path / "fit.nc").is_file()
    assert (tmp_path / "report" / "report.html").is_file()
    assert f"Report: {tmp_path / 'report' / 'report.html'}" in out
    patients = pd.read_csv(tmp_path / "patients.csv")
    assert len(patients) == 20 and "p_gt_0.25" in patients


def test_fit_from_csv(tmp_path, capsys):
    visits, injections, patients = example_frames()
    keep = visits["patient"].isin(["P01", "P02", "P03", "P04", "P05", "P18"])
    visits[keep].drop(columns="fvc").rename(columns={"date": "visit_date"}).to_csv(
        tmp_path / "v.csv", index=False)
    injections[injections["patient"].isin(visits[keep]["patient"])].rename(
        columns={"date": "visit_date"}).to_csv(tmp_path / "i.csv", index=False)
    with pytest.warns(Warning):
        code = main(["fit", str(tmp_path / "v.csv"), str(tmp_path / "i.csv"), "--time-col",
                     "visit_date", "--out", str(tmp_path / "out"), "--threshold", "0.2,0.25",
                     "--no-report", *QUICK])
    assert code == 0
    slowing = pd.read_csv(tmp_path / "out" / "slowing.csv")
    assert {"p_gt_0.2", "p_gt_0.25"} <= set(slowing.columns)
    assert set(slowing["patient"]) == {"P01", "P02", "P03", "P04", "P05"}
    out = capsys.readouterr().out
    assert "Wrote the fit" in out and "Report:" not in out
    assert not (tmp_path / "out" / "report").exists()


def test_fit_reports_bad_input_without_traceback(tmp_path, capsys):
    pd.DataFrame({"patient": ["A", "A"], "time": [0, 1], "alsfrs_r": [30, 60]}).to_csv(
        tmp_path / "v.csv", index=False)
    pd.DataFrame({"patient": ["A"], "time": [0]}).to_csv(tmp_path / "i.csv", index=False)
    code = main(["fit", str(tmp_path / "v.csv"), str(tmp_path / "i.csv"), "--out",
                 str(tmp_path / "out"), *QUICK])
    assert code == 2
    err = capsys.readouterr().err
    assert "v.csv line 3" in err and "out of range 0-48" in err
