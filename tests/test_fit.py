"""Fitting, diagnostics and save/load, on the shared small fit (sampled once per session)."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from slopeshift import ConvergenceWarning, DataWarning, FitResult, SlopeShiftModel

TABLES = ("slowing", "patients", "cycles", "population", "responders", "interval_effect")


def test_datatree_groups_and_labels(small_fit, example_data):
    groups = set(small_fit.idata.children)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "design"} <= groups
    post = small_fit.posterior
    assert list(post["rho"].coords["patient"].values) == example_data.patient_ids
    assert list(post["rho"].coords["cycle"].values) == [1, 2, 3, 4]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 200
    # effects integrated out: the log-likelihood is each patient's marginal density
    assert small_fit.idata["log_likelihood"]["y"].dims == ("chain", "draw", "patient")
    assert small_fit.idata["log_likelihood"]["y"].shape == (2, 200, 20)
    assert small_fit.idata["observed_data"]["y"].shape == (len(example_data.visits),)
    assert {"rho", "slope", "z_patient", "z_patient_cycle"} <= set(post.data_vars)


def test_untreated_patient_has_no_slowing(small_fit):
    rho = small_fit.posterior["rho"].sel(patient="P18")
    assert rho.isnull().all()
    tab = small_fit.patients().set_index("patient")
    assert tab.loc["P18", "status"] == "untreated"


def test_same_seed_gives_identical_numbers(example_model):
    kw = dict(draws=30, tune=50, chains=2, random_seed=7, progressbar=False, check=False)
    a = example_model.fit(**kw)
    b = example_model.fit(**kw)
    c = example_model.fit(**(kw | {"random_seed": 8}))
    xr.testing.assert_identical(a.posterior["rho"], b.posterior["rho"])
    assert not np.allclose(a.posterior["rho_bar"].values, c.posterior["rho_bar"].values)
    assert a.fit_info["random_seed"] == 7


def test_diagnostics_table_and_warnings(small_fit):
    diag = small_fit.diagnostics()
    assert {"r_hat", "ess_bulk", "ess_tail", "ok"} <= set(diag.columns)
    assert "beta_pre" in diag.index and "slope" not in diag.index
    # the slowing drawn after sampling is diagnosed too, over the cells and patients that count
    assert {"rho", "rho_patient"} <= set(diag.index)
    derived = small_fit._derived_draws()
    from slopeshift.design import evaluable_cells

    assert derived["rho"].sizes["cell"] == int(evaluable_cells(small_fit.design).sum())
    assert np.isfinite(derived["rho"].values).all()
    assert np.isfinite(derived["rho_patient"].values).all()
    assert diag.attrs["draws"] == 400
    # 2 chains x 200 draws cannot reach 400 effective draws for every parameter
    assert not diag.attrs["ok"]
    with pytest.warns((ConvergenceWarning, DataWarning)) as caught:
        msgs = small_fit.check()
    assert any("effective sample size below 400" in str(w.message) for w in caught)
    assert [str(w.message) for w in caught] == msgs
    # sampling problems are convergence warnings; a near-zero pre-slope is about the data
    for w in caught:
        near = "near zero" in str(w.message)
        assert w.category is (DataWarning if near else ConvergenceWarning)


def test_save_load_round_trip_gives_identical_tables(small_fit, example_model, tmp_path):
    path = small_fit.save(tmp_path / "fit.nc")
    loaded = FitResult.load(path, model=example_model)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(small_fit, name)(threshold=[0.2, 0.25]),
                                      getattr(loaded, name)(threshold=[0.2, 0.25]))
    assert loaded.config == small_fit.config
    assert loaded.fit_info == small_fit.fit_info
    pd.testing.assert_frame_equal(loaded.data.visits[["patient", "month", "value"]],
                                  small_fit.data.visits[["patient", "month", "value"]])
    assert loaded.data.patients["treated"].dtype == bool


def test_tables_are_computed_once_and_handed_out_as_copies(small_fit):
    from slopeshift.summaries import population_table

    first = small_fit.population(0.25)
    first.loc[:, "mean"] = np.nan  # a caller editing its table ...
    first.attrs["note"] = "edited"
    again = small_fit.population(0.25)  # ... does not change the next caller's
    pd.testing.assert_frame_equal(again, population_table(small_fit.idata, 0.25))
    assert again.attrs.get("note") != "edited"
    assert ("population", 0.25) in small_fit._tables
    # a sequence of thresholds is its own entry, and equal to the uncached table
    pd.testing.assert_frame_equal(small_fit.population([0.2, 0.25]),
                                  population_table(small_fit.idata, [0.2, 0.25]))


def test_load_refuses_other_configuration(small_fit, example_data, tmp_path):
    path = small_fit.save(tmp_path / "fit.nc")
    other = SlopeShiftModel(example_data, interval_ref=4.0)
    with pytest.raises(ValueError, match=r"different model configuration.*interval_ref"):
        FitResult.load(path, model=other)


def test_load_detects_altered_configuration(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "fit.nc")
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    config = json.loads(tree.attrs["slopeshift_config"])
    config["interval_ref"] = 5.0
    tree.attrs["slopeshift_config"] = json.dumps(config, sort_keys=True)
    tree.to_netcdf(tmp_path / "altered.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="does not match its hash"):
        FitResult.load(tmp_path / "altered.nc")


def test_load_rejects_foreign_files(tmp_path):
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="not written by slopeshift"):
        FitResult.load(tmp_path / "other.nc")
    with pytest.raises(FileNotFoundError):
        FitResult.load(tmp_path / "missing.nc")


def test_unknown_sampler(example_model):
    with pytest.raises(ValueError, match="sampler must be one of"):
        example_model.fit(sampler="stan")


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="JAX is installed")
def test_numpyro_without_jax_says_how_to_install(example_model):
    with pytest.raises(ImportError, match=r"slopeshift\[jax\]"):
        example_model.fit(sampler="numpyro", draws=10, tune=10)


@pytest.mark.slow
def test_pymc_sampler_path(example_data):
    model = SlopeShiftModel(example_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(draws=100, tune=200, chains=2, random_seed=3, sampler="pymc",
                        progressbar=False, check=False, cores=1)
    assert fit.posterior.sizes["draw"] == 100
    assert {"posterior", "log_likelihood", "design"} <= set(fit.idata.children)
    n_k = fit.design.sizes["cycle"]  # rho_bar, cycles, new patient; then at the given intervals
    assert fit.population().shape[0] == 2 * n_k + 3


def test_low_rank_mass_matrix(example_model):
    with pytest.raises(ValueError, match="mass_matrix must be 'diag' or 'low_rank'"):
        example_model.fit(mass_matrix="dense")
    with pytest.raises(ValueError, match="needs sampler='nutpie'"):
        example_model.fit(mass_matrix="low_rank", sampler="pymc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = example_model.fit(draws=50, tune=100, chains=2, random_seed=2, progressbar=False,
                                check=False, mass_matrix="low_rank")
    assert fit.fit_info["mass_matrix"] == "low_rank"
    assert fit.posterior.sizes["draw"] == 50


def test_near_zero_warning_leaves_out_flat_runins(small_fit, monkeypatch):
    """P05's run-in rose: it is already outside every count, so the warning names only P11."""
    flat = small_fit.patients().set_index("patient")
    assert flat.loc["P05", "status"] == "flat run-in"
    monkeypatch.setattr(FitResult, "near_zero_slopes", lambda self, *a, **k: ["P05", "P11"])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        msgs = small_fit.check()
    near = [m for m in msgs if "near zero" in m]
    assert near and near[0].startswith("patient(s) P11 have")


def test_default_target_accept_rises_for_large_trials(small_fit):
    from slopeshift.fit import LARGE_TRIAL, default_target_accept

    assert small_fit.fit_info["target_accept"] == 0.9  # 20 patients: the default, recorded

    assert default_target_accept(20) == 0.9
    assert default_target_accept(LARGE_TRIAL - 1) == 0.9
    assert default_target_accept(LARGE_TRIAL) == 0.95 == default_target_accept(2000)
    assert default_target_accept(20, domains=True) == 0.95

