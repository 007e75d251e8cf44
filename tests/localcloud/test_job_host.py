"""A job host forked from the pre-imported server (selfheal_bench/job_host.py) is the job's process as a fresh
interpreter would be: the container's environment and no other, its argv, working directory, sys.path and log, its
exit code, its import errors, and its kill at the time limit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from selfheal_bench.fixtures.containers import (
    ACCOUNT,
    BUCKET,
    REGION,
    processing_request,
    run_to_end,
    wait_for_end,
)
from selfheal_bench.job_host import ServedProcess
from selfheal_bench.localcloud.faults import Faults
from selfheal_bench.localcloud.sagemaker_jobs import Job, JobService

PROBE = """
import json, os, sys
import pandas
print("probe ran")
with open("/opt/ml/processing/output/probe.json".replace("/opt/ml", os.environ["SELFHEAL_OPT_ML"]), "w") as out:
    json.dump({"env": dict(os.environ), "argv": sys.argv, "cwd": os.getcwd(), "path": sys.path, "name": __name__,
               "bytecode": sys.dont_write_bytecode, "pandas": pandas.__file__}, out)
"""


def probe_request(name: str, script: str, seconds: int = 120) -> dict[str, Any]:
    return processing_request(name, ["python3", f"/opt/ml/processing/input/code/{script}"], ["--window", "7d"],
                              "code", f"code/{script}", "/opt/ml/processing/input/code", seconds)


def ended(service: JobService, request: dict[str, Any]) -> Job:
    return run_to_end(service, "processing", request)


def probe(s3: Any, service: JobService, root: Path) -> dict[str, Any]:
    job = ended(service, probe_request("probe", "probe.py"))
    assert job.status == "Completed", job.failure_reason
    found = s3.get_object(Bucket=BUCKET, Key="out/probe/probe.json")["Body"].read().decode()
    return json.loads(found.replace(str(root), "<root>")) | {"served": isinstance(job.hosts[0].process, ServedProcess)}


def test_a_served_job_sees_what_a_fresh_interpreter_sees(s3, tmp_path, monkeypatch):
    # Given a script that reports its environment, argv, working directory and import path, and a variable of this
    # machine that no container may see
    s3.put_object(Bucket=BUCKET, Key="code/probe.py", Body=PROBE.encode())
    monkeypatch.setenv("MACHINE_SECRET", "leaked")
    services = {kind: JobService(tmp_path / kind, Faults(), REGION, ACCOUNT, serve=kind == "served")
                for kind in ("served", "fresh")}
    try:
        # When it runs as a job from the pre-imported server, and again as a fresh interpreter
        served = probe(s3, services["served"], tmp_path / "served")
        fresh = probe(s3, services["fresh"], tmp_path / "fresh")
    finally:
        for service in services.values():
            service.shutdown()

    # Then the first was served and the second was not, and each saw exactly the same
    assert served.pop("served") and not fresh.pop("served")
    assert served == fresh
    assert "MACHINE_SECRET" not in served["env"] and served["name"] == "__main__" and served["bytecode"]
    assert served["argv"] == ["<root>/jobs/probe/algo-1/opt_ml/processing/input/code/probe.py", "--window", "7d"]


@pytest.mark.parametrize(("script", "seconds", "status", "reason", "exit_code"), [
    ("import no_such_library\n", 120, "Failed", "ModuleNotFoundError: No module named 'no_such_library'", 1),
    ("import sys\nprint('giving up')\nsys.exit(3)\n", 120, "Failed", "exit code 3\ngiving up", 3),
    ("import time\ntime.sleep(600)\n", 1, "Stopped", "MaxRuntimeExceeded", -9),
], ids=["import-error", "exit-code", "time-limit"])
def test_a_served_jobs_failure_is_its_own(s3, jobs, script, seconds, status, reason, exit_code):
    # Given a script that fails to import, exits 3, or outlasts its time limit
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=script.encode())
    # When it runs as a job
    job = ended(jobs, probe_request("failing", "job.py", seconds))
    # Then it was served, and the job ended as a fresh interpreter's would, with its message
    assert isinstance(job.hosts[0].process, ServedProcess)
    assert job.status == status and reason in str(job.failure_reason), job.failure_reason
    assert job.hosts[0].process.returncode == exit_code  # a stopped host was killed (SIGKILL)


def test_a_job_stopped_while_its_host_is_still_starting_is_killed_once_it_starts(s3, jobs, monkeypatch):
    # Given a job that would run for ten minutes, whose served host takes a while to start (the server importing)
    import selfheal_bench.job_host as job_host
    started = job_host.start

    def slow_start(*args: Any, **kwargs: Any) -> ServedProcess:
        time.sleep(1.0)
        return started(*args, **kwargs)

    monkeypatch.setattr(job_host, "start", slow_start)
    s3.put_object(Bucket=BUCKET, Key="code/job.py", Body=b"import time\ntime.sleep(600)\n")
    job = jobs.create("processing", probe_request("stopped-early", "job.py", 900))
    # When it is stopped before its host has a process
    jobs.stop("stopped-early", "processing")
    assert job.hosts == [] or all(host.process is None for host in job.hosts)
    # Then the host is killed as soon as it starts, and the job ends Stopped, not after its ten minutes
    assert wait_for_end(job).status == "Stopped"
