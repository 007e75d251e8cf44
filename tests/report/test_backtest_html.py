"""backtest.html: the realized metric per policy over time with the threshold and retrain marks, cost per policy,
and every decision; self-contained, checked in a real headless browser."""

from __future__ import annotations

import json
from pathlib import Path

from selfheal_bench.backtest_html import write_backtest_html

from .browser import Page

SAMPLE = Path(__file__).parent / "sample_backtest.json"


def test_the_backtest_page_renders_in_chromium_with_every_section_and_no_console_errors(chromium_page: Page,
                                                                                        tmp_path):
    # Given the backtest of two policies: configured retrained once, never kept its first model
    document = json.loads(SAMPLE.read_text())
    page = write_backtest_html(document, tmp_path / "backtest.html")
    # When a browser opens it
    chromium_page.open(page.as_uri())
    # Then nothing failed to load or run, and every section is there
    assert chromium_page.console_errors() == []
    assert chromium_page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)") == [
        "Policies", "Realized auc over time", "Cost", "Decisions"]
    # And the chart draws one line per policy, the threshold, and a mark for configured's retrain
    titles = chromium_page.evaluate("[...document.querySelectorAll('#metric svg title')].map(t => t.textContent)")
    assert "threshold 0.75" in titles
    assert titles.count("configured: a training run started") == 1
    assert "never: a training run started" not in titles
    assert chromium_page.evaluate("document.querySelectorAll('#metric polyline').length") == 2
    # And the cost of each policy, and its decisions, with a filter to one policy
    assert "$46.92" in chromium_page.evaluate("document.querySelector('#cost').textContent")
    rows = "document.querySelectorAll('#decisions tbody tr:not([hidden])').length"
    assert chromium_page.evaluate(rows) == 4
    chromium_page.evaluate("document.querySelector('[data-policy-filter=never]').click()")
    assert chromium_page.evaluate(rows) == 2
    # And a reason holding markup stays text
    assert chromium_page.evaluate("document.querySelectorAll('#decisions script').length") == 0
    assert "<script>alert(1)</script>" in chromium_page.evaluate("document.querySelector('#decisions').textContent")
