"""Every AWS call a function makes at runtime is granted by its own role in template.yaml."""

from __future__ import annotations

from collections import defaultdict

from selfheal import iam
from selfheal.localcloud import LocalCloud
from selfheal.localcloud.template import ACCOUNT_ID, REGION, TemplateError

from .conftest import CHURN_CONFIG, IDLE_TIMEOUT


def policies_of(cloud: LocalCloud) -> iam.TemplatePolicies:
    def resolver(logical_id: str, attribute: str | None) -> str | None:
        try:
            return cloud.template.get_att(logical_id, attribute) if attribute else cloud.template.ref(logical_id)
        except TemplateError:
            return None  # resources SAM adds (layers, generated roles): the default naming

    return iam.load(account_id=ACCOUNT_ID, region=REGION, stack_name=cloud.template.stack_name,
                    parameters={k: str(v) for k, v in cloud.template.parameters.items()}, resolver=resolver)


def test_every_call_of_every_function_is_allowed_by_its_role(cloud, churn_csv):
    # Given a run that trains and registers, and an upload that is quarantined
    cloud.put_model_config("churn", CHURN_CONFIG)
    cloud.upload("churn", churn_csv)
    cloud.client("s3").put_object(Bucket=cloud.bucket, Key="incoming/churn/empty.csv", Body=b"")
    cloud.wait_idle(IDLE_TIMEOUT)
    # When each call is checked against the calling function's role
    policies = policies_of(cloud)
    denied = defaultdict(set)
    for call in cloud.audit.calls:
        for action, resource in call.needs():
            if not policies.allowed(call.principal, action, resource, call.context()):
                denied[call.principal].add((action, resource))
    # Then nothing was called that the role does not grant
    assert {p for p in {c.principal for c in cloud.audit.calls}} >= {
        "IngestFunction", "EvaluateGateFunction", "RegisterModelFunction", "RecordRunFunction"}
    assert dict(denied) == {}
