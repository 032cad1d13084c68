"""The vectorised R-hat and ESS give ArviZ's numbers, element by element."""

from __future__ import annotations

import numpy as np
import pytest
from arviz_stats.base import array_stats
from scipy import stats

from slopeshift.convergence import _ranks, diagnose, ess_bulk, ess_tail, rhat_rank


def _draws(n_draw: int, n_chain: int = 4) -> np.ndarray:
    """Independent, strongly autocorrelated, offset, heavy-tailed and tied draws."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(60, n_chain, n_draw))
    for i in range(10, 25):  # AR(1), phi up to 0.99: long Geyer sequences
        phi = 0.3 + 0.046 * (i - 10)
        for t in range(1, n_draw):
            x[i, :, t] = phi * x[i, :, t - 1] + np.sqrt(1 - phi**2) * x[i, :, t]
    x[25:35] += rng.normal(0, 0.4, (10, n_chain, 1))  # chains that disagree
    x[35:45] = rng.standard_t(2, size=(10, n_chain, n_draw))
    x[45:55] = rng.integers(0, 3, size=(10, n_chain, n_draw))  # ties
    x[55] = 1.0  # constant
    x[56, :, : n_draw // 2] = 0.0  # two values, half and half
    return x


@pytest.mark.parametrize(("n_draw", "n_chain"), [(1000, 4), (301, 2), (40, 3)])
def test_matches_arviz(n_draw, n_chain):
    x = _draws(n_draw, n_chain)
    x = x[np.ptp(x, axis=(1, 2)) > 0]  # R-hat of a constant is NaN in both, with a warning
    np.testing.assert_allclose(rhat_rank(x), array_stats.rhat(x), rtol=1e-10)
    np.testing.assert_allclose(ess_bulk(x), array_stats.ess(x, method="bulk"), rtol=1e-8)
    np.testing.assert_allclose(ess_tail(x, 0.95),
                               array_stats.ess(x, method="tail", prob=0.95), rtol=1e-8)


def test_constant_quantity_has_full_ess():
    x = _draws(200)
    assert ess_bulk(x[55:56])[0] == ess_tail(x[55:56])[0] == 800


def test_ranks_average_ties_like_scipy():
    rng = np.random.default_rng(3)
    for a in (rng.integers(0, 4, size=(20, 101)).astype(float), rng.normal(size=(20, 100))):
        np.testing.assert_array_equal(_ranks(a), stats.rankdata(a, method="average", axis=1))


@pytest.mark.parametrize(("n_draw", "n_chain"), [(1000, 4), (301, 2)])
def test_one_pass_gives_the_same_numbers(n_draw, n_chain):
    x = _draws(n_draw, n_chain)
    x = x[np.ptp(x, axis=(1, 2)) > 0]
    rhat, bulk, tail = diagnose(x)
    np.testing.assert_array_equal(rhat, rhat_rank(x))
    np.testing.assert_array_equal(bulk, ess_bulk(x))
    np.testing.assert_array_equal(tail, ess_tail(x, 0.95))
    np.testing.assert_allclose(rhat, array_stats.rhat(x), rtol=1e-10)
