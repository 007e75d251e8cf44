"""The local cloud as a library caller uses it: paths, the process environment, and the report of what
IngestFunction quarantined, whatever model folder an upload landed in."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from selfheal_bench.html_report import render_html
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.report import build_report


def test_a_relative_work_dir_is_resolved_once_against_the_working_directory(tmp_path, monkeypatch):
    # Job processes run inside their sandbox: a relative path handed to them would double
    monkeypatch.chdir(tmp_path)
    cloud = LocalCloud(Path("out/cloud"))
    assert cloud.work_dir == tmp_path / "out" / "cloud"
    assert cloud.jobs._work_dir == tmp_path / "out" / "cloud"


def test_a_thread_reading_the_environment_while_functions_run_never_sees_a_key_vanish(cloud):
    # botocore iterates os.environ and reads each key when a client is made, in whatever thread makes it
    missing: list[str] = []
    done = threading.Event()

    def read_everything() -> None:
        while not done.is_set():
            for key in list(os.environ):
                if os.environ.get(key) is None:
                    missing.append(key)

    reader = threading.Thread(target=read_everything)
    reader.start()
    try:
        for _ in range(5):
            cloud.invoke("PrepareMonitorFunction", {"model": "churn", "execution": "monitor-churn-0123456789ab"})
    finally:
        done.set()
        reader.join(10)
    assert not missing
    # and a function's variables stay inside its invocation, as in its own execution environment
    assert "LEDGER_TABLE" not in os.environ


def test_every_quarantined_upload_is_reported_known_model_or_not(cloud, churn_csv):
    # Given uploads into a folder that is no model name, and one for a model with no configuration
    for model in ("churn_v2", "fraud"):
        cloud.upload(model, churn_csv)
    cloud.wait_idle()
    # When the report is read for the scenario's models
    result = build_report(cloud, ["churn"])
    # Then both refused uploads are in it with IngestFunction's reason, and the page shows them
    refused = {q["key"]: q for q in result["quarantined"]}
    assert set(refused) == {"incoming/churn_v2/churn.csv", "incoming/fraud/churn.csv"}
    assert refused["incoming/churn_v2/churn.csv"]["reason"].startswith("model folder 'churn_v2' is not a model name")
    assert refused["incoming/fraud/churn.csv"]["reason"] == (
        "unknown model 'fraud': no configuration at config/fraud.yaml")
    page = render_html(result | {"problems": []}, cloud.root / "statemachines")
    assert "incoming/churn_v2/churn.csv" in page and "incoming/fraud/churn.csv" in page
    assert "2 quarantined uploads" in page
