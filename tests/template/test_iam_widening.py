"""No policy widens unnoticed: every grant of template.yaml's roles and resource policies (bucket, queue
and key policies) is compared with the reviewed snapshot iam_grants.jsonl. A grant the snapshot does not
cover (a new action, a wider resource, a dropped condition, a new principal) or a Deny gone missing fails
here; a narrower grant passes. The test only compares: after reviewing a change to the policies, rewrite the
snapshot with `make iam-grants` (selfheal_bench.iam_grants) and commit it with the change."""

from __future__ import annotations

import pytest
from selfheal_bench.iam_grants import grants, reviewed, widened

VARIANTS = {"no-vpc": "policies", "vpc": "vpc_policies"}  # the fixtures of selfheal_bench.iam_grants.VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_grant_is_wider_than_the_reviewed_snapshot(request, variant):
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
