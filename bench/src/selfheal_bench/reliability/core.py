"""What selfheal survives, tried on the local cloud and measured.

Each scenario runs on a LocalCloud it is given and returns what it observed, with `problems()`: the
promises that did not hold, in an operator's words (empty when everything held).

- `serving_story`: one model's life under faults. Transient faults on every layer are retried away;
  permanent ones fail the run cleanly; every kind of failed rollout happens while a client keeps
  sending traffic; the monitor schedule fires twice and an approval event arrives three times.
- `burst`: uploads across five models within seconds, a fifth of them redelivered.
- `storm`: a monitor that reports violations every few minutes for hours of simulated time.
- `hostile_uploads`, `hostile_events`, `hostile_payloads`: bad data, keys, events and requests.
- `crash_in_ingest`, `crash_in_pipeline`: functions that die after their side effects;
  `throttle_in_pipeline`: a pipeline function's write throttled past the SDK's retries.

tests/reliability/ asserts on these; `python -m selfheal_bench.reliability [--full]` runs them all, prints
the figures and writes them to out/reliability.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..datagen import CHURN_CONFIG, churn_frame
from ..localcloud import LocalCloud
from ..localcloud.faults import describe
from ..report import endpoint_name

MB = 1024 * 1024
IDLE_TIMEOUT = 600  # seconds: a bound on every wait, far above what any step takes here
ROWS = 1500  # per uploaded dataset: enough for the gate's AUC threshold
MODEL = "churn"
STORY_CONFIG: dict[str, Any] = CHURN_CONFIG | {
    # Each run trains on its own upload; a hung training job is stopped after a minute.
    "training": {"window": {"mode": "latest"}, "spot": {"max_runtime_seconds": 60}},
    "retrain": {"on_violation": "retrain", "window": {"mode": "latest"}},
}


@dataclass(frozen=True)
class Sizes:
    """How big the scenarios are: quick for `make test`, full for the published figures."""

    name: str
    burst_uploads: int  # deliveries, a fifth of them redeliveries of earlier ones
    storm_hours: int
    storm_tick_minutes: int
    burst_trains: bool  # the burst's runs train for real, or end at Preprocess (an injected failure)
    slow_faults: bool  # a training job that hangs for its 60 s MaxRuntime, an update refused until it fails


QUICK = Sizes("quick", burst_uploads=20, storm_hours=6, storm_tick_minutes=10, burst_trains=False, slow_faults=False)
FULL = Sizes("full", burst_uploads=200, storm_hours=48, storm_tick_minutes=5, burst_trains=True, slow_faults=True)


def sizes(full: bool | None = None) -> Sizes:
    """FULL when asked, or when SELFHEAL_FULL=1 (how `make test` is told to run the full sizes)."""
    return FULL if (os.environ.get("SELFHEAL_FULL") == "1" if full is None else full) else QUICK


def write_csv(folder: Path, name: str, rows: int, seed: int, shift: float = 0.0, with_target: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    churn_frame(rows, seed, shift=shift, with_target=with_target).to_csv(path, index=False)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- faults --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    """A fault to inject, and what in selfheal should absorb it."""

    target: str
    kind: str
    times: int | None = 1
    absorbed_by: str = ""

    @property
    def aws(self) -> str:
        return describe(self.target, self.kind)


@dataclass
class Injected:
    injection: Injection
    fired: int

    def as_dict(self) -> dict[str, Any]:
        i = self.injection
        return {"target": i.target, "kind": i.kind, "aws": i.aws, "times": i.times, "fired": self.fired,
                "absorbed_by": i.absorbed_by}


@contextlib.contextmanager
def injected(cloud: LocalCloud, injections: tuple[Injection, ...]) -> Iterator[list[Injected]]:
    """Arm the faults for the block; afterwards each says how often it fired. Faults never outlive it."""
    armed = [(i, cloud.faults.add(i.target, i.kind, i.times)) for i in injections]
    found = [Injected(i, 0) for i in injections]
    try:
        yield found
    finally:
        for record, (_, fault) in zip(found, armed, strict=True):
            record.fired = fault.fired
        cloud.faults.clear()


# Every layer's transient faults, at once, on one run. Ingest's two share its three async attempts.
TRANSIENT = (
    Injection("api:dynamodb:PutItem", "ProvisionedThroughputExceededException",
              absorbed_by="Lambda's async retry of IngestFunction (its first ledger write)"),
    Injection("api:s3:GetObject", "SlowDown",
              absorbed_by="Lambda's async retry of IngestFunction (its read of the model's configuration)"),
    Injection("sagemaker:CreateProcessingJob", "limit", absorbed_by="Preprocess: Retry with backoff"),
    Injection("job:processing", "capacity", absorbed_by="Preprocess: Retry on States.TaskFailed, new job name"),
    Injection("sagemaker:CreateTrainingJob", "limit", absorbed_by="Train: Retry with backoff"),
    Injection("job:training", "capacity", absorbed_by="Train: Retry on States.TaskFailed, new job name"),
    Injection("lambda:EvaluateGateFunction", "throttle", absorbed_by="Gate: Retry with backoff"),
    Injection("lambda:RegisterModelFunction", "service", absorbed_by="Register: Retry with backoff"),
    Injection("lambda:PrepareDeployFunction", "service", absorbed_by="DeployPipeline PrepareDeploy: Retry"),
    Injection("sagemaker:CreateEndpoint", "limit", absorbed_by="DeployPipeline CreateEndpoint: Retry"),
)
HANG = Injection("job:training", "hang",
                 absorbed_by="Train: the job is stopped at MaxRuntimeInSeconds; Retry on States.TaskFailed")


# -- a client of the endpoint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    phase: str
    status: int  # 200, or the container's own status (ModelError's OriginalStatusCode), or the API's


class Traffic:
    """A client sending the model's rows to its endpoint one by one, in a thread, for as long as the block
    lasts; each answer is kept with the phase of the story it came in."""

    PACE = 0.02  # seconds between requests: steady traffic that leaves the CPUs to the jobs

    def __init__(self, cloud: LocalCloud, model: str, rows: list[bytes]) -> None:
        self._runtime = cloud.client("sagemaker-runtime")
        self._endpoint = endpoint_name(model)
        self._rows = rows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="traffic", daemon=True)
        self.phase = "start"
        self.answers: list[Answer] = []

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _send(self) -> None:
        index = 0
        while not self._stop.is_set():
            phase, row = self.phase, self._rows[index % len(self._rows)]
            index += 1
            self.answers.append(Answer(phase, invoke_status(self._runtime, self._endpoint, row)))
            self._stop.wait(self.PACE)

    def during(self, phase: str) -> list[Answer]:
        return [a for a in list(self.answers) if a.phase == phase]


def invoke_status(runtime: Any, endpoint: str, body: bytes, content_type: str = "text/csv",
                  accept: str = "text/csv") -> int:
    """200 when the endpoint answered; else the container's status (ModelError) or the API's."""
    try:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType=content_type, Accept=accept, Body=body)
    except ClientError as error:
        return int(error.response.get("OriginalStatusCode") or error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def request_rows(rows: int, seed: int, shift: float) -> list[bytes]:
    """Feature rows as a client sends them: CSV lines without header or target."""
    frame = churn_frame(rows, seed, shift=shift, with_target=False)
    return [line.encode() for line in frame.to_csv(header=False, index=False, lineterminator="\n").splitlines()]




class Inbox:
    """The notification topic read through an SQS queue subscribed to it, as an operator's inbox would."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._sqs = cloud.client("sqs")
        self._url = self._sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        cloud.client("sns").subscribe(TopicArn=cloud.template.ref("NotifyTopic"), Protocol="sqs", Endpoint=arn,
                                      Attributes={"RawMessageDelivery": "true"})
        self.messages: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every notification so far."""
        while True:
            batch = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return list(self.messages)
            self.messages += [json.loads(m["Body"]) for m in batch]
            self._sqs.delete_message_batch(QueueUrl=self._url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])

