"""What `selfheal local run` shows on a terminal when things go wrong, read the way a person reads it: one
line per thing to act on, nothing from the libraries' internals, an exit code a CI job can trust, and a
clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import yaml
from selfheal_bench.datagen import churn_frame

ROOT = Path(__file__).resolve().parents[2]
SELFHEAL = ROOT / ".venv" / "bin" / "selfheal"
USER_ENV = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "AWS_", "POWERTOOLS_"))}
CONFIG = {"target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.75},
          "validation": {"min_rows": 50}}


def scenario(folder: Path, steps: list[dict], faults: list[dict]) -> Path:
    churn_frame(300, seed=1).to_csv(folder / "good.csv", index=False)
    churn_frame(300, seed=2).rename(columns={"churned": " churned"}).to_csv(folder / "spaces.csv", index=False)
    requests = churn_frame(5, seed=3, with_target=False)
    requests.loc[0, "plan"] = "family,\nannual"  # a quoted field with a newline: still one request
    requests.to_csv(folder / "requests.csv", index=False)
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump({"models": {"churn": {"config": CONFIG}}, "faults": faults, "steps": steps}))
    return path


def test_a_failing_scenario_says_what_failed_in_one_line_each_and_exits_1(tmp_path):
    # Given a scenario whose run fails (every Preprocess job errors), an upload with a stray space in its
    # header, and traffic to a model that never deployed
    scenario(tmp_path, faults=[{"target": "job:processing", "kind": "algorithm", "times": None}], steps=[
        {"upload": {"model": "churn", "file": "good.csv"}},
        {"upload": {"model": "churn", "file": "spaces.csv"}},
        {"traffic": {"model": "churn", "file": "requests.csv"}}])
    # When it runs from a terminal
    done = subprocess.run([str(SELFHEAL), "local", "run", "scenario.yaml", "--out", "out"], cwd=tmp_path,
                          env=USER_ENV, capture_output=True, text=True, timeout=600, check=False)
    # Then the exit code says it failed, and nothing but selfheal's own lines reached the terminal
    assert done.returncode == 1
    assert done.stderr == ""
    printed = done.stdout.splitlines()
    assert all(len(line) < 400 for line in printed), max(printed, key=len)
    # And each step said what happened, with the reason a person acts on
    failed = (r"  TrainingPipeline churn-upload-\w{12}: FAILED at Preprocess: processing job churn-\w{12}-prep-\d: "
              r"AlgorithmError: injected fault: the algorithm exited with an error")
    assert [line for line in printed if re.fullmatch(failed, line)], printed
    quarantined = ("quarantined incoming/churn/spaces.csv: the target column 'churned' is not in the header "
                   "(it has ' churned': remove the spaces around the name)")
    unserved = "traffic churn: 5 rows, 5 errors, first error: An error occurred (ValidationException) when calling " \
               "the InvokeEndpoint operation: "
    assert "  accepted incoming/churn/good.csv: 300 rows, 9 columns" in printed
    assert f"  {quarantined}" in printed
    assert [line for line in printed if line.startswith(f"  {unserved}")]
    # And it ended with the problems, one line each, and where the report is
    start = printed.index("3 problems:")
    assert [line[:4] for line in printed[start + 1:start + 4]] == ["  - "] * 3
    out = tmp_path / "out"
    assert printed[-1] == (f"report: {out / 'report.json'} and {out / 'report.html'} (1 runs, 1 quarantined); "
                           f"logs in {out / 'cloud' / 'logs'}")
    # And report.json lists the same problems; the engine's dump of the failed state went to the library log
    report = json.loads((out / "report.json").read_text())
    assert len(report["problems"]) == 3
    assert "upload incoming/churn/spaces.csv quarantined: the target column 'churned' is not in the header (it has " \
           "' churned': remove the spaces around the name)" in report["problems"]
    assert report["traffic"] == [{"model": "churn", "file": "requests.csv", "rows": 5, "errors": 5,
                                  "first_error": report["traffic"][0]["first_error"]}]
    assert "FailureEventException" in (out / "cloud" / "logs" / "libraries.log").read_text()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_the_cloud_and_its_jobs_and_exits_130(tmp_path):
    # Given a run whose Preprocess job hangs
    scenario(tmp_path, faults=[{"target": "job:processing", "kind": "hang", "times": None}],
             steps=[{"upload": {"model": "churn", "file": "good.csv"}}])
    # (SIGINT at its default, as a terminal's foreground command has it: a child inherits an ignored SIGINT, and
    # Python then installs no KeyboardInterrupt handler, so how pytest was started must not decide it; a shell
    # without job control starts a background command, `pytest ... &` in a script, with SIGINT ignored, and its
    # workers and their children inherit that: this test then hung, never when run in the foreground)
    process = subprocess.Popen([str(SELFHEAL), "local", "run", "scenario.yaml", "--out", "out"], cwd=tmp_path,
                               env=USER_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_default_sigint)  # noqa: PLW1509 - one thread starts it
    try:
        # When the job is running (a child process of selfheal) and the user presses Ctrl-C
        deadline = time.monotonic() + 120
        while not (jobs := _children(process.pid)) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.5)
        assert jobs, "no job process started within 120 s"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    # Then selfheal says so in a line, stops the local cloud and its job, and exits 130
    assert process.returncode == 130, (out, err)
    assert err.splitlines()[-1] == "selfheal: interrupted; the local cloud was stopped"
    assert "Traceback" not in err
    assert not [pid for pid in jobs if _alive(pid)]
