"""No policy widens unnoticed: every grant of template.yaml's roles and resource policies (bucket, queue
and key policies) is compared with the reviewed snapshot iam_grants.json. A grant the snapshot does not
cover (a new action, a wider resource, a dropped condition, a new principal) or a Deny gone missing fails
here; a narrower grant passes. After reviewing a change to the policies, rewrite the snapshot with
`SELFHEAL_WRITE_GRANTS=1 .venv/bin/pytest tests/template/test_iam_widening.py` and commit it with the change
(one grant per line, so the diff shows exactly what changed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from selfheal.iam import Statement, TemplatePolicies, matches

SNAPSHOT = Path(__file__).with_name("iam_grants.jsonl")
VARIANTS = {"no-vpc": "policies", "vpc": "vpc_policies"}  # without and with the optional VPC parameters
RESOURCE_POLICIES = {"AWS::S3::BucketPolicy": "PolicyDocument", "AWS::SQS::QueuePolicy": "PolicyDocument",
                     "AWS::SNS::TopicPolicy": "PolicyDocument", "AWS::KMS::Key": "KeyPolicy"}
Grant = dict[str, Any]


def grants(view: TemplatePolicies) -> list[Grant]:
    """One grant per (holder, principal, effect, action, resource, conditions), sorted."""
    found: list[Grant] = []
    for name, resource in sorted(view.resources.items()):
        if resource["Type"] == "AWS::IAM::Role":
            found += _expand(name, None, view.statements(name))
        elif resource["Type"] in RESOURCE_POLICIES:
            document = view.resolve(resource["Properties"][RESOURCE_POLICIES[resource["Type"]]])
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


def reviewed(variant: str) -> list[Grant]:
    lines = [json.loads(line) for line in SNAPSHOT.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "variants"} for line in lines if variant in line["variants"]]


def write_snapshot(request: pytest.FixtureRequest) -> None:
    by_grant: dict[str, list[str]] = {}
    for variant, fixture in VARIANTS.items():
        for grant in grants(request.getfixturevalue(fixture)):
            by_grant.setdefault(json.dumps(grant, sort_keys=True), []).append(variant)
    SNAPSHOT.write_text("".join(json.dumps(json.loads(g) | {"variants": v}, sort_keys=True) + "\n"
                                for g, v in sorted(by_grant.items())))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_grant_is_wider_than_the_reviewed_snapshot(request, variant):
    if os.environ.get("SELFHEAL_WRITE_GRANTS") == "1":
        write_snapshot(request)
        pytest.skip(f"wrote {SNAPSHOT.name}: review its diff")
    # Given the template's grants, with or without the optional VPC
    current = grants(request.getfixturevalue(VARIANTS[variant]))
    # Then each is covered by a reviewed grant, and every reviewed Deny is still there
    assert widened(current, reviewed(variant)) == []


def test_a_widened_grant_is_caught(policies):
    # Given the grants, and an Allow of a role with a scoped resource and a condition
    granted = grants(policies)
    base = next(g for g in granted if g["effect"] == "Allow" and g["conditions"] and g["holder"].endswith("Role")
                and not g["resource"].endswith("*"))
    deny = next(g for g in granted if g["effect"] == "Deny")
    # When it widens in each way a policy can; Then the check catches it
    for wider in (base | {"resource": "*"}, base | {"action": base["action"].split(":")[0] + ":*"},
                  base | {"conditions": {}}, base | {"holder": "IngestFunctionRole"}):
        assert widened([*granted, wider], granted) == [wider], wider
    assert widened([g for g in granted if g != deny], granted) == [deny | {"missing": True}]
    # And a narrower grant passes
    narrower = base | {"conditions": base["conditions"] | {"Bool": {"aws:SecureTransport": ["true"]}}}
    assert widened([*(g for g in granted if g != base), narrower], granted) == []
