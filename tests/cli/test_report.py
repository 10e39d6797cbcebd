"""simseq report: report.html (every section, every figure inline and loading in a real
browser, nothing from the network) and results.xlsx, from run + psa + dsa results."""

import base64
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from simseq.cli import main
from simseq.report_html import SECTIONS
from simseq.workbook import SHEETS

ROOT = Path(__file__).resolve().parents[2]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"
# calibration, validation, survival, PFS, time on line, occupancy, CE plane, CEAC, EVPI,
# EVPPI, 2 tornadoes
FIGURES = 12


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """run + psa + dsa of cea_base_case (small), then `simseq report` on them."""
    out = tmp_path_factory.mktemp("report") / "cea"
    steps = [
        ("run", CEA, "--out", out, "--patients", 5000, "--quiet"),
        ("psa", CEA, "--out", out / "psa", "--draws", 30, "--patients", 500, "--quiet"),
        ("dsa", CEA, "--out", out / "dsa", "--patients", 1000, "--quiet"),
        ("report", out),
    ]
    for args in steps:
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    return out


class Page(HTMLParser):
    """What a reader's browser would fetch and show: sections, headings, images, links."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.urls, self.svgs = [], [], [], 0
        self._in_h2, self.headings = False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs)
        if tag == "svg":
            self.svgs += 1
        if tag == "h2":
            self._in_h2 = True
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith(("#", "data:")):
                self.urls.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data.strip())


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_has_every_section_and_needs_no_network(results):
    page = parse(results / "report.html")
    assert page.sections == [sid for sid, _ in SECTIONS]
    assert page.headings == [heading for _, heading in SECTIONS]
    assert page.urls == []  # nothing to fetch: it opens offline
    assert len(page.images) == FIGURES and page.svgs >= 1  # the model diagram
    for img in page.images:
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
        assert img.get("alt")
    text = (results / "report.html").read_text()
    assert "ATZ/BEV, then lenvatinib" in text and "ILLUSTRATIVE" in text
    assert "TRANSPORTED" in text and "Population EVPI uses 7,000 patients a year" in text
    # time on treatment: lenvatinib and sorafenib stop early for adverse events
    assert "Median on treatment, months" in text and "<td>lenvatinib</td>" in text
    assert "Common population and as observed" in text
    assert "Not available" not in text  # every figure was there to embed
    # the validation table: every row of validation.csv, and the MAPE of summary.json
    summary = json.loads((results / "summary.json").read_text())
    assert f"{summary['validation_mape']['percent']:.1f}%</strong>" in text
    assert text.count("quoted_in_chon2024.yoo.lenvatinib_2l_after_atz_bev") == 2


def test_report_renders_entries_other_commands_add(results, tmp_path):
    """held_fixed, warnings and PSA outputs are shown whatever their entries hold."""
    copy = tmp_path / "cea"
    shutil.copytree(results, copy)
    path = copy / "psa" / "psa_summary.json"
    psa = json.loads(path.read_text())
    psa["random_effects"] = [{"record": "second_line.lenvatinib.os", "tau2": 0.0123, "I2": 0.3}]
    psa["held_fixed"].append({"name": "value:x", "value": [1, 2], "because": "new reason"})
    psa["warnings"].append({"kind": "heterogeneity", "text": "I^2 above 50%"})
    path.write_text(json.dumps(psa))
    assert invoke("report", copy).exit_code == 0
    text = (copy / "report.html").read_text()
    for fragment in ("random_effects", "tau2", "0.0123", "new reason", "I^2 above 50%"):
        assert fragment in text


def test_report_without_psa_or_dsa_says_what_is_missing(results, tmp_path):
    only_run = tmp_path / "run"
    shutil.copytree(results, only_run, ignore=shutil.ignore_patterns("psa", "dsa", "report*"))
    assert invoke("report", only_run).exit_code == 0
    page = parse(only_run / "report.html")
    assert page.sections == [sid for sid, _ in SECTIONS]
    assert len(page.images) == 6  # calibration, validation, survival, PFS, time on line, occupancy
    assert "No PSA results" in (only_run / "report.html").read_text()


def test_report_of_a_directory_without_results_is_refused(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "no summary.json" in result.output
    assert not (tmp_path / "report.html").exists()


def test_workbook_sheets_with_units(results):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(results / "results.xlsx", read_only=True)
    assert book.sheetnames == list(SHEETS)
    headers = {ws.title: [c.value for c in next(ws.iter_rows(max_row=1))] for ws in book}
    assert "value (in unit)" in headers["inputs"] and "evidence" in headers["inputs"]
    assert "median OS (months)" in headers["summary"]
    assert headers["survival"][:3] == ["sequence", "time (months)", "OS (proportion alive)"]
    assert "costs_discounted (USD)" in headers["cea"] and "status" in headers["cea"]
    assert "costs (USD, discounted)" in headers["psa_draws"]
    assert "published (in unit)" in headers["validation"] and "role" in headers["validation"]
    assert any(h and h.startswith("P(best) at WTP 150000") for h in headers["psa_summary"])
    assert book["psa_draws"].max_row == 1 + 30 * 5  # draws x sequences, and the header


def _browser():
    """A headless Chromium driven by selenium, or the reason there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[dev]')"
    binary = next(
        (
            shutil.which(b)
            for b in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(b)
        ),
        None,
    )
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if binary is None or driver is None:
        return None, "no Chromium or chromedriver on PATH (Debian: chromium, chromium-driver)"
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(driver)), ""


def test_every_figure_loads_in_a_real_browser(results):
    browser, reason = _browser()
    if browser is None:
        pytest.skip(reason)
    try:
        from selenium.webdriver.support.ui import WebDriverWait

        browser.get((results / "report.html").as_uri())
        # a loaded machine can hand back a page still parsing its 1.6 MB of inline figures:
        # wait (at most a minute) for the document and every image in it to be complete
        WebDriverWait(browser, 60).until(
            lambda b: b.execute_script(
                "return document.readyState === 'complete' && "
                "Array.from(document.images).every(i => i.complete)"
            )
        )
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,"
            " i.naturalHeight])"
        )
        diagrams = browser.execute_script(
            "return Array.from(document.querySelectorAll('svg')).map(s => s.getBBox().width)"
        )
        sections = browser.execute_script(
            "return Array.from(document.querySelectorAll('section')).map(s => s.id)"
        )
    finally:
        browser.quit()
    assert len(images) == FIGURES
    # decoded: a broken image is complete with a natural width of 0
    assert [(alt, ok, w, h) for alt, ok, w, h in images if not ok or w == 0] == []
    assert all(w == 1200 for _, _, w, _ in images)  # 8 in at 150 dpi
    assert diagrams and all(width > 0 for width in diagrams)
    assert sections == [sid for sid, _ in SECTIONS]


def test_run_with_report_on_a_scenario_without_economics(tmp_path):
    out = tmp_path / "tiny"
    tiny = ROOT / "tests" / "fixtures" / "tiny.yaml"
    result = invoke("run", tiny, "--out", out, "--quiet", "--report", "--xmax", 30)
    assert result.exit_code == 0, result.output
    assert f"written {out / 'report.html'}" in result.output
    page = parse(out / "report.html")
    assert page.sections == [sid for sid, _ in SECTIONS] and page.urls == []
    assert "This scenario has no economics section" in (out / "report.html").read_text()
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(out / "results.xlsx", read_only=True)
    assert book.sheetnames == ["inputs", "summary", "survival"]  # no CEA, no PSA


@pytest.mark.parametrize(
    "entry, fragments",
    [
        (
            "{evidence: no.such.record, statistic: median, outcome: os, origin: sequence_start}",
            ["validation.0.evidence", "no.such.record"],
        ),
        (
            "{evidence: second_line.tki_ici.os.yin2025, statistic: median, outcome: os, "
            "origin: sequence_start}",
            ["validation.0.origin", "measured from 2l_start", "origin: line_2"],
        ),
        (
            "{evidence: first_line.atz_bev.pfs.imbrave150, statistic: median, outcome: pfs, "
            "origin: sequence_start, sequences: [nope]}",
            ["validation.0.sequences", "nope", "atzbev_len"],
        ),
    ],
)
def test_bad_validation_entries_are_refused_with_their_key_path(tmp_path, entry, fragments):
    scenario = tmp_path / "bad.yaml"
    base = ROOT / "scenarios" / "base_case.yaml"
    scenario.write_text(f"extends: {base}\nname: bad\nvalidation:\n  - {entry}\n")
    result = CliRunner().invoke(main, ["validate", str(scenario)])
    assert result.exit_code == 2
    for fragment in fragments:
        assert fragment in result.output
