"""Create template.yaml's resources in moto, as `sam deploy` would on AWS (for what the app uses)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .lambdas import AsyncConfig, FunctionSpec
from .template import NO_VALUE, REGION, Template, TemplateError

if TYPE_CHECKING:
    from .cloud import LocalCloud

DATA_BUCKET, LEDGER_TABLE = "DataBucket", "LedgerTable"  # logical ids the local cloud's users ask for
_LAMBDA_TRUST = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
                 '{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')


@dataclass
class Resources:
    bucket: str = ""
    table: str = ""
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> physical name


def deploy_template(cloud: LocalCloud) -> Resources:
    template = cloud.template
    resources = Resources()
    _kms_keys(cloud, template)
    for logical_id in _live(template, "AWS::IAM::Role"):
        _role(cloud, template.physical[logical_id], template.resolve(
            template.resources[logical_id]["Properties"].get("AssumeRolePolicyDocument")))
    for logical_id in _live(template, "AWS::S3::Bucket"):
        _bucket(cloud, template, logical_id)
    for logical_id in _live(template, "AWS::DynamoDB::Table"):
        _table(cloud, template, logical_id)
    for logical_id in _live(template, "AWS::SNS::Topic"):
        cloud.client("sns").create_topic(Name=template.physical[logical_id])
    for logical_id in _live(template, "AWS::SQS::Queue"):
        cloud.client("sqs").create_queue(QueueName=template.physical[logical_id])
    for logical_id in _live(template, "AWS::Scheduler::ScheduleGroup"):
        cloud.client("scheduler").create_schedule_group(Name=template.physical[logical_id])
    for logical_id in _live(template, "AWS::Serverless::Function"):
        resources.functions[logical_id] = _function(cloud, template, logical_id)
    for logical_id in _live(template, "AWS::Lambda::Permission"):
        _permission(cloud, logical_id, template.properties(logical_id))
    for logical_id in _live(template, "AWS::Serverless::StateMachine"):
        resources.state_machines[logical_id] = _state_machine(cloud, template, logical_id)
    for logical_id in _live(template, "AWS::Events::Rule"):
        props = template.properties(logical_id)
        _rule(cloud, template.physical[logical_id], props.get("EventPattern"), props.get("Targets", []),
              props.get("State", "ENABLED"))
    resources.bucket = template.physical[DATA_BUCKET]
    resources.table = template.physical[LEDGER_TABLE]
    return resources


def _live(template: Template, resource_type: str) -> list[str]:
    """Logical ids of that type whose Condition (if any) holds."""
    return [name for name, res in template.of_type(resource_type).items()
            if "Condition" not in res or template.condition(res["Condition"])]


def _kms_keys(cloud: LocalCloud, template: Template) -> None:
    # KMS makes up key ids, so the template learns them before anything refers to a key.
    for logical_id in _live(template, "AWS::KMS::Key"):
        key = cloud.client("kms").create_key(Description=f"{template.stack_name} {logical_id}")
        template.physical[logical_id] = key["KeyMetadata"]["KeyId"]
    for logical_id in _live(template, "AWS::KMS::Alias"):
        props = template.properties(logical_id)
        cloud.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])


def _role(cloud: LocalCloud, name: str, trust: Any = None) -> str:
    iam = cloud.client("iam")
    document = json.dumps(trust) if isinstance(trust, dict) else _LAMBDA_TRUST
    try:
        return iam.create_role(RoleName=name[:64], AssumeRolePolicyDocument=document)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name[:64])["Role"]["Arn"]


def _bucket(cloud: LocalCloud, template: Template, logical_id: str) -> None:
    s3 = cloud.client("s3")
    name = template.physical[logical_id]
    raw = template.resources[logical_id].get("Properties", {})
    s3.create_bucket(Bucket=name)
    if raw.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    notification = raw.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {})
    if template.resolve(notification.get("EventBridgeEnabled")) in (True, "true", "True"):
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})


def _table(cloud: LocalCloud, template: Template, logical_id: str) -> None:
    props = template.properties(logical_id)
    dynamodb = cloud.client("dynamodb")
    name = template.physical[logical_id]
    dynamodb.create_table(TableName=name, KeySchema=props["KeySchema"],
                          AttributeDefinitions=props["AttributeDefinitions"],
                          BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
                          **({"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]}
                             if "GlobalSecondaryIndexes" in props else {}))
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled") in (True, "true"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})


def _function(cloud: LocalCloud, template: Template, logical_id: str) -> str:
    raw = template.function_properties(logical_id)
    resolve = template.resolve
    name = template.physical[logical_id]
    environment = {k: str(v) for k, v in resolve(raw.get("Environment", {}).get("Variables", {})).items()}
    environment |= {"AWS_LAMBDA_FUNCTION_NAME": name, "AWS_REGION": REGION,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(raw.get("MemorySize", 128))}
    spec = FunctionSpec(
        logical_id=logical_id, name=name, arn=template.arn(logical_id),
        code_dir=template.root / resolve(raw["CodeUri"]), handler=resolve(raw["Handler"]),
        environment=environment, timeout=int(resolve(raw.get("Timeout", 3))),
        memory=int(resolve(raw.get("MemorySize", 128))), asynchronous=_async_config(logical_id, resolve(raw)))
    role = resolve(raw["Role"]) if "Role" in raw else _role(cloud, f"{name}-role")
    cloud.client("lambda").create_function(
        FunctionName=name, Runtime=resolve(raw.get("Runtime", "python3.12")), Role=role,
        Handler=spec.handler, Code={"ZipFile": _placeholder_zip()}, Timeout=spec.timeout,
        MemorySize=spec.memory, Environment={"Variables": environment})
    reserved = resolve(raw.get("ReservedConcurrentExecutions", NO_VALUE))
    if reserved is not NO_VALUE:
        cloud.client("lambda").put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(reserved))
    cloud.router.add(spec)
    for event_name, event in raw.get("Events", {}).items():
        if event.get("Type") in {"EventBridgeRule", "CloudWatchEvent"}:
            props = resolve(event["Properties"])
            target = {"Id": props.get("Target", {}).get("Id", f"{logical_id}{event_name}"), "Arn": spec.arn}
            for key in ("RetryPolicy", "DeadLetterConfig", "Input", "InputPath"):
                if key in props:
                    target[key] = props[key]
            rule = _rule(cloud, f"{name}-{event_name}"[:64], props["Pattern"], [target], props.get("State", "ENABLED"))
            # SAM adds the permission that lets the rule invoke the function.
            _permission(cloud, f"{logical_id}{event_name}Permission", {
                "FunctionName": name, "Action": "lambda:InvokeFunction", "Principal": "events.amazonaws.com",
                "SourceArn": rule})
    return name


_DESTINATIONS = {"SQS": ":sqs:", "SNS": ":sns:"}  # where the local cloud can send a failed async event


def _async_config(logical_id: str, raw: dict[str, Any]) -> AsyncConfig:
    """The function's asynchronous-invocation settings: SAM's EventInvokeConfig and DeadLetterQueue."""
    invoke = raw.get("EventInvokeConfig", {})
    on_failure = invoke.get("DestinationConfig", {}).get("OnFailure")
    dead_letter = raw.get("DeadLetterQueue")
    for setting in (on_failure, dead_letter):
        if setting and setting.get("Type") not in _DESTINATIONS:
            raise TemplateError(f"{logical_id}: the local cloud sends failed async events to SQS or SNS only")
    return AsyncConfig(max_retries=int(invoke.get("MaximumRetryAttempts", 2)),
                       max_event_age=int(invoke.get("MaximumEventAgeInSeconds", 21600)),
                       on_failure=on_failure and on_failure["Destination"],
                       dead_letter=dead_letter and dead_letter["TargetArn"])


def _permission(cloud: LocalCloud, statement_id: str, props: dict[str, Any]) -> None:
    """A resource-based policy statement on a function, as AWS::Lambda::Permission adds it."""
    optional = {key: props[key] for key in ("SourceArn", "SourceAccount") if key in props}
    cloud.client("lambda").add_permission(FunctionName=props["FunctionName"], StatementId=statement_id,
                                          Action=props["Action"], Principal=props["Principal"], **optional)


def _placeholder_zip() -> bytes:
    """moto stores a package per function; the router runs the real code from CodeUri instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the repository's functions/ folder")
    return buffer.getvalue()


def _state_machine(cloud: LocalCloud, template: Template, logical_id: str) -> str:
    raw = template.resources[logical_id]["Properties"]
    definition = (template.root / raw["DefinitionUri"]).read_text()
    for key, value in template.resolve(raw.get("DefinitionSubstitutions", {})).items():
        definition = definition.replace("${" + key + "}", str(value))
    role = template.resolve(raw["Role"]) if "Role" in raw else _role(
        cloud, f"{template.physical[logical_id]}-role")
    created = cloud.client("stepfunctions").create_state_machine(
        name=template.physical[logical_id], definition=definition, roleArn=role,
        type=raw.get("Type", "STANDARD"))
    return created["stateMachineArn"]


def _rule(cloud: LocalCloud, name: str, pattern: Any, targets: list[dict[str, Any]], state: str) -> str:
    events = cloud.client("events")
    arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern), State=state)["RuleArn"]
    events.put_targets(Rule=name, Targets=targets)
    return arn
