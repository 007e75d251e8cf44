"""The local cloud keeps moto's parse of a definition; each execution still gets its own evaluation components."""

from __future__ import annotations

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from selfheal_bench.localcloud.asl_parse import patch_parser

from selfheal.project import find_project

DEFINITION = (find_project() / "statemachines" / "monitor_pipeline.asl.json").read_text()


@pytest.fixture
def kept_trees():
    undo = patch_parser()
    yield
    undo()


def test_a_definition_is_parsed_once_and_each_execution_gets_components_of_its_own(kept_trees):
    first_program, first_tree = AmazonStateLanguageParser.parse(DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(DEFINITION)
    assert second_tree is first_tree
    assert second_program is not first_program
    assert type(second_program) is type(first_program)


def test_a_definition_that_does_not_parse_fails_every_time(kept_trees):
    broken = DEFINITION.replace('"StartAt"', '"StartsAt"', 1)
    for _ in range(2):
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse(broken)


def test_the_undo_gives_moto_its_own_parser_back():
    original = AmazonStateLanguageParser.__dict__["parse"]
    patch_parser()()
    assert AmazonStateLanguageParser.__dict__["parse"] is original
