"""Every `${...}` in an ASL file has its DefinitionSubstitution, none is unused, and the rendered
definition is valid ASL whichever way the template's conditions go."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASL_FILES = sorted((ROOT / "statemachines").glob("*.asl.json"))
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def machine_for(state_machines, path: Path) -> tuple[str, dict]:
    users = [(n, p) for n, p in state_machines.items() if (ROOT / p["DefinitionUri"]).resolve() == path.resolve()]
    assert len(users) == 1, f"{path.name} is used by {[n for n, _ in users]}, expected exactly one state machine"
    return users[0]


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(path, state_machines):
    # Given an ASL file and the state machine that uses it
    name, properties = machine_for(state_machines, path)
    # When its placeholders are compared with the template's DefinitionSubstitutions
    placeholders = set(PLACEHOLDER.findall(path.read_text()))
    substitutions = set(properties.get("DefinitionSubstitutions", {}))
    # Then they are the same set
    assert placeholders - substitutions == set(), f"{name}: placeholders without a substitution"
    assert substitutions - placeholders == set(), f"{name}: substitutions the ASL never uses"


@pytest.mark.parametrize("with_vpc", [False, True], ids=["no-vpc", "vpc"])
@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_the_rendered_definition_is_valid_asl(request, path, state_machines, render, with_vpc):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    # Given the definition rendered as CloudFormation would, with or without a VPC
    name, _ = machine_for(state_machines, path)
    view = request.getfixturevalue("vpc_policies" if with_vpc else "policies")
    definition = render(view, name)
    # Then nothing is left to substitute
    assert not PLACEHOLDER.findall(str(definition))
    # and the States Language parser accepts it
    AmazonStateLanguageParser.parse(json.dumps(definition))
