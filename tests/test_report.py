"""report.html: one self-contained page with every lesson, its receipt, its results against the
reference and its saved figures; `llm-course run` writes it; it renders in a real browser."""

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llm_course.env import record, reference
from llm_course.report import render, write_report
from llm_course.runner import run_course

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a test needs from the page: lessons, figures, images, and anything it links to."""

    def __init__(self, html: str):
        super().__init__()
        self.lessons, self.figures, self.images, self.links, self.rows = [], [], [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-lesson" in attrs:
            self.lessons.append(attrs["data-lesson"])
        if "data-figure" in attrs:
            self.figures.append(attrs["data-figure"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith(("data:", "#")):
                self.links.append(attrs[key])
        if tag == "tr":
            self.rows.append(attrs.get("class", ""))


def _lesson_with_figures(out: Path, stem: str, monkeypatch) -> dict:
    """Run save_figure as a lesson would (a plot and a table), return its results entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    monkeypatch.setenv(record.RESULTS_ENV, str(out / "metrics" / f"{stem}.json"))
    monkeypatch.setattr(record, "_RESULTS", {"metrics": {}, "receipt": {}})
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([3.0, 2.0, 1.5])
    assert record.save_figure(fig, "Loss curve").name == f"{stem}-loss-curve.png"
    record.save_figure(pd.DataFrame({"accuracy": [0.83, 0.84]}, index=["fp32", "int8"]), "the table")
    plt.close(fig)
    saved = json.loads((out / "metrics" / f"{stem}.json").read_text())
    return {"status": "ok", "wall_s": 12.3, "metrics": {"acc": 0.5},
            "receipt": {"scale": "laptop", "wall_s": 10.0, "precision": "bf16",
                        "device": {"kind": "cpu", "name": "x86_64", "threads": 2},
                        "load_avg": [1.0, 1.2, 1.1]},
            "checks": {"acc": {"value": 0.5, "bands": {"laptop": [0.75, 0.85]}}},
            "figures": [{**f, "file": f"metrics/{f['file']}"} for f in saved["figures"]]}


def test_the_page_holds_every_lesson_receipt_and_figure_and_needs_nothing_beside_it(tmp_path, monkeypatch):
    results = {"02_a": _lesson_with_figures(tmp_path, "02_a", monkeypatch),
               "03_b": {"status": "failed", "wall_s": 4.0, "failed_cell": 7, "error": "ValueError: x",
                        "metrics": {}, "receipt": {}}}
    ref = reference.make([{"02_a": {**results["02_a"], "metrics": {"acc": 0.8}}}], provisional="a test")
    html = render(results, tmp_path, ref)
    page = Page(html)
    assert page.lessons == ["02_a", "03_b"] and page.figures == ["Loss curve", "the table"]
    assert page.links == [], "the page must open offline, alone"
    assert len(page.images) == 1 and base64.b64decode(page.images[0].split(",", 1)[1]).startswith(PNG)
    assert "<td>fp32</td>" not in html and "<th>fp32</th>" in html  # the table inlined as HTML
    assert "OUTSIDE" in page.rows and "failed" in page.rows  # acc 0.5 is outside 0.75-0.85
    for text in ("Provisional reference: a test", "bf16", "1.0, 1.2, 1.1", "12.3", "ValueError: x",
                 "0.75 to 0.85"):
        assert text in html, text
    assert write_report(results, tmp_path, ref).read_text() == html


def test_the_page_says_when_there_is_no_reference_or_figure(tmp_path):
    html = render({"00_x": {"status": "ok", "wall_s": 1.0, "metrics": {"a": 1}, "receipt": {}}}, tmp_path)
    assert "No reference run was found" in html and "No figure saved." in html


NOTEBOOK = {
    "cells": [{"cell_type": "code", "id": "a", "metadata": {"tags": ["parameters"]}, "outputs": [],
               "execution_count": None, "source": "scale = None\n"},
              {"cell_type": "code", "id": "b", "metadata": {}, "outputs": [], "execution_count": None,
               "source": "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                         "from llm_course.env import record\n"
                         "fig, ax = plt.subplots()\nax.plot([1, 2])\n"
                         "record.save_figure(fig, 'line')\n"
                         "record.check_band('val', 2.0, {'smoke': (1.0, 3.0)}, scale)\n"
                         "record.record(val=2.0)\nrecord.receipt(seed=0, scale=scale)\n"}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5}


def test_llm_course_run_writes_the_report_with_checks_figures_and_commit(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    (books / "00_tiny.ipynb").write_text(json.dumps(NOTEBOOK))
    monkeypatch.setenv(reference.REFERENCE_ENV, str(tmp_path / "none.json"))
    results = run_course("smoke", out=tmp_path / "out", notebooks=books)
    entry = results["00_tiny"]
    assert entry["status"] == "ok", entry.get("error")
    assert entry["checks"]["val"]["inside"] is True and entry["figures"] == [
        {"name": "line", "file": "metrics/figures/00_tiny-line.png"}]
    assert "commit" in entry and "dirty" in entry
    page = Page((tmp_path / "out" / "report.html").read_text())
    assert page.lessons == ["00_tiny"] and page.figures == ["line"] and page.links == []


def _chromium():
    import importlib.util

    if importlib.util.find_spec("selenium") is None:
        return None
    for binary, driver in (("/usr/bin/chromium", "/usr/bin/chromedriver"),):
        if Path(binary).exists() and Path(driver).exists():
            return binary, driver
    return shutil.which("chromium") and (shutil.which("chromium"), shutil.which("chromedriver"))


@pytest.mark.skipif(not _chromium(), reason="needs chromium, chromium-driver and selenium")
def test_the_report_renders_offline_in_chromium(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    results = {"02_a": _lesson_with_figures(tmp_path, "02_a", monkeypatch)}
    path = write_report(results, tmp_path, None)
    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        browser.get(path.as_uri())
        lessons = browser.execute_script(
            "return [...document.querySelectorAll('section[data-lesson]')].map(s => s.dataset.lesson)")
        widths = browser.execute_script(
            "return [...document.images].map(i => i.complete ? i.naturalWidth : -1)")
        browser.save_screenshot(str(tmp_path / "report.png"))
    finally:
        browser.quit()
    assert lessons == ["02_a"]
    assert widths and all(w > 100 for w in widths), widths  # every image decoded and drawn
