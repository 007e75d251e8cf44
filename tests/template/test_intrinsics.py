"""The one intrinsic-function resolver both readers of template.yaml use (the local cloud, the IAM evaluator)."""

from __future__ import annotations

import pytest
from selfheal_bench.intrinsics import NO_VALUE, Intrinsics


class Unsupported(Exception):
    pass


REFS = {"AWS::Region": "us-east-1", "AWS::NoValue": NO_VALUE, "Bucket": "data", "Stage": "prod"}
resolver = Intrinsics(ref=REFS.__getitem__, get_att=lambda r, a: f"arn:{r}:{a}",
                      condition=lambda name: name == "IsProd", is_resource=lambda name: name == "Bucket",
                      error=Unsupported)


def test_sub_reads_variables_refs_attributes_and_keeps_escaped_literals():
    text = "${Bucket}/${Bucket.Arn}/${AWS::Region}/${x}/${!Literal}"
    resolved = resolver.resolve({"Fn::Sub": [text, {"x": {"Ref": "Stage"}}]})
    assert resolved == "data/arn:Bucket:Arn/us-east-1/prod/${Literal}"


def test_no_value_drops_the_key_or_the_item():
    node = {"Keep": 1, "Drop": {"Ref": "AWS::NoValue"},
            "List": ["a", {"Fn::If": ["IsDev", "b", {"Ref": "AWS::NoValue"}]}]}
    assert resolver.resolve(node) == {"Keep": 1, "List": ["a"]}


def test_the_list_and_condition_functions():
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}) == "a-prod"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert resolver.resolve({"Fn::And": [{"Condition": "IsProd"}, {"Fn::Not": [{"Fn::Equals": ["a", "b"]}]}]})
    assert resolver.resolve({"Fn::ToJsonString": {"k": {"Ref": "Bucket"}}}) == '{"k": "data"}'


def test_a_function_neither_reader_supports_is_refused_by_name():
    with pytest.raises(Unsupported, match="Fn::FindInMap"):
        resolver.resolve({"Fn::FindInMap": ["M", "k", "v"]})
