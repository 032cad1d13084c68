"""``slopeshift study calibrate|design|null SPEC.toml``: specs are read and passed on."""

from __future__ import annotations

import pandas as pd
import pytest

import slopeshift.study as study
from slopeshift.cli import main


def test_design_spec_is_passed_on(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_power(design, effects, n_trials, out_dir, **kwargs):
        seen.update(design=design, effects=effects, n_trials=n_trials, out=out_dir, **kwargs)
        return pd.DataFrame({"effect": [0.0, 0.5], "p_success": [0.02, 0.8]})

    monkeypatch.setattr(study, "power", fake_power)
    spec = tmp_path / "design.toml"
    spec.write_text('n_trials = 50\nseed = 3\nrule = ["rho_bar_given", 0.0, 0.95]\n'
                    "[design]\nn_patients = 40\ngaps = [4.5, 4.5]\n"
                    "[[effects]]\neffect = 0.0\n[[effects]]\neffect = 0.5\n"
                    "[fit]\ndraws = 500\n")
    assert main(["study", "design", str(spec), "--out", str(tmp_path / "out"),
                 "--workers", "2", "--quiet"]) == 0
    assert seen["design"] == study.TrialDesign(n_patients=40, gaps=(4.5, 4.5))
    assert seen["effects"] == [{"effect": 0.0}, {"effect": 0.5}] and seen["n_trials"] == 50
    assert seen["rule"] == ("rho_bar_given", 0.0, 0.95) and seen["seed"] == 3
    assert seen["workers"] == 2 and seen["fit_options"] == {"draws": 500}
    assert seen["progress"] is False
    assert pd.read_csv(tmp_path / "out" / "power.csv")["p_success"].tolist() == [0.02, 0.8]
    assert "power.csv" in capsys.readouterr().out


def test_design_grid_spec_runs_every_cell_and_draws_them(tmp_path, monkeypatch):
    seen = {}

    def fake_grid(designs, effects, n_trials, out_dir, **kwargs):
        seen.update(designs=designs, n_trials=n_trials, **kwargs)
        rows = [{"design": label, "effect": e, "interval_effect": 0.0, "n_trials": n_trials,
                 "p_success": 0.5, "p_success_se": 0.05, "rho_bar_bias": 0.0,
                 "declared_mean": 1.0, "true_responders_mean": 2.0}
                for label in designs for e in (0.0, 0.5)]
        return pd.DataFrame(rows)

    monkeypatch.setattr(study, "design_grid", fake_grid)
    spec = tmp_path / "grid.toml"
    spec.write_text("n_trials = 20\n[design]\nrunin_months = 4.0\n"
                    "[grid]\nn_patients = [20, 40]\narms = ['single', 'two-arm']\n"
                    "[[effects]]\neffect = 0.0\n[[effects]]\neffect = 0.5\n")
    assert main(["study", "design", str(spec), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert list(seen["designs"]) == ["n=20, single-arm", "n=20, two-arm", "n=40, single-arm",
                                     "n=40, two-arm"]
    assert seen["designs"]["n=40, two-arm"] == study.TrialDesign(n_patients=40, n_controls=40,
                                                                 runin_months=4.0)
    assert len(pd.read_csv(tmp_path / "out" / "power.csv")) == 8
    assert (tmp_path / "out" / "operating_characteristics.png").stat().st_size > 10_000


def test_design_spec_with_an_unknown_field_names_it(tmp_path, capsys):
    spec = tmp_path / "design.toml"
    spec.write_text("n_trials = 20\n[design]\npatients = 20\n")
    assert main(["study", "design", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "patients" in capsys.readouterr().err


def test_null_spec_reads_the_reference_beside_it(tmp_path, monkeypatch):
    seen = {}

    def fake_null(reference, n_patients, n_resamples, out_dir, **kwargs):
        seen.update(reference=reference, n=n_patients, r=n_resamples, **kwargs)
        return study.NullCheck(pd.DataFrame(), pd.DataFrame({"check": ["x"], "rate": [0.0]}),
                               0.05)

    monkeypatch.setattr(study, "null_check", fake_null)
    pd.DataFrame({"patient": ["a", "a"], "time": [0, 1], "alsfrs_r": [40, 39]}).to_csv(
        tmp_path / "ref.csv", index=False)
    spec = tmp_path / "null.toml"
    spec.write_text('reference = "ref.csv"\nn_patients = 20\nn_resamples = 10\n'
                    "gaps = [3.0, 3.0]\ntarget = 0.1\n")
    assert main(["study", "null", str(spec), "--out", str(tmp_path / "out"),
                 "--scheduler", "tcp://127.0.0.1:1", "--quiet"]) == 0
    assert len(seen["reference"]) == 2 and seen["n"] == 20 and seen["r"] == 10
    assert seen["gaps"] == (3.0, 3.0) and seen["target"] == 0.1
    assert seen["scheduler"] == "tcp://127.0.0.1:1" and "workers" not in seen
    assert (tmp_path / "out" / "null_check.csv").is_file()


def test_bad_specs_name_the_file_and_key(tmp_path, capsys):
    spec = tmp_path / "design.toml"
    spec.write_text("[design]\nn_patients = 10\n")
    assert main(["study", "design", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert f"{spec}: 'n_trials' is missing" in capsys.readouterr().err
    assert main(["study", "null", str(tmp_path / "none.toml"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    spec.write_text('reference = "missing.csv"\nn_patients = 5\nn_resamples = 2\n')
    assert main(["study", "null", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
    spec.write_text('data = "mine"\nn_trials = 2\n')
    assert main(["study", "calibrate", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "data must be" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["calibrate", "design", "null"])
def test_study_help(kind, capsys):
    with pytest.raises(SystemExit):
        main(["study", kind, "--help"])
    assert "--scheduler" in capsys.readouterr().out
