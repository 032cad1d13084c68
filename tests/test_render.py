"""Figures drawn in two processes: the same PNGs as in one, whatever the helper does."""

import os
import sys
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from slopeshift import _render  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the forked helper is used on Linux only")

PARENT = os.getpid()


def _slow_here():
    time.sleep(0.3)  # so that the helper certainly draws some of the figures


def _maker(k: int, *, in_helper=None, here=None):
    """A figure that differs with k; ``in_helper`` runs first when this is the forked helper,
    ``here`` when it is not."""
    def make():
        if in_helper is not None and os.getpid() != PARENT:
            in_helper()
        if here is not None and os.getpid() == PARENT:
            here()
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(range(k + 2), [v**0.5 for v in range(k + 2)])
        ax.set_title(f"figure {k}")
        return fig
    return make


def test_two_workers_give_the_same_pngs_in_the_same_order():
    makers = [_maker(k, here=_slow_here) for k in range(5)]
    serial = _render.render(makers, dpi=50, workers=1)
    assert len(set(serial)) == 5
    assert _render.render(makers, dpi=50, workers=2) == serial


def test_one_figure_and_bad_workers():
    assert _render.render([_maker(0)], dpi=50, workers=2) == _render.render([_maker(0)], 50)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        _render.render([_maker(0)], dpi=50, workers=0)


def test_a_helper_that_dies_leaves_its_figures_to_this_process():
    makers = [_maker(k, in_helper=lambda: os._exit(3), here=_slow_here) for k in range(4)]
    assert _render.render(makers, dpi=50, workers=2) == _render.render(makers, 50, workers=1)


def test_an_error_in_the_helper_is_raised_here():
    def boom():
        raise RuntimeError("figure failed")

    def make():
        boom()

    with pytest.raises(RuntimeError, match="figure failed"):
        _render.render([_maker(0), make], dpi=50, workers=2)


def test_a_stalled_helper_is_stopped_and_its_figures_drawn_here(monkeypatch):
    monkeypatch.setattr(_render, "_MIN_WAIT", 1.0)
    monkeypatch.setattr(_render, "_WAIT_FACTOR", 1.0)
    makers = [_maker(k, in_helper=lambda: time.sleep(60), here=_slow_here) for k in range(3)]
    t0 = time.perf_counter()
    out = _render.render(makers, dpi=50, workers=2)
    assert time.perf_counter() - t0 < 30
    assert out == _render.render(makers, 50, workers=1)


def test_the_helpers_warnings_are_issued_here():
    def warn():
        warnings.warn("drawn with care", UserWarning, stacklevel=1)

    makers = [_maker(k, in_helper=warn, here=_slow_here) for k in range(4)]
    with pytest.warns(UserWarning, match="drawn with care"):
        _render.render(makers, dpi=50, workers=2)


def test_a_daemonic_process_draws_alone(monkeypatch, tmp_path):
    import multiprocessing as mp

    marker = tmp_path / "helper-ran"
    makers = [_maker(k, in_helper=marker.touch, here=_slow_here) for k in range(3)]
    monkeypatch.setitem(mp.current_process()._config, "daemon", True)
    assert _render.render(makers, dpi=50, workers=2) == _render.render(makers, 50, workers=1)
    assert not marker.exists()
    monkeypatch.setitem(mp.current_process()._config, "daemon", False)
    _render.render(makers, dpi=50, workers=2)
    assert marker.exists()
