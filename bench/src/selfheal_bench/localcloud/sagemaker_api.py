"""moto's SageMaker job operations (Create/Describe/Stop for processing and training jobs), answered by the local
cloud's job service (sagemaker_jobs.py) instead of moto's stubs."""

from __future__ import annotations

import json
from collections.abc import Callable

from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.responses import SageMakerResponse

from .sagemaker_jobs import JobService


def patch_moto_sagemaker(service: JobService) -> Callable[[], None]:
    """Point moto's SageMaker job operations at the service; returns the undo."""

    def create(kind: str) -> Callable[[SageMakerResponse], ActionResult]:
        def handler(self: SageMakerResponse) -> ActionResult:
            job = service.create(kind, json.loads(self.body))
            return ActionResult({f"{kind.capitalize()}JobArn": job.arn})
        return handler

    def describe(kind: str) -> Callable[[SageMakerResponse], ActionResult]:
        def handler(self: SageMakerResponse) -> ActionResult:
            name = self._get_param(f"{kind.capitalize()}JobName")
            return ActionResult(service.get(name, kind).describe())
        return handler

    def stop(kind: str) -> Callable[[SageMakerResponse], EmptyResult]:
        def handler(self: SageMakerResponse) -> EmptyResult:
            service.stop(self._get_param(f"{kind.capitalize()}JobName"), kind)
            return EmptyResult()
        return handler

    patches = {f"{verb}_{kind}_job": factory(kind)
               for kind in ("processing", "training")
               for verb, factory in (("create", create), ("describe", describe), ("stop", stop))}
    originals = {name: SageMakerResponse.__dict__.get(name) for name in patches}
    for name, handler in patches.items():
        setattr(SageMakerResponse, name, handler)

    def undo() -> None:
        for name, handler in originals.items():
            if handler is None:  # an operation moto lacks (StopTrainingJob)
                delattr(SageMakerResponse, name)
            else:
                setattr(SageMakerResponse, name, handler)

    return undo
