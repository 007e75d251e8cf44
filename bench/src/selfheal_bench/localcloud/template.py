"""Read template.yaml the way CloudFormation would, for the local cloud.

Only what the local cloud needs: parameters with their defaults, conditions, each resource's
physical name, and intrinsic functions (Ref, Sub, GetAtt, If, Join, Select, Split, Equals, ...)
resolved against those names. SAM resources keep their SAM shape; the local cloud reads them as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from ..intrinsics import NO_VALUE, Intrinsics

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class TemplateError(Exception):
    """The template cannot be read or uses something the local cloud does not resolve."""


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    stack_name: str = "selfheal-local"
    parameters: dict[str, Any] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, stack_name: str, overrides: dict[str, str]) -> Template:
        body, matches = decode(str(path))
        if body is None:
            raise TemplateError(f"{path}: {matches}")
        template = cls(path=path, body=_plain(body), stack_name=stack_name)
        template.parameters = template._parameter_values(overrides)
        template.physical = {name: template._physical_name(name) for name in template.resources}
        return template

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.body.get("Resources", {})

    @property
    def root(self) -> Path:
        return self.path.parent

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: res for name, res in self.resources.items() if res.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """A resource's properties with every intrinsic function resolved."""
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A SAM function's properties merged over Globals.Function, as SAM does (not yet resolved)."""
        return _merge(self.body.get("Globals", {}).get("Function", {}), self.resources[logical_id]["Properties"])

    # -- names ---------------------------------------------------------------------------------

    def _parameter_values(self, overrides: dict[str, str]) -> dict[str, Any]:
        values = {}
        for name, spec in self.body.get("Parameters", {}).items():
            if name in overrides:
                values[name] = overrides[name]
            elif "Default" in spec:
                values[name] = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no value was given")
        return values

    def _physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        explicit = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Serverless::StateMachine": "Name",
            "AWS::IAM::Role": "RoleName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Events::Rule": "Name",
            "AWS::Scheduler::ScheduleGroup": "Name",
        }.get(resource.get("Type", ""))
        if explicit and explicit in props:
            return str(self.resolve(props[explicit]))
        name = f"{self.stack_name}-{logical_id}"
        return name.lower() if resource.get("Type") == "AWS::S3::Bucket" else name

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical[logical_id]
        prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:"
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": prefix.format("dynamodb") + f"table/{name}",
            "AWS::SNS::Topic": prefix.format("sns") + name,
            "AWS::SQS::Queue": prefix.format("sqs") + name,
            "AWS::Serverless::Function": prefix.format("lambda") + f"function:{name}",
            "AWS::Lambda::Function": prefix.format("lambda") + f"function:{name}",
            "AWS::Serverless::StateMachine": prefix.format("states") + f"stateMachine:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
            "AWS::KMS::Key": prefix.format("kms") + f"key/{name}",
            "AWS::Logs::LogGroup": prefix.format("logs") + f"log-group:{name}:*",
            "AWS::Events::Rule": prefix.format("events") + f"rule/{name}",
            "AWS::Serverless::LayerVersion": prefix.format("lambda") + f"layer:{name}:1",
            "AWS::Scheduler::ScheduleGroup": prefix.format("scheduler") + f"schedule-group/{name}",
            "AWS::CloudWatch::Alarm": prefix.format("cloudwatch") + f"alarm:{name}",
        }
        if kind not in arns:
            raise TemplateError(f"no ARN rule for {logical_id} ({kind})")
        return arns[kind]

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            # Ref returns the ARN for these types, the name for most others.
            if self.resources[name]["Type"] in {"AWS::SNS::Topic", "AWS::Serverless::StateMachine",
                                                "AWS::Serverless::LayerVersion"}:
                return self.arn(name)
            if self.resources[name]["Type"] == "AWS::SQS::Queue":
                return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{self.physical[name]}"
            return self.physical[name]
        raise TemplateError(f"Ref to unknown name {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt on unknown resource {logical_id}")
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in {"Name", "TopicName", "QueueName", "StreamName"}:
            return self.physical[logical_id]
        if attribute == "QueueUrl":
            return self.ref(logical_id)
        if attribute == "KeyId":
            return self.physical[logical_id]
        if attribute == "DomainName":
            return f"{self.physical[logical_id]}.s3.amazonaws.com"
        raise TemplateError(f"GetAtt {logical_id}.{attribute} is not resolved by the local cloud")

    # -- intrinsic functions ----------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.body.get("Conditions", {})[name]))

    def resolve(self, node: Any) -> Any:
        """`node` with every intrinsic function resolved (AWS::NoValue entries dropped)."""
        return self._intrinsics.resolve(node)

    @cached_property
    def _intrinsics(self) -> Intrinsics:
        return Intrinsics(self.ref, self.get_att, self.condition, lambda name: name in self.resources, TemplateError)


def function_ids(path: Path) -> frozenset[str]:
    """The logical ids of a template's functions, read as written (no parameters, nothing resolved)."""
    body, matches = decode(str(path))
    if body is None:
        raise TemplateError(f"{path}: {matches}")
    return frozenset(name for name, resource in body.get("Resources", {}).items()
                     if resource.get("Type") == "AWS::Serverless::Function")


def _plain(node: Any) -> Any:
    """cfn-lint's decoder returns its own str/dict subclasses; the resolver wants plain ones."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals merge: maps merge key by key, lists add up, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + value
        else:
            merged[key] = value
    return merged
