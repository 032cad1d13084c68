"""The compiled-model cache: same structure -> one compile, identical numbers; else a new key."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytest

from slopeshift import Prior, SlopeShiftModel, TrialData
from slopeshift import compiled as cc


def _shifted(data: TrialData, patient: str, by: float) -> TrialData:
    """The same trial with one patient's scores moved by ``by`` points (same structure)."""
    visits = data.visits[["patient", "time", "value"]].copy()
    visits.loc[visits["patient"] == patient, "value"] += by
    injections = data.injections[["patient", "time", "cycle"]]
    return TrialData.from_frames(visits, injections, data.patients[["arm"]].reset_index(),
                                 value_col="value")


def _without_last_visit(data: TrialData, patient: str) -> TrialData:
    """The same trial with one patient's last visit left out (other visit count, same sizes)."""
    visits = data.visits[["patient", "time", "value"]]
    last = visits.index[visits["patient"] == patient][-1]
    return TrialData.from_frames(visits.drop(index=last),
                                 data.injections[["patient", "time", "cycle"]],
                                 data.patients[["arm"]].reset_index(), value_col="value")


def _without(data: TrialData, patient: str) -> TrialData:
    """The same trial without one patient (one patient fewer: another size)."""
    visits = data.visits.loc[data.visits["patient"] != patient, ["patient", "time", "value"]]
    injections = data.injections.loc[data.injections["patient"] != patient,
                                     ["patient", "time", "cycle"]]
    patients = data.patients.loc[data.patients.index != patient, ["arm"]].reset_index()
    return TrialData.from_frames(visits, injections, patients, value_col="value")


@pytest.fixture(scope="module")
def other_data(example_data):
    return _shifted(example_data, "P03", 2.0)


def _fit(model, seed=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(draws=100, tune=150, chains=2, random_seed=seed, progressbar=False,
                         check=False)


def test_same_structure_other_data_or_prior_values_share_a_key(example_data, other_data):
    a = SlopeShiftModel(example_data)
    b = SlopeShiftModel(other_data)
    c = SlopeShiftModel(example_data, priors={"sigma": Prior("HalfNormal", sigma=3.0)})
    assert not np.allclose(a.design["y"].values, b.design["y"].values)
    assert cc.structure_key(a.pymc_model) == cc.structure_key(b.pymc_model)
    assert cc.structure_key(a.pymc_model) == cc.structure_key(c.pymc_model)
    # the marginal density reads per-patient moments: the number of visits is not structure
    d = SlopeShiftModel(_without_last_visit(example_data, "P03"))
    assert d.design.sizes["visit"] == a.design.sizes["visit"] - 1
    assert cc.structure_key(a.pymc_model) == cc.structure_key(d.pymc_model)


def test_other_structure_gets_another_key(example_data):
    base = cc.structure_key(SlopeShiftModel(example_data).pymc_model)
    for changed in (SlopeShiftModel(example_data, drift=False),
                    SlopeShiftModel(example_data, interval_effect=False),
                    SlopeShiftModel(example_data, priors={"sigma": Prior("Exponential", lam=1)}),
                    SlopeShiftModel(example_data, jump=True),
                    SlopeShiftModel(_without(example_data, "P20"))):
        assert cc.structure_key(changed.pymc_model) != base
    # options of the compile are part of the key
    assert cc.structure_key(SlopeShiftModel(example_data).pymc_model, jitter=["a"]) != base


def test_a_constant_counts_by_value_a_data_variable_by_shape():
    def key(const, shared_value, name="data_x"):
        with pm.Model() as m:
            x = pytensor.shared(np.asarray(shared_value), name=name)
            mu = pm.Normal("mu")
            pm.Potential("p", -((mu - const) ** 2) * x.sum())
        return cc.structure_key(m)

    assert key(np.ones(3), np.ones(4)) == key(np.ones(3), np.zeros(4))  # data: by shape
    assert key(np.ones(3), np.ones(4)) != key(np.ones(3), np.ones(5))
    assert key(np.ones(3), np.ones(4)) != key(np.array([1.0, 1.0, 2.0]), np.ones(4))
    # a shared variable that is not slopeshift's data or prior counts by value
    assert key(1.0, np.ones(4), "x") != key(1.0, np.zeros(4), "x")


def test_a_cached_compile_gives_the_numbers_of_a_fresh_one(example_data, other_data,
                                                           monkeypatch, tmp_path):
    monkeypatch.setenv("SLOPESHIFT_CACHE_DIR", str(tmp_path))
    cc.clear_cache()
    first = _fit(SlopeShiftModel(example_data))  # compiles the structure (and keeps it on disk)
    assert first.fit_info["compiled_from"] == "compiled"
    assert cc.cache_info()["misses"] == 1
    reused = _fit(SlopeShiftModel(other_data))
    assert cc.cache_info()["hits"] == 1
    assert reused.fit_info["compiled_from"] == "memory"
    cc.clear_cache()
    from_disk = _fit(SlopeShiftModel(other_data))
    assert cc.cache_info() == {"entries": 1, "hits": 0, "disk_hits": 1, "misses": 0}
    assert from_disk.fit_info["compiled_from"] == "disk"
    monkeypatch.setenv("SLOPESHIFT_CACHE_DIR", "off")
    cc.clear_cache()
    fresh = _fit(SlopeShiftModel(other_data))
    assert cc.cache_info() == {"entries": 1, "hits": 0, "disk_hits": 0, "misses": 1}
    for name in ("beta_pre", "rho_cycle", "rho", "sigma", "mu_beta"):
        np.testing.assert_array_equal(reused.posterior[name].values, fresh.posterior[name].values)
        np.testing.assert_array_equal(from_disk.posterior[name].values,
                                      fresh.posterior[name].values)
    # the coordinates are the new model's, and the data really were swapped in
    assert list(reused.posterior["patient"].values) == list(other_data.patients.index)
    p03 = reused.posterior["alpha"].sel(patient="P03").mean()
    assert float(p03 - first.posterior["alpha"].sel(patient="P03").mean()) == pytest.approx(
        2.0, abs=0.5)


_CHILD = """
import os, sys, warnings
warnings.simplefilter("ignore")
from slopeshift import SlopeShiftModel, example_trial, compiled
model = SlopeShiftModel(example_trial())
if sys.argv[1] == "key":
    print(compiled.structure_key(model.pymc_model))
else:
    fit = model.fit(draws=100, tune=150, chains=2, random_seed=4, progressbar=False, check=False)
    print(fit.fit_info["compiled_from"], repr(float(fit.posterior["rho_bar"].values.sum())))
"""


def _child(*args: str) -> list[str]:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True,
                          text=True, timeout=600, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_the_key_is_the_same_in_another_process(example_data):
    assert _child("key") == [cc.structure_key(SlopeShiftModel(example_data).pymc_model)]


def test_a_fresh_process_loads_the_structure_from_disk_with_the_same_numbers(
        example_data, monkeypatch, tmp_path):
    monkeypatch.setenv("SLOPESHIFT_CACHE_DIR", str(tmp_path))
    cc.clear_cache()
    here = _fit(SlopeShiftModel(example_data))
    assert here.fit_info["compiled_from"] == "compiled"
    assert len(list(tmp_path.glob("*/meta.pkl"))) == 1
    source, value = _child("fit")
    assert source == "disk"
    assert value == repr(float(here.posterior["rho_bar"].values.sum()))


def test_a_damaged_disk_entry_is_compiled_again(example_data, monkeypatch, tmp_path):
    monkeypatch.setenv("SLOPESHIFT_CACHE_DIR", str(tmp_path))
    model = SlopeShiftModel(example_data)
    init = model._sampler_starts(model.initial_values())
    cc.clear_cache()
    cc.nutpie_model(model, init, set())
    (meta,) = tmp_path.glob("*/meta.pkl")
    meta.write_bytes(b"not a pickle")
    cc.clear_cache()
    _, source = cc.nutpie_model(SlopeShiftModel(example_data), init, set())
    assert source == "compiled"
    cc.clear_cache()
    _, source = cc.nutpie_model(SlopeShiftModel(example_data), init, set())
    assert source == "disk"  # written again by that compile


def test_the_disk_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SLOPESHIFT_CACHE_DIR", str(tmp_path / "here"))
    assert cc.disk_cache_dir() == tmp_path / "here"
    for off in ("", "off", "0", "none"):
        monkeypatch.setenv("SLOPESHIFT_CACHE_DIR", off)
        assert cc.disk_cache_dir() is None
    monkeypatch.delenv("SLOPESHIFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cc.disk_cache_dir() == tmp_path / "slopeshift" / "compiled"


def test_the_disk_cache_keeps_the_most_recently_used(monkeypatch, tmp_path):
    import time

    monkeypatch.setattr(cc, "MAX_DISK_ENTRIES", 2)
    for i, name in enumerate("abc"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.pkl").write_bytes(b"")
        os.utime(tmp_path / name / "meta.pkl", (time.time() + i, time.time() + i))
    cc._prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "c"]


def test_the_cache_keeps_the_most_recently_used(monkeypatch):
    monkeypatch.setattr(cc, "MAX_ENTRIES", 2)
    monkeypatch.setattr(cc, "_CACHE", type(cc._CACHE)())
    for key in "abc":
        cc._store(key, key.upper())
    assert list(cc._CACHE) == ["b", "c"]
    assert cc._lookup("b") == "B"  # used: now the most recent
    cc._store("d", "D")
    assert list(cc._CACHE) == ["b", "d"]
    assert cc._lookup("c") is None


def test_without_nutpies_helpers_it_compiles_every_time(example_data, monkeypatch):
    monkeypatch.setattr(cc, "_nutpie_helpers", lambda: None)
    cc.clear_cache()
    model = SlopeShiftModel(example_data)
    _, source = cc.nutpie_model(model, model.initial_values(), set())
    _, again = cc.nutpie_model(SlopeShiftModel(example_data), model.initial_values(), set())
    assert source == again == "compiled"
    assert cc.cache_info()["misses"] == 2


def test_the_lean_numba_mode_skips_the_rewrites_and_restores_the_mode():
    from pytensor.compile.mode import get_mode

    before = get_mode("NUMBA")
    with cc.lean_numba_mode():
        excluded = get_mode("NUMBA").provided_optimizer.exclude
        assert set(cc.SKIPPED_REWRITES) <= set(excluded)
    assert get_mode("NUMBA") is before
    with pytest.raises(RuntimeError), cc.lean_numba_mode():
        raise RuntimeError("a failed compile")
    assert get_mode("NUMBA") is before


def test_the_lean_compile_gives_the_same_density_and_gradient(example_data):
    """The model's log density and gradient, compiled with and without the skipped rewrites.

    On this graph ``local_greedy_distributor`` acts on the gradient (built after nutpie's own
    pre-compile rewrites), so the two compiled graphs differ; their values must not.
    """
    import nutpie

    model = SlopeShiftModel(example_data)
    init = model._sampler_starts(model.initial_values())
    lean, _ = cc.nutpie_model(model, init, set())
    plain = nutpie.compile_pymc_model(model.pymc_model, initial_points=init, jitter_rvs=set())
    start = lean.initial_point_func(0)
    np.testing.assert_allclose(start, plain.initial_point_func(0))
    rng = np.random.default_rng(3)
    for point in (start, start + rng.normal(0.0, 0.05, start.size)):
        # through the C callback that nutpie calls while sampling
        got, want = cc.logp_and_gradient(lean, point), plain.logp_func(point)
        assert np.isfinite(want[0])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-8, atol=1e-8)
