"""Every AWS call a function or a state machine makes at runtime, and everything AWS checks on its
behalf, is granted by its own role in template.yaml."""

from __future__ import annotations

from collections import defaultdict

from selfheal_bench.datagen import CHURN_CONFIG, TARGET, churn_frame
from selfheal_bench.runner import send_traffic


def test_every_call_of_every_function_and_state_machine_is_allowed_by_its_role(cloud, churn_csv, tmp_path):
    # Given the whole loop: an upload quarantined, one trained and approved by hand, then deployed,
    # traffic that drifts, a monitor run that retrains, and the retrained model approved and rolled out
    retrain = {"on_violation": "retrain", "window": {"mode": "latest"}}
    cloud.put_model_config("churn", CHURN_CONFIG | {"approval": "manual", "retrain": retrain})
    cloud.client("s3").put_object(Bucket=cloud.bucket, Key="incoming/churn/empty.csv", Body=b"")
    cloud.upload("churn", churn_csv)
    cloud.wait_idle()
    cloud.approve_latest("churn")
    cloud.wait_idle()
    shifted = tmp_path / "shifted.csv"
    churn_frame(600, seed=2, shift=1.0).to_csv(shifted, index=False)
    cloud.upload("churn", shifted)
    send_traffic(cloud, "churn", shifted, TARGET)
    cloud.start_monitoring("churn")
    cloud.wait_idle()
    cloud.approve_latest("churn")
    cloud.wait_idle()
    # When each call, and each check made on the caller's behalf, is checked against the caller's role
    policies = cloud.policies()
    denied = defaultdict(set)
    for call in cloud.audit.calls:
        for action, resource, context in call.needs():
            if not policies.allowed(call.principal, action, resource, context):
                denied[call.principal].add((action, resource))
    # Then every function and state machine took part, and none needed anything its role does not grant
    callers = {spec.logical_id for spec in cloud.functions()} | set(cloud.resources.state_machines)
    assert {call.principal for call in cloud.audit.calls} == callers
    assert dict(denied) == {}
    # And that includes the copies boto3's transfer manager makes in its own threads: the datasets ingest
    # keeps, and the champion's model a run is scored against
    copied = {call.params["Key"].split("/")[0] for call in cloud.audit.calls if call.operation == "CopyObject"}
    assert {"datasets", "artifacts"} <= copied
