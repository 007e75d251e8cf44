"""Data capture as SageMaker writes it: each sampled request and its answer, with the client's InferenceId
as eventMetadata.inferenceId (what the model-quality job joins ground truth on)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from selfheal_bench.fixtures.hosting import BUCKET, ENDPOINT
from selfheal_bench.localcloud.template import REGION


def capturing(hosting, name: str) -> str:
    """An endpoint config like DeployPipeline's: every request captured, input and output."""
    hosting.config(name)
    config = hosting.service.configs[name]
    config["DataCaptureConfig"] = {"EnableCapture": True, "InitialSamplingPercentage": 100,
                                   "DestinationS3Uri": f"s3://{BUCKET}/capture",
                                   "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
    return name


def captured(hosting) -> list[dict]:
    hosting.service.flush_capture()
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="capture/").get("Contents", [])]
    return [json.loads(line) for key in sorted(keys)
            for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()]


def test_a_request_s_inference_id_is_captured_as_its_event_metadata(hosting):
    hosting.serving(capturing(hosting, "capturing"))
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    # When one request names its InferenceId and one does not
    runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"1,2", ContentType="text/csv", InferenceId="order-42")
    runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"3,4", ContentType="text/csv")
    # Then the capture holds both, the first with its id, the second with none (as SageMaker omits it)
    records = captured(hosting)
    assert [r["captureData"]["endpointInput"]["data"] for r in records] == ["1,2", "3,4"]
    assert [r["eventMetadata"].get("inferenceId") for r in records] == ["order-42", None]
    assert all(r["eventMetadata"]["eventId"] and r["eventMetadata"]["inferenceTime"] for r in records)


@pytest.mark.parametrize("inference_id", ["x" * 65, " leading-space", "tab\there"])
def test_an_inference_id_outside_the_api_s_constraint_is_refused(hosting, inference_id):
    hosting.serving(capturing(hosting, "capturing"))
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    with pytest.raises(ClientError, match="inferenceId"):
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"1,2", ContentType="text/csv", InferenceId=inference_id)
    assert captured(hosting) == []
