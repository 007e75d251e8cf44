"""Faults the local cloud injects on purpose, each one AWS documents, under the error name AWS uses.

A fault names a target (e.g. "sagemaker:CreateTrainingJob", "job:training", "lambda:EvaluateGateFunction"),
a kind, and how many times it fires (None: every time). Tests and scenarios add them; the parts of the
local cloud that can fail ask `take(target)` at the point where AWS would fail. KINDS lists them all.
A `lambda:` target must name one of template.yaml's functions: a misspelt one would never fire.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from selfheal.project import find_project

from .template import function_ids

_API_LIMITS = {"throttle": "ThrottlingException", "limit": "ResourceLimitExceeded"}
_JOB = {
    "capacity": "the job ends Failed with CapacityError (no ML capacity for the instance type)",
    "algorithm": "the job ends Failed with AlgorithmError",
    "hang": "the job never finishes: Stopped at MaxRuntimeInSeconds (MaxRuntimeExceeded)",
}
# Target (a "<prefix>:" stands for any name after it) -> kind -> what AWS reports.
KINDS: dict[str, dict[str, str]] = {
    "sagemaker:CreateProcessingJob": _API_LIMITS,
    "sagemaker:CreateTrainingJob": _API_LIMITS,
    "sagemaker:CreateEndpoint": _API_LIMITS,
    "sagemaker:UpdateEndpoint": _API_LIMITS,
    "job:processing": _JOB,
    "job:training": _JOB,
    "endpoint:unhealthy": {"fail": "the new model fails its /ping health check, so its variant never serves"},
    "endpoint:model_errors": {"fail": "the new model answers every request with a server error (ModelError, 500)"},
    "endpoint:slow_start": {"slow": "every new fleet takes 15 minutes to launch, longer than a 10-minute deployment"},
    "endpoint:update_failed": {"fail": "the update fails and leaves the endpoint Failed: only DeleteEndpoint is "
                                       "accepted"},
    "endpoint:rollback_failed": {"fail": "the update fails and so does SageMaker's rollback: UpdateRollbackFailed"},
    "lambda:": {
        "throttle": "Lambda.TooManyRequestsException",
        "timeout": "Sandbox.Timedout, before the handler did anything",
        "service": "Lambda.ServiceException",
        "raise": "the handler's own unhandled error, before it did anything",
        "crash_after": "Lambda.Unknown: the function died after its side effects; its response is lost",
    },
    # Any error code the service documents for the operation, e.g. ProvisionedThroughputExceededException.
    "api:": {},
}


class UnknownFault(ValueError):
    """A fault the local cloud cannot inject: a typo would otherwise never fire."""


@functools.cache
def template_functions(path: Path) -> frozenset[str]:
    """The logical ids of the template's functions, read from the file alone (no cloud needed)."""
    return function_ids(path)


def describe(target: str, kind: str, functions: Iterable[str] | None = None) -> str:
    """What AWS reports for this fault; raises UnknownFault for one the local cloud does not know.
    `functions`: the names a `lambda:` target may take (default: template.yaml's functions)."""
    kinds = KINDS.get(target) or KINDS.get(target.split(":", 1)[0] + ":")
    if kinds is None:
        raise UnknownFault(f"unknown fault target {target!r} (known: {', '.join(sorted(KINDS))})")
    if target.startswith("lambda:"):
        known = template_functions(find_project() / "template.yaml") if functions is None else frozenset(functions)
        if target.removeprefix("lambda:") not in known:
            raise UnknownFault(f"{target}: no such function (known: {', '.join(sorted(known))})")
    if target.startswith("api:"):
        if target.count(":") != 2 or not kind[:1].isupper():
            raise UnknownFault(f"{target} {kind}: api faults are api:<service>:<Operation> with an AWS error code")
        return kind
    if kind not in kinds:
        raise UnknownFault(f"unknown kind {kind!r} for {target} (known: {', '.join(sorted(kinds))})")
    return kinds[kind]


@dataclass
class Fault:
    target: str
    kind: str
    times: int | None = 1
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times


class Faults:
    def __init__(self, functions: Iterable[str] | None = None) -> None:
        """`functions`: the names `lambda:` faults may target (default: template.yaml's functions)."""
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._functions = None if functions is None else frozenset(functions)

    def add(self, target: str, kind: str, times: int | None = 1) -> Fault:
        describe(target, kind, self._functions)
        fault = Fault(target, kind, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, target: str) -> Fault | None:
        """The first live fault for target, counted as fired; None when there is none."""
        with self._lock:
            for fault in self._faults:
                if fault.target == target and not fault.spent:
                    fault.fired += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def fired(self) -> list[Fault]:
        return [fault for fault in self._faults if fault.fired]
