"""`selfheal backtest` end to end: the same history replayed under two policies, each on a fresh local cloud,
in simulated time, with the monitor fired on the model's own weekly schedule."""

from __future__ import annotations

import json

from selfheal_bench.backtest import run_backtest
from selfheal_bench.backtest_example import write_history
from selfheal_bench.scenario import load_scenario

CONTRACT = {"retrains", "compute_seconds", "cost_usd", "mean_metric", "hours_below_threshold", "decisions",
            "timeline"}


def test_never_stays_degraded_under_concept_drift_while_configured_retrains_on_its_schedule(tmp_path):
    # Given two weeks of history: a first dataset, then weekly traffic whose relation to churn turns (concept
    # drift), its labels two days later, and a model monitored weekly (rate(7 days)) that retrains on quality
    scenario = load_scenario(write_history(tmp_path / "history", weeks=2, rows=400))
    # When it is replayed under the configured policy and under never
    document = run_backtest(scenario, tmp_path / "out", ["configured", "never"], echo=lambda line: None)

    # Then backtest.json holds the contract's figures for each policy, and the page is written beside it
    written = json.loads((tmp_path / "out" / "backtest.json").read_text())
    assert set(written["policies"]) == {"configured", "never"}
    assert all(set(result) >= CONTRACT for result in written["policies"].values())
    assert (tmp_path / "out" / "backtest.html").read_text().count("<section") == 4
    configured, never = document["policies"]["configured"], document["policies"]["never"]
    assert configured["problems"] == [] and never["problems"] == []

    # And the monitor ran on the schedule the DeployPipeline created, in simulated time: at once (a rate schedule
    # without a StartDate), then weekly; a week later configured retrained on the labels that confirmed the drop
    assert [d["at"][:16] for d in configured["decisions"]] == ["2026-01-05T00:01", "2026-01-12T00:01",
                                                               "2026-01-19T00:01"]
    assert configured["decisions"][-1]["action"] == "retrain"
    assert configured["retrains"] == 1
    assert [r["at"][:10] for r in configured["rollouts"]] == ["2026-01-05", "2026-01-19"]
    # And never saw the same drop and kept its first model: the product's own decision under its configuration
    assert never["retrains"] == 0
    assert never["decisions"][-1]["action"] == "none"
    assert "retrain.on_violation is none" in never["decisions"][-1]["reason"]

    # And the realized metric of each labelled batch shows never staying degraded while configured recovers
    assert len(configured["timeline"]) == len(never["timeline"]) == 2
    assert configured["timeline"][0]["metric"] == never["timeline"][0]["metric"] < 0.75  # the same model served
    assert configured["timeline"][1]["model_package_arn"] != never["timeline"][1]["model_package_arn"]
    assert configured["timeline"][1]["metric"] > 0.75 > never["timeline"][1]["metric"]
    assert never["hours_below_threshold"] > configured["hours_below_threshold"]
    # And each batch's metric is the product's own where a monitoring execution judged it: the first batch's is
    # the quality job's figure in the MONITOR item of 01-19; the second's labels came after the last monitor, so
    # the backtest scored it (with the quality job's code) and says so
    judged = configured["decisions"][-1]
    assert configured["timeline"][0]["source"] == f"MONITOR#{judged['at']}#{judged['execution']}"
    assert configured["timeline"][0]["metric"] == round(judged["realized"]["auc"], 6)
    assert all(result["timeline"][1]["source"].startswith("backtest: ") for result in (configured, never))
    # And a batch the backtest scored names the records it scored it from: its ground truth, the capture, the joins
    assert configured["timeline"][0]["scored_from"] is None
    for result in (configured, never):
        scored_from = result["timeline"][1]["scored_from"]
        assert scored_from["ground_truth"].startswith("s3://") and scored_from["capture_files"] > 0
        assert scored_from["matched"] > 0 and scored_from["quality_baseline"].endswith("quality_baseline.json")
    assert never["mean_metric"] < configured["mean_metric"]

    # And the figures are the job records' and the endpoint's: compute is the jobs' seconds, cost their price
    for name, result in document["policies"].items():
        report = json.loads((tmp_path / "out" / name / "report.json").read_text())
        assert result["compute_seconds"] == round(sum(job["seconds"] for job in report["jobs"]), 3)
        assert result["cost_usd"] == result["cost_breakdown_usd"]["total"] > 0
    assert [job["kind"] for job in configured["jobs"]].count("training") == 2
    assert [job["kind"] for job in never["jobs"]].count("training") == 1
