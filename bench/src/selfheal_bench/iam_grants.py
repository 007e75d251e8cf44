"""The reviewed snapshot of every grant template.yaml makes (tests/template/iam_grants.jsonl).

tests/template/test_iam_widening.py compares the template with the snapshot: a grant it does not cover (a
new action, a wider resource, a dropped condition, a new principal) or a Deny gone missing fails. After
reviewing a change to the policies, rewrite the snapshot and commit it with the change (one grant per line,
so the diff shows exactly what changed):

    make iam-grants        # or: .venv/bin/python -m selfheal_bench.iam_grants
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from selfheal.project import find_project

from .iam import Statement, TemplatePolicies, load, matches

SNAPSHOT = Path("tests") / "template" / "iam_grants.jsonl"  # in the project folder
ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGES = {
    "XGBoostImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
    "SKLearnImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
}
VPC = {"SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b", "SecurityGroupIds": "sg-0123abcd"}
# The template's parameters for each variant the snapshot covers: without and with the optional VPC.
VARIANTS = {"no-vpc": IMAGES, "vpc": IMAGES | VPC}
RESOURCE_POLICIES = {"AWS::S3::BucketPolicy": "PolicyDocument", "AWS::SQS::QueuePolicy": "PolicyDocument",
                     "AWS::SNS::TopicPolicy": "PolicyDocument", "AWS::KMS::Key": "KeyPolicy"}
Grant = dict[str, Any]


def view(variant: str) -> TemplatePolicies:
    return load(account_id=ACCOUNT, region=REGION, parameters=VARIANTS[variant])


def grants(policies: TemplatePolicies) -> list[Grant]:
    """One grant per (holder, principal, effect, action, resource, conditions), sorted."""
    found: list[Grant] = []
    for name, resource in sorted(policies.resources.items()):
        if resource["Type"] == "AWS::IAM::Role":
            found += _expand(name, None, policies.statements(name))
        elif resource["Type"] in RESOURCE_POLICIES:
            document = policies.resolve(resource["Properties"][RESOURCE_POLICIES[resource["Type"]]])
            for raw in document["Statement"]:
                found += _expand(name, raw.get("Principal"), [Statement.parse(raw, name)])
    return sorted(found, key=lambda g: json.dumps(g, sort_keys=True))


def _expand(holder: str, principal: Any, statements: list[Statement]) -> list[Grant]:
    return [{"holder": holder, "principal": principal, "effect": s.effect, "action": action, "resource": resource,
             "conditions": {op: {key: sorted(values) for key, values in keys.items()}
                            for op, keys in s.conditions.items()}}
            for s in statements
            for action in s.actions or [f"NotAction:{a}" for a in s.not_actions]
            for resource in s.resources or [f"NotResource:{r}" for r in s.not_resources]]


def covered(grant: Grant, reviewed: list[Grant]) -> bool:
    """Whether a reviewed Allow grants at least as much: same holder and principal, an action and resource
    pattern that match this one's, and no condition this one lacks."""
    return any(g["effect"] == "Allow" and g["holder"] == grant["holder"] and g["principal"] == grant["principal"]
               and matches(g["action"], grant["action"], ignore_case=True) and matches(g["resource"], grant["resource"])
               and all(grant["conditions"].get(op, {}).get(key) == values
                       for op, keys in g["conditions"].items() for key, values in keys.items())
               for g in reviewed)


def widened(current: list[Grant], reviewed: list[Grant]) -> list[Grant]:
    return ([g for g in current if g["effect"] == "Allow" and not covered(g, reviewed)]
            + [g | {"missing": True} for g in reviewed if g["effect"] == "Deny" and g not in current])


def reviewed(variant: str, snapshot: Path | None = None) -> list[Grant]:
    snapshot = snapshot or find_project() / SNAPSHOT
    lines = [json.loads(line) for line in snapshot.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "variants"} for line in lines if variant in line["variants"]]


def write(snapshot: Path) -> None:
    by_grant: dict[str, list[str]] = {}
    for variant in VARIANTS:
        for grant in grants(view(variant)):
            by_grant.setdefault(json.dumps(grant, sort_keys=True), []).append(variant)
    snapshot.write_text("".join(json.dumps(json.loads(g) | {"variants": v}, sort_keys=True) + "\n"
                                for g, v in sorted(by_grant.items())))


def main() -> int:
    write(find_project() / SNAPSHOT)
    print(f"wrote {SNAPSHOT}: review its diff (git diff {SNAPSHOT.name}) and commit it with the policy change",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
