"""A serving container's model server: a process running serving_worker.py for one loaded model.

The container's environment (container.py: no route to AWS) is the worker's, so the serving toolkit reads
SAGEMAKER_PROGRAM and SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT from it as in the container. Each wait is bounded: the
start-up by the health check's patience, an invocation by InvokeEndpoint's 60 seconds.
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
# "The model container must respond to requests within 60 seconds" (SageMaker Developer Guide, "Use Your Own
# Inference Code with Hosting Services").
INVOKE_TIMEOUT_SECONDS = 60


class ContainerUnhealthy(RuntimeError):
    """The container never answered its health check: its model server did not start."""


class ContainerTimedOut(RuntimeError):
    """The container did not answer an invocation in time."""


@dataclass(frozen=True)
class ContainerAnswer:
    """What the container's /invocations answered: its HTTP status, content type and body."""

    status: int
    content_type: str | None
    body: bytes
    phrase: str | None = None


class ServingContainer:
    def __init__(self, code_dir: Path, model_dir: Path, env: dict[str, str], log: Path) -> None:
        self._log = log
        with open(log, "ab") as stderr:
            # The worker script of this package, as the container's model server: an argv list, no shell.
            self._process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-I", str(WORKER), str(code_dir), str(model_dir)], env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=str(code_dir))
        self._stop = weakref.finalize(self, _kill, self._process)
        self._lock = threading.Lock()
        try:
            ready = json.loads(self._read(time.monotonic() + _START_TIMEOUT_SECONDS))
        except (ContainerTimedOut, ValueError) as error:
            ready = {"ready": False, "why": str(error)}
        if not ready.get("ready"):
            self.stop()
            raise ContainerUnhealthy(f"the model server did not start: {self.log_tail()}")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None,
               fault: bool = False) -> ContainerAnswer:
        header = json.dumps({"content_type": content_type, "accept": accept, "fault": fault}).encode()
        with self._lock:
            deadline = time.monotonic() + INVOKE_TIMEOUT_SECONDS
            try:
                self._write(header)
                self._write(body)
                answer = json.loads(self._read(deadline))
                payload = self._read(deadline)
            except (ContainerTimedOut, BrokenPipeError, ValueError) as error:
                self.stop()  # a worker that missed its deadline or died is gone for good
                raise ContainerTimedOut(f"no answer from the container: {error}") from error
        return ContainerAnswer(answer["status"], answer.get("content_type"), payload, answer.get("phrase"))

    def stop(self) -> None:
        self._stop()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def _write(self, data: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(_LENGTH.pack(len(data)) + data)
        self._process.stdin.flush()

    def _read(self, deadline: float) -> bytes:
        (size,) = _LENGTH.unpack(self._read_exactly(_LENGTH.size, deadline))
        return self._read_exactly(size, deadline)

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        assert self._process.stdout is not None
        fd, data = self._process.stdout.fileno(), bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise ContainerTimedOut("the container did not answer in time")
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise ContainerTimedOut(f"the container exited (code {self._process.poll()})")
            data += chunk
        return bytes(data)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream:
            stream.close()
