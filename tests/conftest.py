"""Shared fixtures: one compiled model and one small fit per session, reused by all tests."""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest

from slopeshift import SlopeShiftModel, example_trial, simulate_trial

# compiled models go to an on-disk cache of this test run (also for the examples and scripts
# the tests run in child processes), not to the user's cache
if "SLOPESHIFT_CACHE_DIR" not in os.environ:
    os.environ["SLOPESHIFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="slopeshift-test-cache-")


@pytest.fixture(scope="session")
def example_data():
    """The bundled simulated example trial (ALSFRS-R)."""
    return example_trial()


@pytest.fixture(scope="session")
def example_model(example_data):
    """Default model of the example trial (compiled once, on first fit)."""
    return SlopeShiftModel(example_data)


@pytest.fixture(scope="session")
def small_fit(example_model):
    """A quick fit of the example (2 chains x 200 draws): for wiring, not for inference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return example_model.fit(draws=200, tune=300, chains=2, random_seed=11,
                                 progressbar=False, check=False)


@pytest.fixture(scope="session")
def small_trial():
    """A small simulated trial (12 patients, one untreated) and its truth."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_trial(12, n_untreated=1, random_seed=5)
