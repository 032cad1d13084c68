"""The scripts in examples/ run to the end and print their key result (they sample: slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script, a line its output must contain, a file it must write into the output folder
CASES = [
    ("bundled_trial.py", "the reloaded fit gives identical tables", "report/report.html"),
    ("csv_with_dates.py", "Patient table (publication):", "visits.csv"),
    ("fvc_outcome.py", "Population slowing of FVC decline:", "population.csv"),
    ("priors_and_threshold.py", "ratio, sceptical priors", "comparison.csv"),
    ("model_checking.py", "Leave-one-patient-out PIT of the post-injection slopes",
     "loo_pit.png"),
    ("natural_history.py", "no effect: default (drift, acceleration, enrolment)",
     "comparison.csv"),
    ("trial_design.py", "Operating characteristics (P(rho_bar_given > 0) >= 0.975):",
     "operating_characteristics.png"),
    ("domain_floors.py", "four domains, floor cycles kept (floors='include')", "comparison.csv"),
]
# extra arguments after the output folder (a study kept small)
ARGS = {"trial_design.py": ["1"]}


@pytest.mark.slow
@pytest.mark.parametrize(("script", "expected", "written"), CASES,
                         ids=[c[0].removesuffix(".py") for c in CASES])
def test_example_runs(script: str, expected: str, written: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = os.environ | {"MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(out), *ARGS.get(script, [])],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path, check=False,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert expected in proc.stdout
    assert (out / written).is_file()
    # outputs go only to the folder given: nothing is written next to the script
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_readme_python_example_runs_verbatim_on_the_templates(tmp_path: Path) -> None:
    """The first Python block of the README, unchanged, in a folder holding the templates."""
    import shutil

    readme = (EXAMPLES.parent / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "TrialData.from_csv(\"visits.csv\", \"injections.csv\"" in code
    for name in ("visits.csv", "injections.csv"):
        shutil.copy(EXAMPLES / "templates" / name, tmp_path / name)
    env = os.environ | {"MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max_r_hat" in proc.stdout
    assert (tmp_path / "fit.nc").is_file()
