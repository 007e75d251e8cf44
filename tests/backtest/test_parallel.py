"""The policies replay side by side, each in a fresh process of its own: one policy's failure is its own, the others'
figures are kept, and each replay's lines reach its log and the console. (The replays themselves are stand-ins here:
tests/e2e/test_backtest.py replays for real.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selfheal_bench.backtest_parallel import LOG, replay_policies

_CALLS: list[str] = []  # module-level state: a replay that saw another's would find it here


def replay_or_fail(scenario: Any, policy: str, folder: Path, prices: Any, echo) -> dict[str, Any]:
    _CALLS.append(policy)
    echo(f"replaying {scenario['history']} under {policy}")
    if policy == "never":
        raise RuntimeError("the local cloud did not start")
    if policy == "always":
        os._exit(3)  # the process dies without a word, as a killed one would
    return {"policy": policy, "pid": os.getpid(), "calls": list(_CALLS), "problems": []}


def test_given_one_replay_raising_and_one_dying_when_replayed_then_each_is_its_own_policys_failure(tmp_path):
    # Given three policies whose replays succeed (configured), raise (never) and die (always)
    lines: list[str] = []

    # When they are replayed side by side
    outcomes = replay_policies({"history": "h.yaml"}, tmp_path, ["configured", "never", "always"], None,
                               lines.append, target=replay_or_fail, workers=2)

    # Then every policy has an outcome, in the order asked
    assert list(outcomes) == ["configured", "never", "always"]
    # And configured's figures are kept, from a fresh process that saw no other replay's state
    configured = outcomes["configured"]
    assert configured.error is None and configured.exit_code == 0
    assert configured.result == {"policy": "configured", "pid": configured.result["pid"], "calls": ["configured"],
                                 "problems": []}
    assert configured.result["pid"] != os.getpid() and _CALLS == []
    # And never's exception is never's failure, with its message, exit code 1
    assert outcomes["never"].result is None and outcomes["never"].exit_code == 1
    assert outcomes["never"].error == "RuntimeError: the local cloud did not start"
    # And always's dead process is always's failure, with its exit code
    assert outcomes["always"].result is None and outcomes["always"].exit_code == 3
    assert "exit code 3" in str(outcomes["always"].error)
    # And each replay's lines are in its own log (never's with the traceback) and were relayed, prefixed
    for policy in ("configured", "never", "always"):
        assert f"replaying h.yaml under {policy}" in (tmp_path / policy / LOG).read_text()
        assert f"  [{policy}] replaying h.yaml under {policy}" in lines
    assert "Traceback" in (tmp_path / "never" / LOG).read_text()
    assert "policy never: failed: RuntimeError: the local cloud did not start" in lines


def test_given_a_policy_whose_replay_failed_when_the_cli_reports_then_it_is_that_policys_problem_and_exit_1(
        tmp_path, monkeypatch, capsys):
    # Given a valid history, and a backtest in which never's replay failed while configured's finished cleanly
    from selfheal_bench import backtest
    from selfheal_bench.backtest_example import write_history

    from selfheal.cli import main

    history = write_history(tmp_path / "history", weeks=1, rows=50)
    configured = {"metric": "auc", "threshold": 0.75, "retrains": 0, "mean_metric": 0.8,
                  "hours_below_threshold": 0, "compute_seconds": 3.0, "cost_usd": 1.0, "problems": []}
    document = {"policies": {"configured": configured},
                "replays": {"configured": {"seconds": 9.0, "exit_code": 0, "log": "configured/backtest.log"},
                            "never": {"seconds": 2.0, "exit_code": 1, "log": "never/backtest.log",
                                      "error": "RuntimeError: the local cloud did not start"}}}
    monkeypatch.setattr(backtest, "run_backtest", lambda scenario, out, policies: document)

    # When the CLI runs it
    code = main(["backtest", str(history), "--out", str(tmp_path / "out"), "--policies", "configured,never"])

    # Then it exits 1, prints configured's figures and never's failure as never's problem
    printed = capsys.readouterr().out
    assert code == 1
    assert "configured 0 retrain(s), mean auc 0.800" in printed
    assert "never      the replay failed\n  - problem: RuntimeError: the local cloud did not start" in printed
