"""Data at rest and in transit, for every resource of its kind (test_template_shape.py checks the data
bucket's own settings and the key on topics, queues and logs; test_sagemaker_requests.py the jobs' volumes
and outputs and the endpoint's capture): every bucket private and TLS-only, every queue TLS-only, and the
endpoint's instance storage encrypted with the project's key."""

from __future__ import annotations

from typing import Any

from test_template_shape import of_type


def tls_only(statements: list[dict[str, Any]], action: str, resources: list[Any]) -> bool:
    """A Deny of `action` on exactly `resources` to anyone not using TLS."""
    return any(s["Effect"] == "Deny" and s["Principal"] == "*" and s["Action"] == action
               and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
               and sorted(map(str, s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]))
               == sorted(map(str, resources))
               for s in statements)


def test_every_bucket_blocks_public_access_and_refuses_plain_http(raw_template):
    policies = {p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in of_type(raw_template, "AWS::S3::BucketPolicy").values()}
    for name, bucket in of_type(raw_template, "AWS::S3::Bucket").items():
        # Given each bucket; Then all four public access blocks are on
        block = bucket["Properties"]["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                       "RestrictPublicBuckets"], True), name
        # and its policy refuses every request not over TLS, on the bucket and on its objects
        resources = [{"Fn::GetAtt": [name, "Arn"]}, {"Fn::Sub": f"${{{name}.Arn}}/*"}]
        assert tls_only(policies[name], "s3:*", resources), name


def test_every_queue_refuses_plain_http(raw_template):
    policies = {str(q): p["Properties"]["PolicyDocument"]["Statement"]
                for p in of_type(raw_template, "AWS::SQS::QueuePolicy").values() for q in p["Properties"]["Queues"]}
    for name in of_type(raw_template, "AWS::SQS::Queue"):
        # Given each queue; Then its policy refuses every request not over TLS
        statements = policies[str({"Ref": name})]
        assert tls_only(statements, "sqs:*", [{"Fn::GetAtt": [name, "Arn"]}]), name


def test_the_endpoint_encrypts_its_captured_traffic_with_the_key(render, fill, policies):
    # Given the endpoint config DeployPipeline creates
    sent = fill(render(policies, "DeployPipeline")["States"]["CreateEndpointConfig"]["Parameters"],
                machine="DeployPipeline")
    # Then the traffic it captures is encrypted with the project's key. (Its instance storage is not given
    # the key: SageMaker refuses a KmsKeyId for instance types with local NVMe storage, which it encrypts
    # in hardware, and the instance type is the model's configuration to choose.)
    assert sent["DataCaptureConfig"]["KmsKeyId"] == policies.physical("Key", "Arn")
    assert "KmsKeyId" not in sent
