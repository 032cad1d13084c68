"""The command line, end to end (small draws: wiring, not inference)."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import pandas as pd
import pytest

from slopeshift import FitResult, SlopeShiftModel, default_priors
from slopeshift.cli import TABLES, _build_parser, main
from slopeshift.simulate import example_frames
from slopeshift.tables import format_estimate, responder_counts

QUICK = ["--draws", "100", "--tune", "200", "--chains", "2", "--quiet"]
PRIORS_TOML = """
theta = {dist = "Normal", mu = 0, sigma = 0.05}

[rho_cycle]
dist = "Normal"
mu = 0.0
sigma = 0.25
"""


def _lines(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith(start)]


def _section(text: str, heading: str) -> str:
    """The lines of the headline from ``heading`` to the next blank line."""
    return text.split(heading, 1)[1].split("\n\n", 1)[0]


def _assert_one_line_warnings(err: str) -> None:
    """Every stderr line is a one-line slopeshift message: no source line, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    assert all(line.startswith("slopeshift: ") for line in lines), err
    assert "warnings.warn" not in err and "main([" not in err


def _trial_csv(folder: Path) -> tuple[Path, Path]:
    visits, injections, _ = example_frames()
    keep = visits["patient"].isin(["P01", "P02", "P03", "P04", "P05", "P18"])
    visits[keep].drop(columns="fvc").rename(columns={"date": "visit_date"}).to_csv(
        folder / "v.csv", index=False)
    injections[injections["patient"].isin(visits[keep]["patient"])].rename(
        columns={"date": "visit_date"}).to_csv(folder / "i.csv", index=False)
    return folder / "v.csv", folder / "i.csv"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``slopeshift demo`` once, quick and quiet, with a patient flagged near zero."""
    out = tmp_path_factory.mktemp("demo")
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        # the near-zero check depends on the draws: force it, to see its warning printed
        # (P05 is a flat run-in, already outside the counts: the warning leaves it out)
        mp.setattr(FitResult, "near_zero_slopes", lambda self, *a, **k: ["P05", "P11"])
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["demo", *QUICK, "--out", str(out)])
    return code, out, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """``slopeshift fit`` once on 6 patients of the example, with a priors file and options."""
    folder = tmp_path_factory.mktemp("csv")
    visits, injections = _trial_csv(folder)
    (folder / "priors.toml").write_text(PRIORS_TOML)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["fit", str(visits), str(injections), "--time-col", "visit_date",
                     "--out", str(folder / "out"), "--threshold", "0.2,0.25", "--no-report",
                     "--priors", str(folder / "priors.toml"), "--interval-ref", "4",
                     "--target-accept", "0.95", *QUICK])
    return code, folder / "out", stdout.getvalue(), stderr.getvalue()


def test_demo_end_to_end(demo_run):
    code, out_dir, out, err = demo_run
    assert code == 0
    assert "SIMULATED" in out
    assert "Population slowing" in out and "Interval effect theta" in out
    assert "Number of responders" in out and "P18      untreated" in out
    # P05's run-in rose: listed apart, with its slope change in points/month
    assert "P05      flat run-in (decline not established; outside responder counts): " \
        "slope change" in out
    assert "relative to each patient's natural rate" in out
    assert (out_dir / "fit.nc").is_file()
    assert (out_dir / "report" / "report.html").is_file()
    assert f"Report: {out_dir / 'report' / 'report.html'}" in out
    patients = pd.read_csv(out_dir / "patients_numeric.csv")
    assert len(patients) == 20 and "p_gt_0.25" in patients


def test_demo_prints_the_reports_responder_counts(demo_run):
    _, out_dir, out, _ = demo_run
    fit = FitResult.load(out_dir / "fit.nc")
    counts = responder_counts(fit, 0.25)
    assert list(counts["scope"]) == ["overall", "cycle 1", "cycle 2", "cycle 3", "cycle 4"]
    section = _section(out, "Number of responders")
    for _, r in counts.iterrows():
        (line,) = _lines(section, f"{r['scope']} ")
        assert line.split()[len(r["scope"].split())] == r["label"]  # the posterior median
        assert f"{r['label']} ({r['ci_2.5']} to {r['ci_97.5']})" in line
    assert "most likely" not in out
    # the same cell as the report's formatted cycle table
    table = pd.read_csv(out_dir / "report" / "cycles_formatted.csv", dtype=str)
    overall = table.set_index("Cycle").loc["All cycles", "Responders (95% CrI)"]
    assert f"overall   {overall}" in out


def test_demo_prints_percent_and_exports_fractions(demo_run):
    _, out_dir, out, _ = demo_run
    pop = pd.read_csv(out_dir / "population_numeric.csv").set_index("quantity")
    assert pop["mean"].abs().max() < 3  # fractions, not percent
    for q, name in (("rho_bar_given", "all cycles"), ("rho_cycle_given[1]", "cycle 1")):
        r = pop.loc[q]
        pct = format_estimate(r["mean"], r["ci_2.5"], r["ci_97.5"], 1, 100.0)
        assert any(pct in line for line in _lines(out, name)), pct
    assert "P(>25%)" in out and "P(>0.25)" not in out
    assert "(slowing > 25%)" in out
    theta = pd.read_csv(out_dir / "interval_effect_numeric.csv").iloc[0]
    pct = format_estimate(theta["mean"], theta["ci_2.5"], theta["ci_97.5"], 1, 100.0)
    assert f"percentage points): {pct}, P(theta < 0)" in out
    formatted = pd.read_csv(out_dir / "report" / "population_formatted.csv", dtype=str)
    assert formatted["Slowing, % (95% CrI)"].iloc[0] in _lines(out, "all cycles")[0]


def test_two_sets_of_tables_have_distinct_names(demo_run):
    _, out_dir, out, _ = demo_run
    for name in TABLES:
        assert (out_dir / f"{name}_numeric.csv").is_file()
        assert not (out_dir / f"{name}.csv").exists()
    for name in ("population", "cycles", "interval", "patients"):
        assert (out_dir / "report" / f"{name}_formatted.csv").is_file()
        assert not (out_dir / "report" / f"{name}.csv").exists()
    assert "<table>_numeric.csv" in out and "<table>_formatted.csv" in out


def test_demo_warnings_print_one_line_each(demo_run):
    _, _, out, err = demo_run
    _assert_one_line_warnings(err)
    assert "slopeshift: ConvergenceWarning: effective sample size below 400" in err
    assert "run more draws (CLI: --draws)." in err
    (near,) = _lines(err, "slopeshift: DataWarning: patient(s) P11 have")
    assert "near zero" in near and near.endswith("(CLI: --parameterization additive).")
    assert "building report" not in err  # --quiet
    assert "Warning" not in out


def test_fit_from_csv(csv_run):
    code, out_dir, out, err = csv_run
    assert code == 0
    slowing = pd.read_csv(out_dir / "slowing_numeric.csv")
    assert {"p_gt_0.2", "p_gt_0.25"} <= set(slowing.columns)
    assert set(slowing["patient"]) == {"P01", "P02", "P03", "P04", "P05"}
    assert "Wrote the fit" in out and "Report:" not in out
    assert not (out_dir / "report").exists()
    _assert_one_line_warnings(err)


def test_fit_options_reach_the_model(csv_run):
    fit = FitResult.load(csv_run[1] / "fit.nc")
    priors = fit.config["priors"]
    assert priors["rho_cycle"] == {"dist": "Normal", "mu": 0.0, "sigma": 0.25}
    assert priors["theta"] == {"dist": "Normal", "mu": 0.0, "sigma": 0.05}
    default = default_priors("alsfrs_r")
    assert priors["rho_cycle"] != default["rho_cycle"].to_dict()
    assert priors["sigma"] == default["sigma"].to_dict()  # the others stay
    assert fit.config["interval_ref"] == 4.0
    assert fit.fit_info["target_accept"] == 0.95
    assert fit.fit_info["draws"] == 100 and fit.fit_info["chains"] == 2


class _Stop(Exception):
    """Raised instead of sampling: the model was built, the test has what it needs."""


def test_every_model_and_sampler_option_is_passed_on(monkeypatch):
    seen = {}

    def fake_fit(self, **kwargs):
        seen.update(model=self, fit=kwargs)
        raise _Stop

    monkeypatch.setattr(SlopeShiftModel, "fit", fake_fit)
    with pytest.raises(_Stop):
        main(["demo", "--parameterization", "additive", "--interval", "since_previous",
              "--interval-ref", "2.5", "--planned-interval", "3.5", "--covariates", "age,sex[M]",
              "--jump", "--likelihood", "student_t", "--censored", "--no-drift",
              "--enrolment", "-0.5", "--floors", "include", "--flat-runin", "include",
              "--slowing", "common", "--no-interval-effect", "--draws", "150", "--tune", "120",
              "--chains", "3", "--cores", "1", "--target-accept", "0.95", "--mass-matrix",
              "low_rank", "--seed", "7", "--quiet"])
    assert seen["model"].config == {
        "parameterization": "additive", "interval": "since_previous", "interval_ref": 2.5,
        "covariates": ["age", "sex[M]"], "jump": True, "likelihood": "student_t",
        "censored": True, "effects": "latent", "drift": False, "enrolment": -0.5,
        "floors": "include", "planned_interval": 3.5, "flat_runin": "include",
        "slowing": "common", "interval_effect": False,
        # --dropout auto (the default) cannot model dropout with latent effects
        "dropout": "ignore", "dropout_auto": True,
    }
    assert seen["fit"] == {"draws": 150, "tune": 120, "chains": 3, "random_seed": 7,
                           "sampler": "nutpie", "cores": 1, "target_accept": 0.95,
                           "mass_matrix": "low_rank", "progressbar": False}
    with pytest.raises(_Stop):
        main(["demo", "--enrolment", "none", "--quiet"])
    assert seen["model"].config["enrolment"] is None and seen["model"].config["drift"]
    with pytest.raises(_Stop):  # the bundled single-arm trial: auto chooses selection
        main(["demo", "--quiet"])
    assert seen["model"].config["dropout"] == "selection"
    assert seen["model"].config["dropout_auto"]
    with pytest.raises(_Stop):
        main(["demo", "--dropout", "ignore", "--quiet"])
    assert seen["model"].config["dropout"] == "ignore"
    assert "dropout_auto" not in seen["model"].config


def test_unknown_or_malformed_prior_names_the_option_and_key(tmp_path, capsys):
    path = tmp_path / "p.toml"
    path.write_text('rho_cylce = {dist = "Normal", mu = 0, sigma = 1}\n'
                    'theta = {dist = "Normal", mu = 0}\n')
    assert main(["demo", "--priors", str(path), *QUICK]) == 2
    err = capsys.readouterr().err
    assert f"--priors {path}: unknown prior name(s) ['rho_cylce']" in err
    assert "valid names: ['mu_alpha'" in err
    assert "prior 'theta': Normal prior takes parameters ('mu', 'sigma')" in err
    # drift priors are unknown without drift, and the message says why
    path.write_text('sd_drift = {dist = "HalfNormal", sigma = 1}\n')
    assert main(["demo", "--priors", str(path), "--no-drift", *QUICK]) == 2
    assert "['sd_drift'] for the ratio parameterisation with --no-drift" in capsys.readouterr().err
    path.write_text("rho_cycle = Normal(0, 1)\n")
    assert main(["demo", "--priors", str(path), *QUICK]) == 2
    assert f"--priors {path}: not a valid TOML file" in capsys.readouterr().err
    assert main(["demo", "--priors", str(tmp_path / "none.toml"), *QUICK]) == 2
    assert "none.toml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--target-accept", "1.5"], "argument --target-accept: must be a number strictly between"),
    (["--draws", "0"], "argument --draws: must be a whole number >= 1"),
    (["--enrolment", "strict"], "argument --enrolment: must be 'auto', 'none'"),
    (["--planned-interval", "-3"], "argument --planned-interval: must be a positive number"),
    (["--threshold", "25%"], "argument --threshold: threshold must be fractions"),
    (["--mass-matrix", "low_rank", "--sampler", "pymc"],
     "--mass-matrix low_rank needs --sampler nutpie"),
])
def test_bad_option_values_name_the_option(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_every_option_has_help_with_its_default():
    parser = _build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == {"demo", "fit", "report", "study"}
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                said = "required" if action.required else "default"
                assert action.help and said in action.help, (name, action.dest)
    assert parser.parse_args(["demo"]).out == Path("slopeshift-demo")


def test_report_command_shows_its_stage(csv_run, tmp_path, capsys):
    out_dir = tmp_path / "report"
    assert main(["report", str(csv_run[1] / "fit.nc"), "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "slopeshift: building report ..." in captured.err
    assert (out_dir / "cycles_formatted.csv").is_file()
    assert "<table>_formatted.csv" in captured.out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the helper forks (Linux)")
def test_report_is_the_same_drawn_in_one_or_two_processes(csv_run, tmp_path, capsys):
    pages = []
    for workers in ("1", "2"):
        out_dir = tmp_path / f"report{workers}"
        assert main(["report", str(csv_run[1] / "fit.nc"), "--out", str(out_dir), "--quiet",
                     "--report-workers", workers]) == 0
        pages.append((out_dir / "report.html").read_bytes())
    capsys.readouterr()
    assert pages[0].count(b"data:image/png;base64,") >= 7
    assert pages[0] == pages[1]


def test_fit_reports_bad_input_without_traceback(tmp_path, capsys):
    pd.DataFrame({"patient": ["A", "A"], "time": [0, 1], "alsfrs_r": [30, 60]}).to_csv(
        tmp_path / "v.csv", index=False)
    pd.DataFrame({"patient": ["A"], "time": [0]}).to_csv(tmp_path / "i.csv", index=False)
    code = main(["fit", str(tmp_path / "v.csv"), str(tmp_path / "i.csv"), "--out",
                 str(tmp_path / "out"), *QUICK])
    assert code == 2
    err = capsys.readouterr().err
    assert "v.csv line 3" in err and "out of range 0-48" in err


def test_domains_flag_builds_the_domain_model_or_names_what_is_missing(tmp_path, monkeypatch,
                                                                      capsys):
    from slopeshift.data import ALSFRS_ITEMS
    from slopeshift.natural import simulate_realistic_trial

    seen = {}

    def fake_fit(self, **kwargs):
        seen.update(model=self, fit=kwargs)
        raise _Stop

    monkeypatch.setattr(SlopeShiftModel, "fit", fake_fit)
    data, _ = simulate_realistic_trial(4, random_seed=2)
    visits = data.visits[["patient", "time", *ALSFRS_ITEMS]]
    visits.to_csv(tmp_path / "visits.csv", index=False)
    data.injections[["patient", "time"]].to_csv(tmp_path / "injections.csv", index=False)
    with pytest.raises(_Stop):
        main(["fit", str(tmp_path / "visits.csv"), str(tmp_path / "injections.csv"),
              "--domains", "--out", str(tmp_path / "out"), "--quiet"])
    assert seen["model"].config["domains"] is True
    assert seen["fit"]["target_accept"] is None  # the model's default: 0.95 for domains
    # the bundled trial gives totals only: a clear error, no traceback
    assert main(["demo", "--domains", "--quiet"]) == 2
    assert "needs the 12 items" in capsys.readouterr().err
