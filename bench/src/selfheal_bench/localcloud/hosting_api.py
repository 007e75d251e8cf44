"""SageMaker hosting on moto's wire: its hosting operations and the runtime's InvokeEndpoint answered by the local
HostingService (moto lacks UpdateEndpoint and answers InvokeEndpoint with a canned body), and the endpoints'
CloudWatch metrics published while the patch holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from .endpoint_metrics import publish
from .hosting import HostingService


def patch_moto_hosting(service: HostingService) -> Callable[[], None]:
    """Point moto's SageMaker hosting operations and runtime InvokeEndpoint at the service."""

    def body(self: Any) -> dict[str, Any]:
        return json.loads(self.body)

    handlers: dict[str, Callable[[Any], Any]] = {
        "create_model": lambda self: ActionResult({"ModelArn": service.create_model(body(self))}),
        "describe_model": lambda self: ActionResult(service.describe(service.models, self._get_param("ModelName"),
                                                                     "model")),
        "create_endpoint_config": lambda self: ActionResult(
            {"EndpointConfigArn": service.create_endpoint_config(body(self))}),
        "describe_endpoint_config": lambda self: ActionResult(
            service.describe(service.configs, self._get_param("EndpointConfigName"), "endpoint-config")),
        "create_endpoint": lambda self: ActionResult({"EndpointArn": service.create_endpoint(body(self))}),
        "update_endpoint": lambda self: ActionResult({"EndpointArn": service.update_endpoint(body(self))}),
        "describe_endpoint": lambda self: ActionResult(service.describe_endpoint(self._get_param("EndpointName"))),
        "delete_endpoint": lambda self: (service.delete_endpoint(self._get_param("EndpointName")), EmptyResult())[1],
    }
    originals = {name: SageMakerResponse.__dict__.get(name) for name in handlers}
    for name, handler in handlers.items():
        setattr(SageMakerResponse, name, handler)

    original_invoke = SageMakerRuntimeResponse.invoke_endpoint

    def invoke_endpoint(self: SageMakerRuntimeResponse) -> Any:
        name = self.path.split("/")[2]
        # The container gets the client's headers as sent: an absent one stays absent (the toolkit has defaults).
        out, out_type, variant = service.invoke(name, self.body if isinstance(self.body, bytes) else self.body.encode(),
                                                self.headers.get("Content-Type"), self.headers.get("Accept"),
                                                self.headers.get("X-Amzn-SageMaker-Inference-Id"))
        return 200, {"Content-Type": out_type, "x-Amzn-Invoked-Production-Variant": variant}, out

    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint  # type: ignore[method-assign]
    unpublish = publish(service)

    def undo() -> None:
        unpublish()
        for name, handler in originals.items():
            if handler is None:
                delattr(SageMakerResponse, name)
            else:
                setattr(SageMakerResponse, name, handler)
        SageMakerRuntimeResponse.invoke_endpoint = original_invoke  # type: ignore[method-assign]

    return undo
