"""Route Lambda invokes to the real handlers in functions/, with the environment template.yaml gives.

moto without Docker answers every invoke with a stub (moto.awslambda_simple). The router replaces that
stub: the handler module is imported from its CodeUri, run with the function's environment, and its
result or error is returned the way the Lambda service returns it (an unhandled error is a 200 with
X-Amz-Function-Error and {errorType, errorMessage}), so Step Functions' Retry and Catch see the real
error names.

Invocations run concurrently, as on AWS, where each concurrent request has an execution environment of its
own: os.environ becomes a per-thread view (`isolate_environments`), so an invocation sees its function's
variables and nobody else's, and a handler module is imported once, under a lock.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

from ..code_roots import import_from
from .faults import Faults

# Faults the Lambda service reports under these names (Step Functions sees them as Lambda.<name>), with the
# HTTP status it answers: 200 is a function error (the function ran and failed), 429 and 5xx the service's.
_SERVICE_FAULTS = {
    "throttle": ("Lambda.TooManyRequestsException", "Rate Exceeded.", 429),
    "timeout": ("Sandbox.Timedout", "Task timed out after the function's timeout", 200),
    "service": ("Lambda.ServiceException", "injected fault: the Lambda service failed", 500),
}
# A function that dies (out of memory, killed) returns no error type: Step Functions reports Lambda.Unknown.
_CRASH = ("Lambda.Unknown", "injected fault: the function died after its side effects; its response was lost")


@dataclass(frozen=True)
class AsyncConfig:
    """How Lambda handles a failed asynchronous invocation of the function (its EventInvokeConfig and
    DeadLetterQueue; the defaults are Lambda's)."""

    max_retries: int = 2
    max_event_age: int = 21600
    on_failure: str | None = None  # DestinationConfig.OnFailure: an invocation record goes there
    dead_letter: str | None = None  # DeadLetterQueue's TargetArn: the event goes there


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int = 30
    memory: int = 512
    asynchronous: AsyncConfig = field(default_factory=AsyncConfig)


@dataclass
class LambdaContext:
    """The fields of Lambda's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionError(Exception):
    """An invoke that failed: a function error (status 200: the handler raised, timed out or died) or the
    Lambda service's own refusal (429 throttled, 5xx)."""

    def __init__(self, error_type: str, message: str, status: int = 200) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.status = status


@dataclass
class Invocation:
    function: str
    started: float
    seconds: float
    error: str | None


class FunctionRouter:
    """Runs template functions in-process, concurrently (os.environ must be `isolate_environments`'s view)."""

    def __init__(self, log_dir: Path, faults: Faults,
                 acting_as: Callable[[str], contextlib.AbstractContextManager[None]] | None = None) -> None:
        self._specs: dict[str, FunctionSpec] = {}
        self._modules: dict[str, ModuleType] = {}
        self._import_lock = threading.Lock()
        self._logs_lock = threading.Lock()
        self._log_dir = log_dir
        self._faults = faults
        self._logs: dict[str, io.TextIOBase] = {}
        self._acting_as = acting_as or (lambda principal: contextlib.nullcontext())
        self.invocations: list[Invocation] = []

    def add(self, spec: FunctionSpec) -> None:
        for key in (spec.name, spec.arn, spec.logical_id):
            self._specs[key] = spec

    def spec(self, name_or_arn: str) -> FunctionSpec:
        key = name_or_arn.split(":function:")[-1].split(":")[0] if ":function:" in name_or_arn else name_or_arn
        if key not in self._specs:
            raise KeyError(f"no function {name_or_arn} in template.yaml")
        return self._specs[key]

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Invoke synchronously; raise FunctionError as Lambda reports a handler's exception."""
        spec = self.spec(name_or_arn)
        fault = self._faults.take(f"lambda:{spec.logical_id}")
        if fault and fault.kind in _SERVICE_FAULTS:
            # The Lambda service itself refuses or cuts the invocation, before or around the handler.
            raise FunctionError(*_SERVICE_FAULTS[fault.kind])
        with self._environment(spec), self._log_to(spec), self._acting_as(spec.logical_id):
            started = time.time()
            # The handler's side effects happen, then the response is lost (a crash before replying).
            crash = fault is not None and fault.kind == "crash_after"
            error = _CRASH[0] if crash else None
            try:
                handler = self._handler(spec)
                context = LambdaContext(spec.name, spec.arn, spec.memory, spec.timeout)
                if fault and fault.kind == "raise":
                    raise RuntimeError("injected fault: the handler raised before doing anything")
                result = handler(json.loads(json.dumps(event)), context)
            except Exception as exc:
                error = type(exc).__name__
                traceback.print_exc()
                raise FunctionError(error, str(exc)) from exc
            finally:
                self.invocations.append(Invocation(spec.logical_id, started, time.time() - started, error))
            if crash:
                raise FunctionError(*_CRASH)
            return result

    def module(self, name_or_arn: str) -> ModuleType:
        """The function's handler module, imported from its CodeUri on first use (under its environment:
        Powertools reads it at import)."""
        spec = self.spec(name_or_arn)
        with self._environment(spec):
            self._handler(spec)
        return self._modules[spec.logical_id]

    def _handler(self, spec: FunctionSpec) -> Callable[..., Any]:
        module_name, func_name = spec.handler.rsplit(".", 1)
        with self._import_lock:  # once, even when the first invocations arrive together
            if spec.logical_id not in self._modules:
                self._modules[spec.logical_id] = self._import(spec, module_name)
        return getattr(self._modules[spec.logical_id], func_name)

    @staticmethod
    def _import(spec: FunctionSpec, module_name: str) -> ModuleType:
        return import_from(spec.code_dir, f"{module_name.replace('.', '/')}.py", f"selfheal_fn_{spec.logical_id}")

    @contextlib.contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[None]:
        if not isinstance(os.environ, ThreadEnvironments):
            raise RuntimeError("the router runs functions only under isolate_environments()")
        with os.environ.overlay(spec.environment):
            yield

    @contextlib.contextmanager
    def _log_to(self, spec: FunctionSpec) -> Iterator[None]:
        """Function output goes to a log file per function, as CloudWatch Logs keeps it."""
        with self._logs_lock:
            if spec.logical_id not in self._logs:
                self._log_dir.mkdir(parents=True, exist_ok=True)
                self._logs[spec.logical_id] = open(  # noqa: SIM115 - kept open for the cloud's life
                    self._log_dir / f"{spec.logical_id}.log", "a", encoding="utf-8", buffering=1
                )
        with thread_output(self._logs[spec.logical_id]):
            yield

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()


class ThreadEnvironments(MutableMapping[str, str]):
    """os.environ while the local cloud runs: a thread inside an invocation reads and writes its function's
    environment over the process's (changes stay in it, as in a Lambda execution environment); any other
    thread reads and writes the process's environment."""

    _DELETED = object()

    def __init__(self, process: MutableMapping[str, str]) -> None:
        self.process = process
        self._local = threading.local()

    @contextlib.contextmanager
    def overlay(self, variables: dict[str, str]) -> Iterator[None]:
        previous = getattr(self._local, "variables", None)
        self._local.variables = dict(variables)
        try:
            yield
        finally:
            self._local.variables = previous

    def _own(self) -> dict[str, Any] | None:
        return getattr(self._local, "variables", None)

    def __getitem__(self, key: str) -> str:
        own = self._own()
        value = own.get(key, self.process.get(key, self._DELETED)) if own is not None else self.process[key]
        if value is self._DELETED:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: str) -> None:
        own = self._own()
        if own is None:
            self.process[key] = value
        else:
            own[key] = str(value)

    def __delitem__(self, key: str) -> None:
        own = self._own()
        if own is None:
            del self.process[key]
            return
        self[key]  # noqa: B018 - KeyError if absent, as os.environ raises
        own[key] = self._DELETED

    def __iter__(self) -> Iterator[str]:
        own = self._own() or {}
        keys = dict.fromkeys([*self.process, *own])
        return iter([key for key in keys if own.get(key) is not self._DELETED])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


def isolate_environments() -> Callable[[], None]:
    """Make os.environ a per-thread view (ThreadEnvironments) until the returned undo is called."""
    process = os.environ
    os.environ = ThreadEnvironments(process)  # type: ignore[assignment]  # noqa: B003 - a view, on purpose

    def undo() -> None:
        os.environ = process  # noqa: B003 - the original mapping back

    return undo


class _ThreadRoutedStream(io.TextIOBase):
    """sys.stdout/stderr that writes where the current thread says: function logs stay out of the CLI."""

    def __init__(self, default: Any, local: threading.local) -> None:
        self._default = default
        self._local = local

    def _target(self) -> Any:
        return getattr(self._local, "stream", None) or self._default

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False


_thread_streams = threading.local()


def route_thread_output() -> Callable[[], None]:
    """Install the per-thread stdout/stderr routing; returns the undo."""
    saved = sys.stdout, sys.stderr
    sys.stdout = _ThreadRoutedStream(saved[0], _thread_streams)  # type: ignore[assignment]
    sys.stderr = _ThreadRoutedStream(saved[1], _thread_streams)  # type: ignore[assignment]

    def undo() -> None:
        sys.stdout, sys.stderr = saved

    return undo


@contextlib.contextmanager
def thread_output(stream: Any) -> Iterator[None]:
    previous = getattr(_thread_streams, "stream", None)
    _thread_streams.stream = stream
    try:
        yield
    finally:
        _thread_streams.stream = previous


def patch_moto_invoke(router: FunctionRouter) -> Callable[[], None]:
    """Make moto's Lambda invoke call the router; returns the undo."""
    original = LambdaSimpleBackend.invoke

    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any,
               headers: Any, response_headers: dict[str, str]) -> bytes:
        event = json.loads(body) if body else {}
        try:
            result = router.invoke(function_name, event)
        except FunctionError as err:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": err.error_type, "errorMessage": err.message}).encode()
        return json.dumps(result).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]

    def undo() -> None:
        LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]

    return undo

