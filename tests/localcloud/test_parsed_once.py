"""The local cloud parses once per process what is the same text every time: state machine definitions (moto's
ANTLR parse) and botocore's data files; each execution still gets its own evaluation components."""

from __future__ import annotations

import boto3
import botocore.session
import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from selfheal_bench.localcloud.parsed_once import patch_parsers

from selfheal.project import find_project

DEFINITION = (find_project() / "statemachines" / "monitor_pipeline.asl.json").read_text()


@pytest.fixture
def parsed_once():
    undo = patch_parsers()
    yield
    undo()


def test_a_definition_is_parsed_once_and_each_execution_gets_components_of_its_own(parsed_once):
    first_program, first_tree = AmazonStateLanguageParser.parse(DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(DEFINITION)
    assert second_tree is first_tree
    assert second_program is not first_program
    assert type(second_program) is type(first_program)


def test_a_definition_that_does_not_parse_fails_every_time(parsed_once):
    broken = DEFINITION.replace('"StartAt"', '"StartsAt"', 1)
    for _ in range(2):
        with pytest.raises(ASLParserException):
            AmazonStateLanguageParser.parse(broken)


def test_sessions_share_one_loader_whose_search_paths_do_not_grow(parsed_once):
    sessions = [boto3.Session(region_name="us-east-1") for _ in range(3)]
    loaders = {id(session._loader) for session in sessions}
    assert len(loaders) == 1
    assert len(sessions[0]._loader.search_paths) == len(set(sessions[0]._loader.search_paths))
    assert sessions[2].client("s3").meta.service_model.service_name == "s3"


def test_the_undo_gives_moto_and_botocore_their_own_back():
    parse, loader = AmazonStateLanguageParser.__dict__["parse"], botocore.session.create_loader
    patch_parsers()()
    assert AmazonStateLanguageParser.__dict__["parse"] is parse and botocore.session.create_loader is loader
