"""Scenario files for `selfheal local run`: models with their configuration, and steps run in order.

```yaml
models:
  churn: {config: {target: churned, problem: binary, metric: {name: auc, threshold: 0.75}}}
steps:
  - upload: {model: churn, file: data/first.csv}
  - traffic: {model: churn, file: data/requests.csv}   # an inference_id column is sent as the InferenceId
  - monitor: {model: churn}
  - labels: {model: churn, file: data/labels.csv}      # inference_id and the target: ground truth arrives
  - traffic: {model: churn, file: data/more.csv, at: 1w 2d}  # optional `at`: when the step happens (backtest)
faults:                      # optional: failures the local cloud injects, as AWS reports them
  - {target: "job:training", kind: capacity, times: 1}
```
Paths are relative to the scenario file. A scenario that does not fit is refused with a message that
names the place, before anything runs: model names by the rule IngestFunction applies to
incoming/<model>/, faults by the local cloud's own catalogue.

Every step may say when it happens (`at`, read by `selfheal backtest`'s simulated clock; `local run`
runs steps one after another as before): an ISO-8601 time (UTC unless it names a zone), or an offset
from the first step's time such as `7d`, `2w 3h` or `90m` (units w, d, h, m, s). The first step's time is
its ISO `at`, else HISTORY_START; a step without `at` happens when the step before it did. Times never
go backwards.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from selfheal_shared.errors import InvalidName
from selfheal_shared.names import check_model_name

from .localcloud.faults import UnknownFault, describe

STEP_FIELDS = {
    "upload": {"model", "file"},
    "traffic": {"model", "file"},
    "monitor": {"model"},
    "approve": {"model"},
    "labels": {"model", "file"},
}
OPTIONAL_FIELDS = {"at"}  # every kind
HISTORY_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: the first step's time when it names none
_OFFSET = re.compile(r"\s*(?:(\d+)\s*([wdhms])\s*)+")
_OFFSET_PART = re.compile(r"(\d+)\s*([wdhms])")
_UNIT = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
INFERENCE_ID = "inference_id"  # a traffic or labels file's column naming each request (InvokeEndpoint's InferenceId)


class ScenarioError(ValueError):
    """The scenario file cannot be run as written; the message says where and why."""


@dataclass
class Step:
    kind: str
    model: str
    file: Path | None = None
    at: datetime = HISTORY_START  # when the step happens in simulated time (`at`, resolved)

    def describe(self) -> str:
        return f"{self.kind} {self.model}" + (f" {self.file.name}" if self.file else "")


@dataclass
class Scenario:
    path: Path
    models: dict[str, dict[str, Any]]
    steps: list[Step]
    faults: list[dict[str, Any]] = field(default_factory=list)


def load_scenario(path: Path) -> Scenario:
    if not path.is_file():
        raise ScenarioError(f"{path}: no such scenario file")
    data = _read_document(path, "scenario")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with 'models' and 'steps'")
    unknown = set(data) - {"models", "steps", "faults"}
    if unknown:
        raise ScenarioError(f"{path}: unknown top-level field(s): {', '.join(sorted(unknown))}")
    models = _models(path, data.get("models"))
    steps = [_step(path, index, raw, models) for index, raw in enumerate(_list(path, data, "steps"), start=1)]
    _place_in_time(path, steps, [raw[next(iter(raw))].get("at") for raw in data["steps"]])
    faults = data.get("faults") or []
    if not isinstance(faults, list):
        raise ScenarioError(f"{path}: faults: a list of {{target, kind, times?}} mappings")
    return Scenario(path, models, steps, [_fault(path, index, raw) for index, raw in enumerate(faults, start=1)])


def _fault(path: Path, index: int, raw: Any) -> dict[str, Any]:
    where = f"{path}: faults[{index}]"
    if not isinstance(raw, dict) or not {"target", "kind"} <= set(raw) or set(raw) - {"target", "kind", "times"}:
        raise ScenarioError(f"{where}: a fault is a mapping of target, kind and times (optional), "
                            "e.g. {target: 'job:training', kind: capacity, times: 1}")
    try:
        describe(str(raw["target"]), str(raw["kind"]))
    except UnknownFault as error:
        raise ScenarioError(f"{where}: {error}") from None
    times = raw.get("times", 1)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ScenarioError(f"{where}: times must be a whole number of at least 1, or null for every time "
                            f"(got {times!r})")
    return {"target": str(raw["target"]), "kind": str(raw["kind"]), "times": times}


def _read_document(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({what}): invalid byte at offset {exc.start}; "
                            "save the file as UTF-8") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ScenarioError(f"{path}: not valid {kind} ({what}): {exc}") from exc


def _list(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{path}: '{key}' must be a non-empty list")
    return value


def _models(path: Path, raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(f"{path}: 'models' must map each model name to {{config: ...}}")
    models = {}
    for name, spec in raw.items():
        try:
            check_model_name(str(name))
        except InvalidName as error:
            raise ScenarioError(f"{path}: models.{name}: {error}") from None
        if not isinstance(spec, dict) or "config" not in spec:
            raise ScenarioError(f"{path}: models.{name}: needs 'config' (a mapping, or a path to a YAML/JSON file)")
        config = spec["config"]
        if isinstance(config, str):
            config_path = path.parent / config
            if not config_path.is_file():
                raise ScenarioError(f"{path}: models.{name}.config: no such file {config_path}")
            config = _read_document(config_path, f"configuration of {name}")
        if not isinstance(config, dict):
            raise ScenarioError(f"{path}: models.{name}.config must be a mapping")
        models[str(name)] = config
    return models


def _step(path: Path, index: int, raw: Any, models: dict[str, Any]) -> Step:
    where = f"{path}: steps[{index}]"
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ScenarioError(f"{where}: a step is one of {sorted(STEP_FIELDS)} with its fields, e.g. "
                            "{upload: {model: churn, file: data.csv}}")
    (kind, fields), = raw.items()
    if kind not in STEP_FIELDS:
        raise ScenarioError(f"{where}: unknown step kind '{kind}' (known: {', '.join(sorted(STEP_FIELDS))})")
    if not isinstance(fields, dict):
        raise ScenarioError(f"{where}: {kind} takes a mapping of {sorted(STEP_FIELDS[kind])}")
    missing, extra = STEP_FIELDS[kind] - set(fields), set(fields) - STEP_FIELDS[kind] - OPTIONAL_FIELDS
    if missing or extra:
        raise ScenarioError(f"{where}: {kind} " + "; ".join(
            part for part in (missing and f"missing {sorted(missing)}", extra and f"unknown {sorted(extra)}") if part))
    model = str(fields["model"])
    if model not in models:
        raise ScenarioError(f"{where}: model '{model}' is not in 'models'")
    file = None
    if "file" in fields:
        file = (path.parent / str(fields["file"])).resolve()
        if not file.is_file():
            raise ScenarioError(f"{where}: no such file {file}")
    if kind == "labels":
        _check_label_columns(where, file, str(models[model].get("target", "")))
    return Step(kind, model, file)


def _place_in_time(path: Path, steps: list[Step], ats: list[Any]) -> None:
    """Resolve each step's `at`: ISO times as written, offsets from the first step's time."""
    origin = previous = None
    for index, (step, raw) in enumerate(zip(steps, ats, strict=True), start=1):
        where = f"{path}: steps[{index}].at"
        if raw is None:
            step.at = previous or HISTORY_START
        else:
            moment = parse_at(where, raw, origin or HISTORY_START)
            if previous is not None and moment < previous:
                raise ScenarioError(f"{where}: {moment.isoformat()} is before the step before it "
                                    f"({previous.isoformat()}): steps happen in order")
            step.at = moment
        origin = origin or step.at
        previous = step.at


def parse_at(where: str, raw: Any, origin: datetime) -> datetime:
    """An ISO-8601 time (UTC unless it names a zone) or an offset from `origin` ("7d", "2w 3h", "90m")."""
    if isinstance(raw, datetime):  # YAML reads an unquoted ISO time itself
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    text = str(raw).strip()
    if _OFFSET.fullmatch(text):
        parts = [(int(number), unit) for number, unit in _OFFSET_PART.findall(text)]
        return origin + sum((timedelta(**{_UNIT[unit]: number}) for number, unit in parts), timedelta())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(f"{where}: {text!r} is neither an ISO-8601 time (e.g. 2026-01-05T09:00:00Z) nor an "
                            "offset from the first step (e.g. 7d, 2w 3h, 90m; units w, d, h, m, s)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_label_columns(where: str, file: Path | None, target: str) -> None:
    """A labels file is a CSV with the request ids and the target: what a labelling process returns."""
    assert file is not None
    try:
        with open(file, encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ScenarioError(f"{where}: cannot read {file.name} as CSV: {error}") from None
    missing = [column for column in (INFERENCE_ID, target) if column not in header]
    if missing:
        raise ScenarioError(f"{where}: labels file {file.name} needs the columns {INFERENCE_ID} and {target} "
                            f"(missing: {', '.join(missing)})")
