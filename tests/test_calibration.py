"""Calibration of the slowing against trials from an independent generator.

The trials come from ``tests/independent_sim.py``, which does not use the model's formulas (its
docstring lists how it differs from the model). The slow tests fit the default model to three
trials of 150 patients and check that per patient-cycle intervals cover the truth at their
nominal rate (bounded above and below) and that the responder probabilities add up to the true
number of responders. The fast tests check the generator itself.

Reference distributions. If the model is calibrated, the truth given the data is distributed
like a posterior draw, so any statistic of (truth, intervals) has the distribution of the same
statistic computed with a posterior draw in place of the truth. Its mean and variance over the
draws give each bound: this accounts for the correlation between cells (shared population
parameters, a patient's cells sharing u_i), which a binomial variance ignores. Trials are
independent, so their means and variances add. Every bound is +-3 SD (two-sided false-alarm
rate 0.27% each under calibration).
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from independent_sim import fitted_trial, simulate_independent_trial, true_patient_slowing

from slopeshift.design import build_design, evaluable_cells
from slopeshift.summaries import patient_slowing_draws

SEEDS = (101, 102, 103)
N_PATIENTS = 150
Z = 3.0  # bounds at +-3 SD of the reference distribution


@pytest.fixture(scope="module")
def trials():
    return [fitted_trial(seed, N_PATIENTS) for seed in SEEDS]


def cell_draws(fit, truth) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws (sample x cell) and truth of rho_ik over the cells the library reports
    (observed, in the treated arm, after a run-in that established decline)."""
    rho = fit.posterior["rho"].stack(sample=("chain", "draw")).stack(cell=("patient", "cycle"))
    keep = evaluable_cells(fit.design).stack(cell=("patient", "cycle"))
    rho = rho.sel(cell=keep.values).transpose("sample", "cell")
    key = pd.MultiIndex.from_arrays([rho["patient"].values, rho["cycle"].values])
    true = truth["cells"].set_index(["patient", "cycle"])["rho"].reindex(key).to_numpy()
    assert np.isfinite(true).all()
    return rho.values, true


def coverage(draws: np.ndarray, true: np.ndarray, level: float) -> dict:
    """Cells whose equal-tailed ``level`` interval covers the truth, with the reference mean and
    variance of that count (the count of each posterior draw covered by the same intervals)."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    reference = ((lo <= draws) & (draws <= hi)).sum(axis=1)
    return {"covered": int(((lo <= true) & (true <= hi)).sum()), "n": len(true),
            "mean": float(reference.mean()), "var": float(reference.var())}


def responder_sum(fit, truth, threshold: float = 0.25) -> dict:
    """Sum of P(rho_i > c) over the patients counted as "treated", the true number of
    responders among them, and the variance of the posterior number of responders."""
    table = fit.patients(threshold=threshold)
    table = table[table["status"] == "treated"]
    p = table[f"p_gt_{threshold:g}"].to_numpy()
    true = true_patient_slowing(truth["cells"]).reindex(table["patient"]).to_numpy()
    assert np.isfinite(true).all()
    draws = patient_slowing_draws(fit.idata).sel(patient=table["patient"].to_numpy())
    count = (draws > threshold).sum("patient").values.ravel()
    return {"sum_p": float(p.sum()), "true": int((true > threshold).sum()), "n": len(p),
            "var": float(count.var()), "var_binomial": float((p * (1 - p)).sum())}


@pytest.mark.slow
@pytest.mark.parametrize("level", [0.5, 0.9])
def test_patient_cycle_intervals_cover_the_truth_at_their_nominal_rate(trials, level):
    stats = [coverage(*cell_draws(fit, truth), level) for _, truth, fit in trials]
    covered = sum(s["covered"] for s in stats)
    n = sum(s["n"] for s in stats)
    expected = sum(s["mean"] for s in stats)  # = level * n (equal-tailed intervals)
    # Bound: |covered - expected| <= 3 sqrt(sum of the trials' reference variances). On seeds
    # 101-103 (825 cells) the reference SD of the count is 33.3 (50%) and 24.8 (90%), 2.3x and
    # 2.9x the binomial sqrt(n level (1 - level)) = 14.4 and 8.6: cells share the population
    # parameters and a patient's cells share u_i, so they are covered or missed together.
    sd = np.sqrt(sum(s["var"] for s in stats))
    msg = (f"{level:.0%} intervals covered {covered}/{n} = {covered / n:.3f} cells; expected "
           f"{expected:.1f} +- {Z:g} x {sd:.1f} (binomial SD would be "
           f"{np.sqrt(n * level * (1 - level)):.1f}); per trial {stats}")
    assert abs(covered - expected) <= Z * sd, msg


@pytest.mark.slow
def test_responder_probabilities_add_up_to_the_true_number_of_responders(trials):
    stats = [responder_sum(fit, truth) for _, truth, fit in trials]
    total_p = sum(s["sum_p"] for s in stats)
    total_true = sum(s["true"] for s in stats)
    # Bound: |sum_i p_i - R| <= 3 sqrt(sum over trials of Var(R | data)), Var(R | data) the
    # posterior variance of the number of responders R = sum_i 1[rho_i > 0.25]. It equals the
    # binomial sum p_i (1 - p_i) plus the covariances of the indicators, which are large:
    # the patients share rho_bar, the natural-history parameters and theta. On seeds 101-103
    # Var(R | data) summed over the trials is 461, 9x sum p (1 - p) = 50 (SD 21.5 against 7.1):
    # a bound of 3 x 7.1 would fail a calibrated model about one time in three.
    var = sum(s["var"] for s in stats)
    var_binomial = sum(s["var_binomial"] for s in stats)
    msg = (f"sum of P(rho_i > 0.25) {total_p:.1f} vs {total_true} true responders among "
           f"{sum(s['n'] for s in stats)} patients; bound {Z:g} x {np.sqrt(var):.1f} (binomial "
           f"sum p(1-p): SD {np.sqrt(var_binomial):.1f}); per trial {stats}")
    assert abs(total_p - total_true) <= Z * np.sqrt(var), msg


# Measured (seeds 101-103, 150 patients each, 4 x 1000 draws; slopeshift at commit f36a9e6):
#   50% intervals covered 401/825 cells = 0.486 (expected 412.5, SD 33.3: z = -0.35);
#   90% intervals covered 745/825 = 0.903 (expected 742.5, SD 24.8: z = +0.10);
#   sum of P(rho_i > 0.25) 204.3 against 215 true responders among 308 patients (SD 21.5).
# These tests can fail. The same trials fitted with a wrong model, SlopeShiftModel(data,
# drift=False, enrolment=None, floors="include") (enrolment and floors change nothing on these
# all-comers totals: the difference is the natural drift and acceleration), gave 412/825
# (z = -0.03) and 732/825 (z = -0.93) covered cells (the drift goes into its patient-cycle SD,
# so one cell's interval stays about right) but a responder sum of 182.2 against 215, with
# SD(R) 7.5 (z = -4.35): FAILS. Against the default fits, truths shifted by +0.10 fail the 90%
# coverage (668/825, z = -3.01); +0.15 fail both coverages (274/825 and 599/825, z = -4.2
# and -5.8) and the responder sum (z = -3.20); -0.10 pass (z -0.14, +0.79, +0.95): the
# default's means sit about 0.2 posterior SD below the truth, and the intervals are wide
# (posterior SD of one rho_ik about 0.27, of rho_bar about 0.1).


# --------------------------------------------------------------------------- the generator
@pytest.fixture(scope="module")
def big_trial():
    return simulate_independent_trial(400, random_seed=7)


def test_generator_imports_none_of_the_package_simulators():
    tree = ast.parse((Path(__file__).parent / "independent_sim.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    assert not {n for n in names if "simulate" in n or "natural" in n}, names


def test_generator_is_seeded():
    a, ta = simulate_independent_trial(30, random_seed=3)
    b, tb = simulate_independent_trial(30, random_seed=3)
    c, _ = simulate_independent_trial(30, random_seed=4)
    pd.testing.assert_frame_equal(a.visits, b.visits)
    pd.testing.assert_frame_equal(a.injections, b.injections)
    pd.testing.assert_frame_equal(ta["cells"], tb["cells"])
    assert not a.visits["value"].equals(c.visits["value"])


def test_generator_noise_is_the_visit_sd_and_scores_are_whole_points(big_trial):
    data, truth = big_trial
    v = truth["visits"]
    assert np.array_equal(v["y"], np.round(v["y"])) and v["y"].between(0, 48).all()
    resid = (v["y"] - v["mu"])[~v["clipped"]]
    # Normal(0, 1.6) noise plus rounding (variance 1/12): SD 1.626; the SE of an SD from
    # ~6,800 visits is 1.626 / sqrt(2 x 6,800) = 0.014, of a mean 1.626 / sqrt(6,800) = 0.02
    assert abs(resid.std() - np.sqrt(1.6**2 + 1 / 12)) <= 4 * 0.014, resid.std()
    assert abs(resid.mean()) <= 4 * 0.02, resid.mean()
    # clipping at 0 or 48 is rare (reported in truth["clipped"])
    assert truth["clipped"] == int(v["clipped"].sum()) <= 0.005 * len(v), truth["clipped"]


def test_generator_natural_rate_is_persistent_plus_acceleration_plus_drift(big_trial):
    _, truth = big_trial
    cells = truth["cells"].join(truth["patients"][["pace", "runin"]], on="patient")
    months = cells["injection_month"] + cells["cycle_length"] / 2 + cells["runin"] / 2
    base = -cells["pace"] + truth["acceleration"] * months
    # cells whose natural rate never reaches the cap of -0.1 points/month
    free = (base + cells["drift"] + 0.02 * cells["cycle_length"]) < -0.15
    assert free.mean() > 0.8
    drift = (cells["natural_rate"] - base)[free]
    # the mean natural rate over a cycle is the persistent rate, the acceleration at the
    # cycle's middle (months from the middle of the run-in) and the cycle's own drift
    assert np.allclose(drift, cells.loc[free, "drift"], atol=2e-3)
    # drift SD 0.35 points/month: SE of an SD from ~800 cells 0.35 / sqrt(1,600) = 0.009
    assert abs(drift.std() - 0.35) <= 4 * 0.009, drift.std()
    # the treatment multiplies the whole natural rate, drift included
    assert np.allclose(cells["slope"], cells["natural_rate"] * (1 - cells["rho"]))


def test_generator_truth_follows_the_model_definitions(big_trial):
    data, truth = big_trial
    cells = truth["cells"]
    d = build_design(data)
    length = d["cycle_length"].to_pandas().stack()
    observed = d["observed"].to_pandas().stack()
    key = pd.MultiIndex.from_frame(cells[["patient", "cycle"]])
    assert np.allclose(length.reindex(key).to_numpy(), cells["cycle_length"], atol=1e-3)
    assert (observed.reindex(key).to_numpy() == cells["observed"].to_numpy()).all()
    # theta acts on the interval to the next injection, never on an open last cycle
    closed = cells["closed"]
    term = cells["rho"] - cells["response"]
    assert np.allclose(term[closed], truth["theta"] * (cells.loc[closed, "interval"] - 3.0))
    assert np.allclose(term[~closed], 0.0) and cells.loc[~closed, "interval"].isna().all()


def test_generator_dropout_follows_response(big_trial):
    _, truth = big_trial
    pat = truth["patients"]
    treated = pat[pat["treated"]]
    # poor responders stop sooner: P(stop) is 45% at a response of 0 and 4% at 0.6
    low, high = treated["u"] < -0.2, treated["u"] > 0.2
    assert treated.loc[low, "stopped"].mean() > 2 * treated.loc[high, "stopped"].mean()
    assert treated.loc[treated["stopped"], "u"].mean() < treated.loc[~treated["stopped"],
                                                                     "u"].mean() - 0.15
    # so later cycles hold better responders: mean u of patients with 4 injections minus
    # those with 1 is 0.33 (10,000 patients); here about 110 and 55 patients, SE 0.05
    u = treated.groupby("n_injections")["u"].mean()
    assert u[4] - u[1] > 0.1, u
    # and faster decliners leave the study more often
    assert treated.loc[treated["left"], "pace"].mean() > treated.loc[~treated["left"],
                                                                     "pace"].mean()


def test_generator_schedule():
    data, truth = simulate_independent_trial(200, random_seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        o = data.overview()
    assert o["untreated"] == 2 and 5.0 <= o["mean_runin_months"] <= 7.0
    pat = truth["patients"]
    assert set(pat.loc[pat["treated"], "planned"]) == {2, 3, 4}
    cells = truth["cells"]
    assert cells.loc[cells["closed"], "interval"].between(3.0, 6.0).all()
    pace = pat["pace"]
    assert abs(pace.mean() - 0.86) < 0.1 and abs(pace.std() - 0.45) < 0.1
