"""Serving containers' model servers: one process running serving_worker.py per loaded model.

A worker is started ahead of need as a spare (its serving stack and common libraries imported; one for the whole
process, so every local cloud in it benefits), so a model loads in the time its model_fn takes, as on a container
image that has them installed. A spare assigned to a model takes that container's environment (container.py: no
route to AWS), so the serving toolkit reads SAGEMAKER_PROGRAM and SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT from it as
in the container. Each wait is bounded: the
start-up by the health check's patience, an invocation by the container's 60 seconds.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().with_name("serving_worker.py")
_LENGTH = struct.Struct("!I")
_START_TIMEOUT_SECONDS = 120
# "Your model must respond to requests within 60 seconds" (SageMaker Developer Guide, "Use Your Own Inference
# Code with Hosting Services": how containers serve requests).
INVOKE_TIMEOUT_SECONDS = 60


class ContainerUnhealthy(RuntimeError):
    """The container never answered its health check: its model server did not start."""


class ContainerTimedOut(RuntimeError):
    """The container did not answer in time, or is gone."""


@dataclass(frozen=True)
class ContainerAnswer:
    """What the container's /invocations answered: its HTTP status, content type and body."""

    status: int
    content_type: str | None
    body: bytes
    phrase: str | None = None


class _Worker:
    """A serving_worker.py process and its framed channel."""

    def __init__(self, env: dict[str, str]) -> None:
        # The worker script of this package, as the container's model server: an argv list, no shell.
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-I", str(WORKER)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        self.stop = weakref.finalize(self, _kill, self.process)

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(_LENGTH.pack(len(data)) + data)
        self.process.stdin.flush()

    def receive(self, deadline: float) -> bytes:
        (size,) = _LENGTH.unpack(self._read_exactly(_LENGTH.size, deadline))
        return self._read_exactly(size, deadline)

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd, data = self.process.stdout.fileno(), bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise ContainerTimedOut("the container did not answer in time")
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise ContainerTimedOut(f"the container exited (code {self.process.poll()})")
            data += chunk
        return bytes(data)


class ServingContainer:
    """One loaded model's model server."""

    def __init__(self, worker: _Worker, log: Path) -> None:
        self._worker, self._log = worker, log
        self._lock = threading.Lock()

    def invoke(self, body: bytes, content_type: str | None, accept: str | None,
               fault: bool = False) -> ContainerAnswer:
        header = json.dumps({"content_type": content_type, "accept": accept, "fault": fault}).encode()
        with self._lock:
            deadline = time.monotonic() + INVOKE_TIMEOUT_SECONDS
            try:
                self._worker.send(header)
                self._worker.send(body)
                answer = json.loads(self._worker.receive(deadline))
                payload = self._worker.receive(deadline)
            except (ContainerTimedOut, BrokenPipeError, ValueError) as error:
                self.stop()  # a server that missed its deadline or died is gone for good
                raise ContainerTimedOut(f"no answer from the container: {error}") from error
        return ContainerAnswer(answer["status"], answer.get("content_type"), payload, answer.get("phrase"))

    def stop(self) -> None:
        self._worker.stop()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])


class ModelServers:
    """Starts model servers, keeping one spare warm."""

    def __init__(self) -> None:
        self._spare: _Worker | None = None
        self._lock = threading.Lock()

    def warm(self, env: dict[str, str]) -> None:
        """Have a spare starting, if none is; `env` is what it starts with (a container's, before it has one)."""
        with self._lock:
            if self._spare is None:
                self._spare = _Worker(env)

    def start(self, code_dir: Path, model_dir: Path, env: dict[str, str], log: Path) -> ServingContainer:
        """Give a spare to this model's container and wait until its model server is healthy."""
        self.warm(env)
        with self._lock:
            worker, self._spare = self._spare, None
        assert worker is not None
        self.warm(env)
        worker.send(json.dumps({"code_dir": str(code_dir), "model_dir": str(model_dir), "env": env,
                                "log": str(log)}).encode())
        serving = ServingContainer(worker, log)
        try:
            ready = json.loads(worker.receive(time.monotonic() + _START_TIMEOUT_SECONDS))
        except (ContainerTimedOut, ValueError):
            ready = {"ready": False}
        if not ready.get("ready"):
            serving.stop()
            raise ContainerUnhealthy(f"the model server did not start: {serving.log_tail()}")
        return serving


SERVERS = ModelServers()


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream:
            stream.close()
