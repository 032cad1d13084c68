"""Figures: each is rendered to a PNG and checked for what it drew."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from slopeshift import plots  # noqa: E402
from slopeshift.tables import responder_counts  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render(fig, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=50)
    assert path.read_bytes().startswith(PNG)


def _threshold_lines(ax, threshold: float = 0.25):
    return [ln for ln in ax.get_lines()
            if ln.get_label() == f"threshold ({100 * threshold:g}%)"]


def _visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]


def test_trajectories_grid(small_fit, tmp_path):
    fig = plots.plot_trajectories(small_fit, ncols=4)
    _render(fig, tmp_path, "trajectories")
    d = small_fit.design
    axes = _visible_axes(fig)
    assert len(axes) == d.sizes["patient"]
    assert len(fig.axes) == 4 * int(np.ceil(d.sizes["patient"] / 4))
    for ax, p in zip(axes, d["patient"].values, strict=True):
        n_inj = int(d["n_cycles"].sel(patient=p))
        assert len(ax.get_lines()) == 1 + n_inj  # posterior mean + one line per injection
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        points = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(bands) == 2 and len(points) == 1
        pos = int(np.flatnonzero(d["patient"].values == p)[0])
        assert len(points[0].get_offsets()) == int((d["patient_index"].values == pos).sum())
        assert ax.get_title().startswith(str(p))
    assert axes[0].get_ylabel() == "ALSFRS-R total (points)"
    assert axes[-1].get_xlabel() == "Months since first injection"
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert {"observed", "posterior mean", "50% interval", "95% interval", "injection"} <= set(
        legend)


def test_trajectories_one_patient_into_given_ax(small_fit, tmp_path):
    untreated = str(small_fit.design["patient"].values[~small_fit.design["treated"].values][0])
    fig0, ax = plt.subplots()
    fig = plots.plot_trajectories(small_fit, untreated, axes=ax)
    assert fig is fig0 and len(fig.axes) == 1
    assert ax.get_title() == f"{untreated} (untreated)"
    assert len(ax.get_lines()) == 1  # no injection line
    _render(fig, tmp_path, "one")
    with pytest.raises(ValueError, match="unknown or no patient"):
        plots.plot_trajectories(small_fit, ["nobody"])
    with pytest.raises(ValueError, match="axes has 1 Axes"):
        plots.plot_trajectories(small_fit, ["P01", "P02"], axes=ax)


def test_patient_forest(small_fit, tmp_path):
    fig = plots.plot_patient_forest(small_fit, threshold=0.25, figsize=(6, 7))
    _render(fig, tmp_path, "forest")
    (ax,) = fig.axes
    tab = small_fit.patients(0.25)
    treated = tab[tab["status"] == "treated"].sort_values("mean")
    others = tab[tab["status"] != "treated"]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    x, y = bars[0].lines[0].get_data()
    np.testing.assert_allclose(x, 100 * treated["mean"].to_numpy())
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) > 0)  # ordered, largest at the top
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert set(labels) == set(tab["patient"])
    texts = [t.get_text() for t in ax.texts]
    assert sum("no slowing estimated" in t for t in texts) == len(others) >= 1
    assert "P(>25%)" in texts
    (line,) = _threshold_lines(ax)
    assert list(line.get_xdata()) == [25.0, 25.0]
    assert "% of pre-treatment rate" in ax.get_xlabel()


def test_cycles(small_fit, tmp_path):
    fig = plots.plot_cycles(small_fit, threshold=0.25)
    _render(fig, tmp_path, "cycles")
    (ax,) = fig.axes
    cyc = small_fit.cycles(0.25)
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    _, y = bars.lines[0].get_data()
    pop = small_fit.population(0.25).set_index("quantity")  # at the intervals given
    given = pop.loc[[f"rho_cycle_given[{k}]" for k in cyc["cycle"]], "mean"]
    np.testing.assert_allclose(y, 100 * given.to_numpy())
    sl = small_fit.slowing(0.25)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) == int(sl["observed"].sum())
    (line,) = _threshold_lines(ax)
    assert list(line.get_ydata()) == [25.0, 25.0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0] == f"Cycle 1\n(n = {int(cyc['n_patients'].iloc[0])})"
    counts = responder_counts(small_fit, 0.25)
    texts = {t.get_text() for t in ax.texts}
    assert set(counts.loc[counts["scope"] != "overall", "label"]) <= texts
    assert ax.get_ylabel() == plots.SLOWING_LABEL


def test_responders(small_fit, tmp_path):
    fig = plots.plot_responders(small_fit, threshold=0.25, scope="cycle 1")
    _render(fig, tmp_path, "responders")
    (ax,) = fig.axes
    g = small_fit.responders(0.25).query("scope == 'cycle 1'")
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == int(g["n_evaluable"].iloc[0]) + 1
    np.testing.assert_allclose([b.get_height() for b in bars], g["p_eq"].to_numpy())
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "P(R \u2265 r)"]
    np.testing.assert_allclose(line.get_ydata(), g["p_ge"].to_numpy())
    assert ax.get_ylabel() == "Posterior probability"
    assert "slowing > 25%" in ax.get_xlabel()
    assert ax.get_title() == "Cycle 1"
    with pytest.raises(ValueError, match="scope must be one of"):
        plots.plot_responders(small_fit, scope="cycle 9")


def test_interval_effect(small_fit, tmp_path):
    grid = np.linspace(3, 6, 7)
    fig0, ax = plt.subplots()
    fig = plots.plot_interval_effect(small_fit, grid, ax=ax)
    assert fig is fig0
    _render(fig, tmp_path, "interval")
    pred = small_fit.interval_effect(0.25, intervals=grid).iloc[1:]
    (mean,) = [ln for ln in ax.get_lines() if ln.get_label() == "posterior mean"]
    np.testing.assert_allclose(mean.get_xdata(), grid)
    np.testing.assert_allclose(mean.get_ydata(), 100 * pred["mean"].to_numpy())
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1
    assert len(_threshold_lines(ax)) == 1
    assert "months" in ax.get_xlabel() and "%" in ax.get_ylabel()
    assert "\u03b8 =" in ax.get_title()
    with pytest.raises(ValueError, match="at least two"):
        plots.plot_interval_effect(small_fit, [3.0])


def test_trace_and_rank(small_fit, tmp_path):
    n_chains = small_fit.posterior.sizes["chain"]
    fig = plots.plot_trace(small_fit, ["theta", "rho_cycle"])
    _render(fig, tmp_path, "trace")
    n_rows = 1 + small_fit.posterior.sizes["cycle"]
    assert len(fig.axes) == 2 * n_rows
    trace_axes = fig.axes[1::2]
    assert all(len(a.get_lines()) >= n_chains for a in trace_axes)
    assert [a.get_ylabel() for a in fig.axes[0::2]][:2] == ["theta", "rho_cycle[1]"]
    assert fig.axes[-1].get_xlabel().startswith("Draw")
    fig = plots.plot_trace(small_fit, ["alpha"], kind="rank", coords={"patient": ["P01"]})
    _render(fig, tmp_path, "rank")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "Normalised rank"
    default = plots.plot_trace(small_fit)
    assert {"theta", "sigma", "rho_bar"} <= {a.get_ylabel() for a in default.axes[0::2]}
    with pytest.raises(ValueError, match="unknown or no variable"):
        plots.plot_trace(small_fit, ["nope"])
    with pytest.raises(ValueError, match="coords="):
        plots.plot_trace(small_fit, ["rho"])
    with pytest.raises(ValueError, match="kind must be"):
        plots.plot_trace(small_fit, kind="pair")


def test_ppc(small_fit, tmp_path):
    fig = plots.plot_ppc(small_fit, random_seed=3, n_replicates=10)
    _render(fig, tmp_path, "ppc")
    ecdf_ax, hist_ax = fig.axes
    assert len(ecdf_ax.get_lines()) == 10 + 1
    (observed,) = [ln for ln in ecdf_ax.get_lines() if ln.get_label() == "observed"]
    assert observed.get_ydata().max() == pytest.approx(1.0)
    assert hist_ax.get_xlabel() == "ALSFRS-R total (points)"
    assert ecdf_ax.get_ylabel() == "Cumulative proportion of visits"
    assert len(hist_ax.patches) > 10
