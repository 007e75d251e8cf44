"""report.html: one self-contained page a person reads instead of logs, checked in a real headless browser."""

from __future__ import annotations

import copy
import re
import shutil
from html.parser import HTMLParser
from typing import Any

from selfheal_bench.html_report import render_html, state_highlight, step_label, write_html

from selfheal.graph import load_graph
from selfheal.project import find_project

from .browser import Page

ROOT = find_project()
STATEMACHINES = ROOT / "statemachines"
HEADINGS = ["Timeline", "Executions", "Gate metrics: challenger vs champion", "Drift per feature",
            "Model quality: realized and estimated",
            "Serving: which model, when", "Ledger"]
EMPTY_REPORT: dict[str, Any] = {"runs": [], "quarantined": [], "endpoints": {}, "monitoring": [], "traffic": []}


class Tags(HTMLParser):
    """The elements a browser would build from the page, and the text of its headings."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def execution(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in report["executions"] if e["name"] == name)


def test_the_report_renders_in_chromium_with_no_console_errors_and_every_section(chromium_page: Page,
                                                                                 sample_report, tmp_path):
    # Given the report of a deployed run, a drift retrain rolled back, a rejected run, a failed run with
    # retries, a quarantined upload, two monitoring runs (one with violations) and traffic
    page = write_html(sample_report, tmp_path / "report.html", STATEMACHINES)
    # When a browser opens it
    chromium_page.open(page.as_uri())
    # Then nothing goes wrong in the console, and every section is there
    assert chromium_page.console_errors() == []
    assert chromium_page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)") == HEADINGS
    assert chromium_page.evaluate("document.querySelectorAll('details.execution svg [data-state]').length") > 30
    # And the model's quality is drawn: the realized metric (from labels) beside the estimated one, and why
    titles = chromium_page.evaluate("[...document.querySelectorAll('#quality svg title')].map(t => t.textContent)")
    assert {"estimated auc 0.87", "estimated auc 0.88", "realized auc 0.31"} <= set(titles)
    quality = chromium_page.evaluate("document.querySelector('#quality').textContent")
    assert "realized auc 0.31 below the threshold 0.75" in quality and "estimated auc 0.87" in quality
    # And a screenshot is taken (with the first run's Train state opened), for the test run and for people
    chromium_page.evaluate("""document.querySelector('#exec-0 [data-state="Train"] text').dispatchEvent(
        new MouseEvent('click', {bubbles: true}))""")
    shot = chromium_page.screenshot(tmp_path / "report-screenshot.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    (ROOT / "out").mkdir(exist_ok=True)
    shutil.copy(shot, ROOT / "out" / "report-screenshot.png")


def test_clicking_a_state_or_a_row_shows_its_input_and_output(chromium_page: Page, sample_report, tmp_path):
    page = write_html(sample_report, tmp_path / "report.html", STATEMACHINES)
    chromium_page.open(page.as_uri())
    # When the Train state of the first run is clicked in its picture
    panel = chromium_page.evaluate("""(() => {
        document.querySelector('#exec-0 [data-state="Train"] text').dispatchEvent(
            new MouseEvent('click', {bubbles: true}));
        return document.querySelector('#exec-0 .panel').textContent; })()""")
    # Then the panel shows its retried error, its input and its output (the job it ran on the second attempt)
    assert "Train (Task)" in panel and "retried ×1" in panel
    assert "Input" in panel and "Output" in panel and "churn-5e60f4673264-train-1" in panel
    assert "CapacityError" in panel or "States.TaskFailed" in panel
    # And a row of a state visited several times shows that visit
    rows = chromium_page.evaluate("""(() => {
        const row = [...document.querySelectorAll('#exec-1 tr[data-step]')]
            .find(r => r.textContent.includes('DescribeEndpoint'));
        row.click();
        return document.querySelector('#exec-1 .panel').textContent; })()""")
    assert "visited 2 times" in rows and "Creating" in rows
    # And a state never entered says so
    missing = chromium_page.evaluate("""(() => {
        document.querySelector('#exec-0 [data-state="RecordRejected"] text').dispatchEvent(
            new MouseEvent('click', {bubbles: true}));
        return document.querySelector('#exec-0 .panel').textContent; })()""")
    assert "Not entered" in missing
    # And a bar of the timeline opens its execution
    assert chromium_page.evaluate("""(() => {
        const before = document.querySelector('#exec-2').open;
        document.querySelector('svg.timeline a[href="#exec-2"] rect').dispatchEvent(
            new MouseEvent('click', {bubbles: true}));
        return [before, document.querySelector('#exec-2').open]; })()""") == [False, True]
    assert chromium_page.console_errors() == []


def test_the_browser_check_does_see_console_errors_exceptions_and_blocked_loads(chromium_page: Page, tmp_path):
    # A control for the checks above: a page that logs an error, throws, and loads what its policy forbids
    page = tmp_path / "broken.html"
    page.write_text("""<!doctype html><meta http-equiv="Content-Security-Policy" content="default-src 'none';
        script-src 'unsafe-inline'"><img src="https://example.invalid/x.png">
        <script>console.error('logged'); throw new Error('thrown');</script>""")
    chromium_page.open(page.as_uri())
    errors = "\n".join(chromium_page.console_errors())
    assert "logged" in errors and "thrown" in errors and "Content Security Policy" in errors


def test_a_report_with_nothing_in_it_still_renders_every_section_cleanly(chromium_page: Page, tmp_path):
    page = write_html(EMPTY_REPORT, tmp_path / "report.html", STATEMACHINES)
    chromium_page.open(page.as_uri())
    assert chromium_page.console_errors() == []
    assert chromium_page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)") == HEADINGS
    assert chromium_page.evaluate("document.querySelectorAll('p.empty').length") >= 6


def test_user_strings_from_the_report_stay_text_and_never_become_markup(sample_report):
    # Given a quarantine reason and file name holding markup, and a step input trying to close the data block
    report = copy.deepcopy(sample_report)
    report["quarantined"][0] |= {"key": 'incoming/churn/<img src=x onerror="alert(1)">.csv',
                                 "reason": "<script>alert('reason')</script>"}
    report["executions"][0]["steps"][0]["input"] = {"note": "</script><script>alert('data')</script>"}
    report["runs"][0]["gate"]["reasons"] = ["<b>bold</b> & <i>true</i>"]
    # When the page is rendered
    html = render_html(report, STATEMACHINES)
    tags = parse(html)
    # Then the browser would build no element from them: two script blocks (data and code), no img, no i
    assert tags.tags.count("script") == 2
    assert "img" not in tags.tags and "i" not in tags.tags
    assert "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;true&lt;/i&gt;" in html
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert('data')" in html
    # And the page fetches nothing: its policy forbids the network, and it names no address but SVG's namespace
    assert "default-src 'none'" in html
    assert set(re.findall(r"https?://[^\s\"'<)]+", html)) == {"http://www.w3.org/2000/svg"}


def test_states_are_coloured_as_the_step_functions_console_does(sample_report):
    graph = load_graph(STATEMACHINES / "training_pipeline.asl.json")
    failed = execution(sample_report, "churn-upload-4a4b7ebc619a")["steps"]
    # A Train that exhausted its retries and was caught is orange; the Fail state red; the rest green
    assert state_highlight(failed) == {"Preprocess": "succeeded", "Train": "caught", "RecordFailure": "succeeded",
                                       "Failed": "failed"}
    assert step_label(failed[1], "RecordFailure", graph) == "caught"
    # A Train retried once that then went on by its Next reads as retried
    deployed = execution(sample_report, "churn-upload-5e60f4673264")["steps"]
    assert step_label(deployed[1], "Evaluate", graph) == "retried ×1"


def test_drift_uses_the_configured_threshold_and_says_so_when_it_falls_back_to_the_default(sample_report):
    html = render_html(sample_report, STATEMACHINES)
    assert "threshold from the model&#39;s configuration (monitor.drift_threshold)" in html
    without_config = copy.deepcopy(sample_report)
    without_config["executions"] = [e for e in without_config["executions"] if e["state_machine"] != "TrainingPipeline"]
    assert "Model Monitor&#39;s default, 0.1" in render_html(without_config, STATEMACHINES)
    with_threshold = copy.deepcopy(without_config)
    for item in with_threshold["monitoring"]:
        item["threshold"] = 0.25
    html = render_html(with_threshold, STATEMACHINES)
    assert "threshold 0.25" in html and "default, 0.1" not in html


def test_a_run_with_no_monitoring_and_no_endpoint_degrades_to_plain_notes(sample_report):
    report = copy.deepcopy(sample_report) | {"monitoring": [], "endpoints": {}, "traffic": []}
    html = render_html(report, STATEMACHINES)
    for note in ("No monitoring executions in this report.", "No endpoint was deployed.", "No traffic was sent."):
        assert note in html
    assert parse(html).headings == HEADINGS


def test_an_execution_of_a_state_machine_no_longer_defined_is_listed_without_its_picture(sample_report):
    report = copy.deepcopy(sample_report)
    report["executions"].append(execution(sample_report, "churn-upload-4a4b7ebc619a") | {"state_machine": "Retired"})
    html = render_html(report, STATEMACHINES)
    assert "No definition of Retired in statemachines/." in html
    assert html.count('class="execution"') == len(report["executions"])
