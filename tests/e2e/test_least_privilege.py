"""Every AWS call a function makes at runtime is granted by its own role in template.yaml."""

from __future__ import annotations

from collections import defaultdict

from selfheal import iam
from selfheal.datagen import TARGET, churn_frame
from selfheal.localcloud import LocalCloud
from selfheal.localcloud.template import ACCOUNT_ID, REGION, TemplateError
from selfheal.runner import send_traffic

from .conftest import CHURN_CONFIG, IDLE_TIMEOUT


def policies_of(cloud: LocalCloud) -> iam.TemplatePolicies:
    def resolver(logical_id: str, attribute: str | None) -> str | None:
        try:
            return cloud.template.get_att(logical_id, attribute) if attribute else cloud.template.ref(logical_id)
        except TemplateError:
            return None  # resources SAM adds (layers, generated roles): the default naming

    return iam.load(account_id=ACCOUNT_ID, region=REGION, stack_name=cloud.template.stack_name,
                    parameters={k: str(v) for k, v in cloud.template.parameters.items()}, resolver=resolver)


def test_every_call_of_every_function_is_allowed_by_its_role(cloud, churn_csv, tmp_path):
    # Given the whole loop: an upload quarantined, one trained and approved by hand, then deployed,
    # traffic that drifts, a monitor run that retrains, and the retrained model approved and rolled out
    retrain = {"on_violation": "retrain", "window": {"mode": "latest"}}
    cloud.put_model_config("churn", CHURN_CONFIG | {"approval": "manual", "retrain": retrain})
    cloud.client("s3").put_object(Bucket=cloud.bucket, Key="incoming/churn/empty.csv", Body=b"")
    cloud.upload("churn", churn_csv)
    cloud.wait_idle(IDLE_TIMEOUT)
    cloud.approve_latest("churn")
    cloud.wait_idle(IDLE_TIMEOUT)
    shifted = tmp_path / "shifted.csv"
    churn_frame(600, seed=2, shift=1.0).to_csv(shifted, index=False)
    cloud.upload("churn", shifted)
    send_traffic(cloud, "churn", shifted, TARGET)
    cloud.start_monitoring("churn")
    cloud.wait_idle(IDLE_TIMEOUT)
    cloud.approve_latest("churn")
    cloud.wait_idle(IDLE_TIMEOUT)
    # When each call is checked against the calling function's role
    policies = policies_of(cloud)
    denied = defaultdict(set)
    for call in cloud.audit.calls:
        for action, resource in call.needs():
            if not policies.allowed(call.principal, action, resource, call.context()):
                denied[call.principal].add((action, resource))
    # Then every function took part, and none called anything its role does not grant
    assert {call.principal for call in cloud.audit.calls} == {spec.logical_id for spec in cloud.functions()}
    assert dict(denied) == {}
    # And that includes the copies boto3's transfer manager makes in its own threads: the datasets ingest
    # keeps, and the champion's model a run is scored against
    copied = {call.params["Key"].split("/")[0] for call in cloud.audit.calls if call.operation == "CopyObject"}
    assert {"datasets", "artifacts"} <= copied
