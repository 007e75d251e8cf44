"""Lambda runs invocations concurrently, each in an execution environment of its own: the router lets
two invocations (of one function or of two) run at the same time, each seeing its own function's
environment variables, and imports a handler's module once.

Source: "Understanding Lambda function scaling" (each concurrent request gets its own execution
environment) and "Working with Lambda environment variables"."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from selfheal_bench.localcloud.faults import Faults
from selfheal_bench.localcloud.lambdas import FunctionRouter, FunctionSpec, isolate_environments

ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"
# Both invocations wait at the same barrier (module `meeting`): they return only if both run at once.
HANDLER = """
import os
from pathlib import Path
with open(Path(__file__).with_name("imports.log"), "a") as log:
    log.write("imported\\n")

def lambda_handler(event, context):
    from meeting import barrier
    barrier.wait()
    os.environ["TOUCHED"] = os.environ["WHO"]  # a handler's change stays in its own environment
    barrier.wait()
    return {"who": os.environ["WHO"], "touched": os.environ["TOUCHED"]}
"""


@pytest.fixture
def router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionRouter]:
    monkeypatch.setitem(sys.modules, "meeting", types.SimpleNamespace(barrier=threading.Barrier(2, timeout=5)))
    undo = isolate_environments()
    router = FunctionRouter(tmp_path / "logs", Faults(functions={"A", "B"}))
    for name in ("A", "B"):
        code = tmp_path / name
        code.mkdir()
        (code / "app.py").write_text(HANDLER)
        router.add(FunctionSpec(name, name.lower(), ARN.format(name.lower()), code, "app.lambda_handler",
                                {"WHO": name}))
    try:
        yield router
    finally:
        router.close()
        undo()


def invoke_together(router: FunctionRouter, first: str, second: str) -> list[dict[str, str]]:
    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(router.invoke, name, {}) for name in (first, second)]
        return [result.result(timeout=30) for result in results]


def test_two_functions_run_at_once_each_with_its_own_environment(router):
    # When A and B are invoked at the same time
    results = invoke_together(router, "A", "B")
    # Then both ran at once (each waited for the other), each saw its own variables and its own change
    assert results == [{"who": "A", "touched": "A"}, {"who": "B", "touched": "B"}]
    # And nothing of theirs leaked into the process's environment
    assert "WHO" not in os.environ and "TOUCHED" not in os.environ


def test_one_function_runs_two_invocations_at_once_and_imports_its_handler_once(router, tmp_path):
    # When A is invoked twice at the same time, on its first (cold) invocations
    results = invoke_together(router, "A", "A")
    # Then both ran at once, and its module was imported once
    assert results == [{"who": "A", "touched": "A"}] * 2
    assert (tmp_path / "A" / "imports.log").read_text() == "imported\n"


def test_threads_outside_an_invocation_see_the_process_environment(router, monkeypatch):
    # Given a variable the process has
    monkeypatch.setenv("SELFHEAL_PROCESS_ONLY", "1")
    seen: list[str | None] = []
    thread = threading.Thread(target=lambda: seen.append(os.environ.get("SELFHEAL_PROCESS_ONLY")))
    thread.start()
    thread.join(timeout=5)
    assert seen == ["1"]
