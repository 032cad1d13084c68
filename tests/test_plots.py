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
from slopeshift.tables import format_probability, responder_counts  # noqa: E402

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
        if not bool(d["treated"].sel(patient=p)):  # its own time axis, always labelled
            assert ax.get_xlabel() == plots.UNTREATED_MONTHS_LABEL
    assert axes[0].get_ylabel() == "ALSFRS-R total (points)"
    assert axes[-1].get_xlabel() == "Months since first injection"
    # one legend for the figure, under the panels, with every entry (the untreated patient's
    # panel has no injection line, the others do)
    assert all(ax.get_legend() is None for ax in axes)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(legend) == sorted(
        {"observed", "posterior mean", "50% interval", "95% interval", "injection"})


def test_trajectories_share_y_by_default(small_fit, tmp_path):
    ids = [str(p) for p in small_fit.design["patient"].values[:6]]
    fig = plots.plot_trajectories(small_fit, ids, ncols=3)
    _render(fig, tmp_path, "shared")
    axes = _visible_axes(fig)
    limits = {ax.get_ylim() for ax in axes}
    assert len(limits) == 1  # the same range on every panel
    (low, high), = limits
    for ax in axes:  # covering every patient's scores and 95% band
        for c in ax.collections:
            ys = (c.get_offsets()[:, 1] if isinstance(c, PathCollection)
                  else np.concatenate([path.vertices[:, 1] for path in c.get_paths()]))
            assert low <= ys.min() and ys.max() <= high
    free = plots.plot_trajectories(small_fit, ids, ncols=3, sharey=False)
    _render(free, tmp_path, "free")
    assert len({ax.get_ylim() for ax in _visible_axes(free)}) > 1


def test_trajectories_integer_ticks_on_integer_scale(small_fit, tmp_path):
    assert small_fit.data.spec.integer  # ALSFRS-R: 0-48 whole points
    fig = plots.plot_trajectories(small_fit, ["P01", "P02"], sharey=False)
    _render(fig, tmp_path, "ticks")
    for ax in fig.axes:
        ticks = ax.get_yticks()
        assert len(ticks) >= 2
        np.testing.assert_array_equal(ticks, np.round(ticks))
        labels = [t.get_text().replace("\u2212", "-") for t in ax.get_yticklabels()]
        assert all(lab.lstrip("-").isdigit() for lab in labels if lab)
        # also on a range narrow enough for matplotlib's default ticks to be half points
        ax.set_ylim(30.2, 32.8)
        ticks = ax.get_yticks()
        np.testing.assert_array_equal(ticks, np.round(ticks))


def test_trajectories_one_patient_into_given_ax(small_fit, tmp_path):
    untreated = str(small_fit.design["patient"].values[~small_fit.design["treated"].values][0])
    fig0, ax = plt.subplots()
    fig = plots.plot_trajectories(small_fit, untreated, axes=ax)
    assert fig is fig0 and len(fig.axes) == 1
    assert ax.get_title() == f"{untreated} (untreated)"
    assert ax.get_xlabel() == plots.UNTREATED_MONTHS_LABEL
    assert max(ax.collections[-1].get_offsets()[:, 0]) == pytest.approx(0.0)  # last visit: 0
    assert len(ax.get_lines()) == 1  # no injection line
    assert ax.get_legend() is not None  # drawn into given axes: the legend stays on them
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
    # untreated and not-evaluable patients: "no slowing estimated"; flat run-in patients:
    # their slope change instead
    flat = int((others["status"] == "flat run-in").sum())
    assert sum("no slowing estimated" in t for t in texts) == len(others) - flat >= 1
    assert sum(t.startswith("flat run-in (decline not established)") for t in texts) == flat
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


@pytest.mark.parametrize("scope", ["overall", "cycle 1"])
def test_responders_labels_clear_of_the_line(small_fit, tmp_path, scope):
    fig = plots.plot_responders(small_fit, threshold=0.25, scope=scope)
    _render(fig, tmp_path, "labels")
    (ax,) = fig.axes
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "P(R \u2265 r)"]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text()]
    assert labels  # some probabilities are printed
    points = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
    marker_px = line.get_markersize() * fig.dpi / 72
    boxes = [t.get_window_extent(renderer).padded(marker_px) for t in labels]
    for box in boxes:  # no point (nor its marker) under a label
        assert not any(box.contains(x, y) for x, y in points)
    for t in labels:  # each label above and to the right of its own point
        x, y = ax.transData.transform(t.xy)
        box = t.get_window_extent(renderer)
        assert box.x0 > x and box.y0 > y
    for a, b in zip(boxes, boxes[1:], strict=False):  # labels do not overlap each other
        assert not a.overlaps(b)
    shown = line.get_ydata()[(line.get_ydata() >= 0.005) & (line.get_ydata() <= 0.995)]
    texts = {t.get_text() for t in labels}
    assert texts <= {format_probability(p, 2) for p in shown}  # 0.995 prints as ">0.99"


def _observed_intervals(fit) -> np.ndarray:
    d = fit.design
    g = d["interval"].where(d["effect"]).values.ravel()
    return g[np.isfinite(g)]


def _solid_and_dashed(ax):
    solid = [ln for ln in ax.get_lines() if ln.get_label() == "posterior mean"]
    dashed = [ln for ln in ax.get_lines()
              if ln.get_linestyle() == "--" and ln.get_color() == plots.OKABE_ITO["blue"]]
    return solid, dashed


def test_interval_effect_spans_the_observed_intervals(small_fit, tmp_path):
    seen = _observed_intervals(small_fit)
    fig = plots.plot_interval_effect(small_fit)
    _render(fig, tmp_path, "interval")
    (ax,) = fig.axes
    (mean,), dashed = _solid_and_dashed(ax)
    x = mean.get_xdata()
    assert x.min() == pytest.approx(seen.min()) and x.max() == pytest.approx(seen.max())
    pred = small_fit.interval_effect(0.25, intervals=x).iloc[1:]
    np.testing.assert_allclose(mean.get_ydata(), 100 * pred["mean"].to_numpy())
    assert not dashed  # nothing drawn beyond the observed range by default
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1
    assert len(_threshold_lines(ax)) == 1
    (rug,) = [ln for ln in ax.get_lines() if ln.get_label() == "observed cycle intervals"]
    np.testing.assert_allclose(np.sort(rug.get_xdata()), np.sort(seen))
    # the x label says what the numbers are: months between injections (cycle_length)
    assert ax.get_xlabel() == "Injection interval (months from an injection to the next)"
    assert "%" in ax.get_ylabel() and "\u03b8 =" in ax.get_title()
    # the legend sits outside the axes, clear of the curve and the threshold line
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1


def test_interval_effect_marks_extrapolation(small_fit, tmp_path):
    seen = _observed_intervals(small_fit)
    grid = np.linspace(1.0, 7.0, 13)
    assert grid.min() < seen.min() and seen.max() < grid.max()
    fig0, ax = plt.subplots()
    fig = plots.plot_interval_effect(small_fit, grid, ax=ax)
    assert fig is fig0
    _render(fig, tmp_path, "extrapolated")
    (mean,), dashed = _solid_and_dashed(ax)
    assert mean.get_linestyle() == "-"
    assert mean.get_xdata().min() == pytest.approx(seen.min())
    assert mean.get_xdata().max() == pytest.approx(seen.max())
    assert len(dashed) == 2  # below and above the observed range, joined to the solid part
    below, above = sorted(dashed, key=lambda ln: ln.get_xdata().min())
    assert below.get_xdata().min() == pytest.approx(1.0)
    assert below.get_xdata().max() == pytest.approx(seen.min())
    assert above.get_xdata().min() == pytest.approx(seen.max())
    assert above.get_xdata().max() == pytest.approx(7.0)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3
    assert sorted(b.get_alpha() for b in bands) == [0.15, 0.15, 0.4]  # lighter beyond
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "mean, extrapolated" in legend and "95% interval, extrapolated" in legend
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
    for a in trace_axes:  # one trace per chain, every draw
        lengths = {len(ln.get_xdata()) for ln in a.get_lines()}
        assert small_fit.posterior.sizes["draw"] in lengths
    assert [a.get_ylabel() for a in trace_axes][:2] == ["theta", "rho_cycle[1]"]
    assert [a.get_xlabel() for a in fig.axes[0::2]][:2] == ["theta", "rho_cycle[1]"]
    assert fig.axes[-1].get_xlabel().startswith("Draw")
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [f"chain {c}" for c in range(n_chains)]
    fig = plots.plot_trace(small_fit, ["alpha"], kind="rank", coords={"patient": ["P01"]})
    _render(fig, tmp_path, "rank")
    assert len(fig.axes) == 2 and fig.axes[1].get_xlabel().startswith("Fractional rank")
    assert fig.axes[1].get_ylabel() == "alpha[P01]"
    default = plots.plot_trace(small_fit)
    drawn = {a.get_ylabel() for a in default.axes[1::2]}
    assert {"theta", "sigma", "rho_bar", "sd_drift", "acceleration"} <= drawn
    with pytest.raises(ValueError, match="unknown or no variable"):
        plots.plot_trace(small_fit, ["nope"])
    with pytest.raises(ValueError, match="coords="):
        plots.plot_trace(small_fit, ["rho"])
    with pytest.raises(ValueError, match="kind must be"):
        plots.plot_trace(small_fit, kind="pair")


def test_trace_into_given_axes(small_fit, tmp_path):
    fig0, axs = plt.subplots(2, 2)
    fig = plots.plot_trace(small_fit, ["theta", "sigma"], axes=axs)
    assert fig is fig0 and len(fig.axes) == 4
    _render(fig, tmp_path, "given")
    assert [a.get_ylabel() for a in axs[:, 1]] == ["theta", "sigma"]
    sigma = small_fit.posterior["sigma"].isel(chain=0).values
    assert any(np.array_equal(ln.get_ydata(), sigma) for ln in axs[1, 1].get_lines())


def test_ppc(small_fit, tmp_path):
    fig = plots.plot_ppc(small_fit, random_seed=3, n_replicates=10)
    _render(fig, tmp_path, "ppc")
    ecdf_ax, hist_ax = fig.axes
    assert len(ecdf_ax.get_lines()) == 10 + 1
    (observed,) = [ln for ln in ecdf_ax.get_lines()
                   if ln.get_color() == plots.OKABE_ITO["black"]]
    assert np.max(observed.get_ydata()) == pytest.approx(1.0)
    legend = [t.get_text() for t in ecdf_ax.get_legend().get_texts()]
    assert legend == ["replicated (10 draws)", "observed"]
    assert hist_ax.get_xlabel() == "ALSFRS-R total (points)"
    assert ecdf_ax.get_ylabel() == "Cumulative proportion of visits"
    assert len(hist_ax.patches) > 10
