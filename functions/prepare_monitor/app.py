"""PrepareMonitorFunction: MonitorPipeline's PrepareMonitor state.

Input {model, execution}; returns the MonitorWindow ($.window: has_data, reason, endpoint_name, start,
end, files, baseline_uri, manifest_uri, report_uri, code_uri, job_prefix, instance_type). Raises
BaselineNotFound when the serving model's baseline cannot be read."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from monitor_window import prepare_monitor
from selfheal_shared.handler import handler, logger
from selfheal_shared.serving_events import MonitorRequest


@handler(MonitorRequest)
def lambda_handler(event: MonitorRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model=event.model, execution=event.execution)
    window = prepare_monitor(event)
    logger.info("monitoring window prepared", extra=window)
    return window
