"""What template.yaml's IAM roles allow, evaluated offline.

The template is read with cfn-lint's decoder (CloudFormation's YAML tags) and transformed by the
SAM translator, so SAM-generated roles and policy templates are expanded exactly as on deploy. Then
`allowed(logical_id, action, resource)` evaluates the role of a function, a state machine or a role
itself: explicit Deny wins, then any matching Allow (Action/NotAction and Resource/NotResource
with IAM wildcards, plus the common condition operators against a context the caller passes).

Intrinsic functions resolve for a fixed account, region and stack; physical names of resources
come from `resolver(logical_id, attribute)` when the caller has them (the local cloud does) and
from a deterministic naming scheme otherwise.

    policies = load(parameters={"XGBoostImageUri": ..., "SKLearnImageUri": ...})
    policies.allowed("IngestFunction", "s3:GetObject", "arn:aws:s3:::bucket/incoming/churn/a.csv")
    policies.allowed("TrainingPipeline", "iam:PassRole", role_arn,
                     context={"iam:PassedToService": "sagemaker.amazonaws.com"})
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from selfheal.project import TEMPLATE, find_project

from .intrinsics import NO_VALUE, Intrinsics

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK_NAME = "selfheal"

# resolver(logical_id, attribute) -> physical value, or None for the default naming.
# attribute is None for Ref, else the GetAtt attribute ("Arn", "Name", ...).
Resolver = Callable[[str, str | None], str | None]

# SAM attaches these to the roles it generates; their documents are public and stable. A role that
# names any other AWS managed policy cannot be evaluated offline and is refused loudly.
AWS_MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "AWSXRayDaemonWriteAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}



class PolicyError(Exception):
    """The template cannot be evaluated (unknown resource, unsupported construct)."""


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),)


@cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match: `*` any run of characters, `?` one character."""
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


_BOOL_OPERATORS = {"Bool"}  # compared case-insensitively, like the strings "true" and "false"
_STRING_OPERATORS: dict[str, tuple[bool, bool, bool]] = {
    # operator: (negated, wildcards, ignore case)
    "StringEquals": (False, False, False),
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False),
    "StringNotLike": (True, True, False),
    "ArnEquals": (False, True, False),
    "ArnLike": (False, True, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
}


def _condition_holds(operator: str, key: str, expected: tuple[str, ...], context: Mapping[str, Any]) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    present = {k.lower(): v for k, v in context.items()}
    actual = present.get(key.lower())
    if base == "Null":
        return (actual is None) == (expected[0].lower() == "true")
    if base not in _STRING_OPERATORS and base not in _BOOL_OPERATORS:
        raise PolicyError(f"condition operator {operator} is not supported")
    negated, wildcards, ignore_case = _STRING_OPERATORS.get(base, (False, False, True))
    if actual is None:
        # A missing key fails a positive test and passes a negated one, as in IAM.
        return if_exists or negated
    values = [
        str(v).lower() if isinstance(v, bool) else str(v) for v in (actual if isinstance(actual, list) else [actual])
    ]
    if wildcards:
        hit = any(matches(e, v, ignore_case=ignore_case) for v in values for e in expected)
    elif ignore_case:
        hit = any(v.lower() == e.lower() for v in values for e in expected)
    else:
        hit = any(v == e for v in values for e in expected)
    return not hit if negated else hit


@dataclass(frozen=True)
class Statement:
    """One resolved policy statement; `source` says where it came from, for messages."""

    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    sid: str | None = None
    source: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], source: str) -> Statement:
        conditions = {
            op: {key: _as_tuple(value) for key, value in keys.items()}
            for op, keys in (raw.get("Condition") or {}).items()
        }
        return cls(
            effect=raw["Effect"],
            actions=_as_tuple(raw.get("Action")),
            not_actions=_as_tuple(raw.get("NotAction")),
            resources=_as_tuple(raw.get("Resource")),
            not_resources=_as_tuple(raw.get("NotResource")),
            conditions=conditions,
            sid=raw.get("Sid"),
            source=source,
        )

    def covers_action(self, action: str) -> bool:
        if self.actions:
            return any(matches(p, action, ignore_case=True) for p in self.actions)
        return bool(self.not_actions) and not any(matches(p, action, ignore_case=True) for p in self.not_actions)

    def covers_resource(self, resource: str) -> bool:
        if self.resources:
            return any(matches(p, resource) for p in self.resources)
        return bool(self.not_resources) and not any(matches(p, resource) for p in self.not_resources)

    def applies(self, action: str, resource: str, context: Mapping[str, Any]) -> bool:
        return (
            self.covers_action(action)
            and self.covers_resource(resource)
            and all(
                _condition_holds(op, key, expected, context)
                for op, keys in self.conditions.items()
                for key, expected in keys.items()
            )
        )


class TemplatePolicies:
    """The IAM view of one template, for one account, region and stack."""

    def __init__(
        self,
        template: Path | str | None = None,
        *,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
        partition: str = PARTITION,
        stack_name: str = STACK_NAME,
        parameters: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.partition = partition
        self.stack_name = stack_name
        self._resolver = resolver
        path = Path(template or find_project() / TEMPLATE).resolve()
        raw = _decode(str(path), path.stat().st_mtime_ns)
        self._parameters = self._parameter_values(raw.get("Parameters", {}), parameters or {})
        # Shared between instances (never modified): transforming takes a second or more.
        self.template = _sam_transform(str(path), path.stat().st_mtime_ns,
                                       tuple(sorted(self._pseudo_parameters().items())), region)
        self.resources: dict[str, Any] = self.template.get("Resources", {})
        self._conditions = self.template.get("Conditions", {})
        self._intrinsics = Intrinsics(self._ref, self._get_att, self._condition_true,
                                      lambda name: name in self.resources, PolicyError)

    # ------------------------------------------------------------------ public API
    def allowed(self, logical_id: str, action: str, resource: str, context: Mapping[str, Any] | None = None) -> bool:
        """Whether the role of `logical_id` (a function, state machine or role) may do `action` on `resource`."""
        context = context or {}
        applicable = [s for s in self.statements(logical_id) if s.applies(action, resource, context)]
        if any(s.effect == "Deny" for s in applicable):
            return False
        return any(s.effect == "Allow" for s in applicable)

    def statements(self, logical_id: str) -> list[Statement]:
        """Every statement of the role behind `logical_id`, with intrinsic functions resolved."""
        role = self.role_of(logical_id)
        found: list[Statement] = []
        properties = self.resources[role].get("Properties", {})
        for policy in self._resolve(properties.get("Policies", [])):
            found += self._document(policy["PolicyDocument"], f"{role}/{policy.get('PolicyName', '')}")
        for arn in properties.get("ManagedPolicyArns", []):
            found += self._managed_policy(arn, role)
        for name, resource in self.resources.items():
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            if not self._condition_true(resource.get("Condition")):
                continue
            attached = [self.resolve_reference(r) for r in resource.get("Properties", {}).get("Roles", [])]
            if role in attached:
                found += self._document(resource["Properties"]["PolicyDocument"], name)
        return found

    def role_of(self, logical_id: str) -> str:
        """Logical id of the IAM role a function or state machine runs as (a role maps to itself)."""
        resource = self._resource(logical_id)
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            return logical_id
        properties = resource.get("Properties", {})
        if kind == "AWS::Lambda::Function":
            return self.resolve_reference(properties["Role"])
        if kind == "AWS::StepFunctions::StateMachine":
            return self.resolve_reference(properties["RoleArn"])
        raise PolicyError(f"{logical_id} is a {kind}, which runs as no role")

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions in a template value (AWS::NoValue entries are dropped)."""
        resolved = self._resolve(value)
        if resolved is NO_VALUE:
            raise PolicyError(f"{value!r} resolves to AWS::NoValue")
        return resolved

    def resolve_reference(self, value: Any) -> str:
        """The logical id a Ref / GetAtt points at."""
        if isinstance(value, dict) and "Ref" in value:
            return value["Ref"]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else target.split(".", 1)[0]
        raise PolicyError(f"{value!r} is not a reference to a resource")

    def physical(self, logical_id: str, attribute: str | None = None) -> str:
        """Physical name (Ref) or attribute (GetAtt) of a resource."""
        if self._resolver is not None:
            given = self._resolver(logical_id, attribute)
            if given is not None:
                return given
        return self._default_physical(logical_id, attribute)

    # ------------------------------------------------------------------ template
    def _resource(self, logical_id: str) -> Mapping[str, Any]:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise PolicyError(f"template has no resource {logical_id}") from None

    def _pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:"
                f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
        }

    @staticmethod
    def _parameter_values(declared: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
        unknown = set(given) - set(declared)
        if unknown:
            raise PolicyError(f"template declares no parameter {sorted(unknown)}")
        values = {name: spec["Default"] for name, spec in declared.items() if "Default" in spec}
        values.update(given)
        return {name: str(value) for name, value in values.items()}

    def _document(self, document: Mapping[str, Any], source: str) -> list[Statement]:
        statements = document["Statement"]
        if isinstance(statements, dict):
            statements = [statements]
        return [Statement.parse(self.resolve(s), source) for s in statements]

    def _managed_policy(self, arn: Any, role: str) -> list[Statement]:
        if isinstance(arn, dict) and "Ref" in arn and arn["Ref"] in self.resources:
            policy = self.resources[arn["Ref"]]
            return self._document(policy["Properties"]["PolicyDocument"], arn["Ref"])
        name = str(self.resolve(arn)).rsplit("/", 1)[-1]
        if name not in AWS_MANAGED_POLICIES:
            raise PolicyError(f"{role} uses managed policy {name}, whose document is not known offline")
        return [Statement.parse(s, f"{role}/{name}") for s in AWS_MANAGED_POLICIES[name]]

    # ------------------------------------------------------------------ intrinsic functions
    def _condition_true(self, name: str | None) -> bool:
        if name is None:
            return True
        return bool(self._resolve(self._conditions[name]))

    def _resolve(self, value: Any) -> Any:
        return self._intrinsics.resolve(value)

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = self._pseudo_parameters()
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            if name not in self._parameters:
                raise PolicyError(f"parameter {name} has no default: pass parameters={{{name!r}: ...}}")
            return self._parameters[name]
        self._resource(name)
        return self.physical(name)

    def _get_att(self, logical_id: str, attribute: str) -> str:
        self._resource(logical_id)
        return self.physical(logical_id, attribute)

    # ------------------------------------------------------------------ default physical names
    def _default_physical(self, logical_id: str, attribute: str | None) -> str:
        resource = self._resource(logical_id)
        kind = resource["Type"]
        properties = resource.get("Properties", {})
        p, r, a = self.partition, self.region, self.account_id
        name_property = _NAME_PROPERTIES.get(kind)
        if name_property and name_property in properties:
            name = str(self.resolve(properties[name_property]))
        else:
            name = f"{self.stack_name}-{logical_id}"
        if kind == "AWS::S3::Bucket":
            name = name.lower()
        arns = {
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{name}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{r}:{a}:{name}",
            "AWS::KMS::Key": f"arn:{p}:kms:{r}:{a}:key/{_key_id(logical_id)}",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::Lambda::LayerVersion": f"arn:{p}:lambda:{r}:{a}:layer:{name}:1",
            "AWS::StepFunctions::StateMachine": f"arn:{p}:states:{r}:{a}:stateMachine:{name}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{name}",
            "AWS::Events::Rule": f"arn:{p}:events:{r}:{a}:rule/{name}",
        }
        refs = {
            "AWS::SNS::Topic": arns["AWS::SNS::Topic"],
            "AWS::SQS::Queue": f"https://sqs.{r}.amazonaws.com/{a}/{name}",
            "AWS::KMS::Key": _key_id(logical_id),
            "AWS::Lambda::LayerVersion": arns["AWS::Lambda::LayerVersion"],
            "AWS::StepFunctions::StateMachine": arns["AWS::StepFunctions::StateMachine"],
        }
        if attribute is None:
            return refs.get(kind, name)
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute in ("Name", "QueueName", "TopicName", "KeyId", "RoleId"):
            return _key_id(logical_id) if attribute == "KeyId" else name
        if attribute == "QueueUrl":
            return refs["AWS::SQS::Queue"]
        raise PolicyError(f"no default for {logical_id}.{attribute}: pass a resolver")


_NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Events::Rule": "Name",
}


def _key_id(logical_id: str) -> str:
    digits = f"{sum(map(ord, logical_id)):012d}"
    return f"00000000-0000-4000-8000-{digits}"


@cache
def _decode(path: str, mtime_ns: int) -> dict[str, Any]:
    """The template as CloudFormation reads it (cached per path and modification time)."""
    from cfnlint.decode import decode

    template, problems = decode(path)
    if problems or template is None:
        raise PolicyError(f"{path}: " + "; ".join(str(p) for p in problems))
    # Plain dicts and strs: the decoder's node classes carry line marks the translator must not see.
    return json.loads(json.dumps(template))


@cache
def _sam_transform(path: str, mtime_ns: int, pseudo: tuple[tuple[str, str], ...], region: str) -> dict[str, Any]:
    """SAM → CloudFormation, offline: local paths become placeholder S3 locations (as `sam validate`
    does), and the session the translator asks for its region is never used to call AWS."""
    template = _decode(path, mtime_ns)
    if "AWS::Serverless-2016-10-31" not in _as_tuple(template.get("Transform")):
        return template
    import boto3
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    fragment = copy.deepcopy(template)
    for name, resource in fragment.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://placeholder/{name}"
        if isinstance(properties.get("DefinitionUri"), str):
            properties["DefinitionUri"] = {"Bucket": "placeholder", "Key": name}
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region), metrics=metrics)
    try:
        return translator.translate(
            fragment,
            parameter_values=dict(pseudo),
            get_managed_policy_map=lambda: {
                name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in AWS_MANAGED_POLICIES
            },
        )
    finally:
        metrics.publish()  # the translator's metrics go nowhere; publishing just empties them


def load(template: Path | str | None = None, **options: Any) -> TemplatePolicies:
    """Read and transform `template` (options: account_id, region, partition, stack_name,
    parameters, resolver)."""
    return TemplatePolicies(template, **options)


@cache
def _default() -> TemplatePolicies:
    return load()


def allowed(logical_id: str, action: str, resource: str, context: Mapping[str, Any] | None = None) -> bool:
    """`TemplatePolicies.allowed` on the repository's template with the default account, region and names."""
    return _default().allowed(logical_id, action, resource, context)


def statements(logical_id: str) -> list[Statement]:
    """`TemplatePolicies.statements` on the repository's template with the defaults."""
    return _default().statements(logical_id)


def denied(policies: TemplatePolicies, logical_id: str, calls: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (action, resource) pairs among `calls` that `logical_id`'s role does not allow."""
    return [(action, resource) for action, resource in calls if not policies.allowed(logical_id, action, resource)]
