"""The HTML report: embedded PNG figures, tables on disk, methods/results paragraphs, caveat."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import html  # noqa: E402
import re  # noqa: E402
from html.parser import HTMLParser  # noqa: E402
from importlib.metadata import version  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from slopeshift.report import (  # noqa: E402
    methods_paragraph,
    results_paragraph,
    software_versions,
    write_report,
)
from slopeshift.summaries import CAVEAT  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects image sources, headings and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.by_id: dict[str, str] = {}
        self.headings: list[str] = []
        self.tables = 0
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
            return
        if tag == "table":
            self.tables += 1
        self._open.append((tag, a.get("id")))
        if a.get("id"):
            self.by_id[a["id"]] = ""
        if tag in ("h2", "h3"):
            self.headings.append("")

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _tag, ident in self._open:
            if ident:
                self.by_id[ident] += data
        if self._open and self._open[-1][0] in ("h2", "h3"):
            self.headings[-1] += data


@pytest.fixture(scope="module")
def report(small_fit, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = write_report(small_fit, out, threshold=0.25, max_patients=8)
    plt.close("all")
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return path, page


def test_report_embeds_png_figures(report):
    path, page = report
    assert path.name == "report.html"
    assert len(page.images) == 8  # with the leave-one-patient-out PIT
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):], validate=True).startswith(PNG)
    assert not plt.get_fignums()  # every figure was closed after encoding


def test_report_writes_tables_and_paragraph_files(report):
    path, page = report
    out = path.parent
    for name in ("population", "cycles", "interval", "patients"):
        for file in (f"{name}_formatted.csv", f"{name}.md", f"{name}.tex"):
            assert (out / file).stat().st_size > 0
        assert not (out / f"{name}.csv").exists()  # formatted CSVs say so in their name
    assert r"\toprule" in (out / "cycles.tex").read_text()
    assert (out / "methods.txt").read_text().strip() == page.by_id["methods"].strip()
    assert (out / "results.txt").read_text().strip() == page.by_id["results"].strip()
    # data, model, priors, diagnostics, settings, 4 tables, software
    assert page.tables >= 10


def test_report_sections_and_caveat(report, small_fit):
    path, page = report
    raw = path.read_text(encoding="utf-8")
    text = html.unescape(raw)
    for heading in ("1. Data", "2. Model and priors", "3. Sampling and diagnostics",
                    "4. Methods (for a manuscript)", "5. Results (for a manuscript)",
                    "6. Tables", "7. Figures", "8. Software"):
        assert heading in page.headings
    assert CAVEAT in text
    ok = small_fit.diagnostics().attrs["ok"]
    assert ("Diagnostics healthy" if ok else "Diagnostics OUT OF BOUNDS") in text
    assert "The first 8 of 20 patients are shown." in text
    # who was followed for less, and how fast they declined (informative dropout)
    from slopeshift.classical import FOLLOWUP_NOTE, followup_summary, followup_table

    assert "Follow-up and dropout" in page.headings
    assert page.by_id["followup"].strip().startswith(
        followup_summary(followup_table(small_fit.data)))
    assert FOLLOWUP_NOTE in text
    # text is escaped: no raw '>' from a label reaches the markup
    assert "(slowing &gt; 25%)" in raw and "(slowing > 25%)" not in raw


def test_report_diagnostics_table_shows_model_parameters_first(report, small_fit):
    _, page = report
    main = page.by_id["diagnostics"]
    appendix = page.by_id["diagnostics-internal"]
    internal = ("log_sd_effects", "logit_patient_share", "z_new_patient", "z_new_cycle",
                "rho_cycle_at_mean_interval")
    diagnosed = set(small_fit.diagnostics().index)
    assert set(internal) <= diagnosed  # the default model samples these
    for name in internal:
        assert name not in main and name in appendix
    assert "_at_mean_interval" not in main and "z_" not in main and "logit" not in main
    # population quantities first, each with its meaning; per-patient ones after them
    assert main.index("rho_bar") < main.index("theta") < main.index("sigma") < main.index(
        "beta_pre")
    assert "population slowing over all cycles" in main
    assert "Appendix. Diagnostics of the sampler's coordinates" in page.headings


def test_methods_paragraph(report, small_fit):
    _, page = report
    methods = page.by_id["methods"]
    info = small_fit.fit_info
    assert f"random seed {info['random_seed']}" in methods
    assert f"{info['chains']} chains of {info['draws']} draws after {info['tune']}" in methods
    for name, label in (("pymc", "PyMC"), ("pytensor", "PyTensor"), ("arviz", "ArviZ"),
                        ("nutpie", "nutpie"), ("numpy", "NumPy"), ("slopeshift", "slopeshift")):
        assert f"{label} {version(name)}" in methods
    assert "relative to each patient's natural rate" in methods
    assert "R-hat (criterion \u2264 1.01)" in methods and "ESS \u2265 400" in methods
    assert "exceeded 25%" in methods
    assert "(the slowing priors are slopeshift's \"default\" set, weakly informative)" in methods
    # flat run-ins: how they were handled is part of the methods
    assert "whose run-in did not establish decline" in methods
    assert methods == methods_paragraph(small_fit, 0.25)


def test_results_paragraph(report, small_fit):
    _, page = report
    results = page.by_id["results"]
    assert results == results_paragraph(small_fit, 0.25)
    o = small_fit.data.overview()
    assert results.startswith(f"{o['patients']} patients contributed {o['visits']} visits")
    n1 = int(small_fit.cycles(0.25)["n_patients"].iloc[0])
    assert re.search(rf"\d+/{n1} \(95% CrI \d+ to \d+\) in cycle 1", results)
    assert "P(\u03b8 < 0)" in results
    assert "Primary estimand:" in results and "(exploratory)" in results
    assert results.endswith(CAVEAT)


def test_software_versions_and_bad_arguments(small_fit, tmp_path):
    v = software_versions(("numpy", "no-such-package-xyz"))
    assert v["numpy"] == version("numpy") and v["no-such-package-xyz"] == "not installed"
    assert "python" in v
    with pytest.raises(ValueError, match="max_patients"):
        write_report(small_fit, tmp_path, max_patients=0)
