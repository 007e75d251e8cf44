"""CloudFormation's intrinsic functions, written once for both readers of template.yaml: the local cloud's
deploy (localcloud/template.py, the SAM shape) and the IAM evaluator (iam.py, after the SAM transform).

Each reader says what a Ref, a GetAtt and a condition are in its world; the functions themselves (Sub,
Join, Select, Split, If, Equals, Not, And, Or, ToJsonString) and AWS::NoValue behave the same in both,
as CloudFormation defines them ("Intrinsic function reference", CloudFormation User Guide)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the key or list item is dropped

_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Intrinsics:
    """Resolves a template value. `ref(name)` answers Ref (pseudo parameters, parameters and resources;
    NO_VALUE for AWS::NoValue), `get_att(logical_id, attribute)` answers GetAtt, `condition(name)` a
    condition's truth, `is_resource(name)` tells a Sub's ${Resource.Attribute} from a variable; `error` is
    raised for a function neither reader supports."""

    ref: Callable[[str], Any]
    get_att: Callable[[str, str], Any]
    condition: Callable[[str], bool]
    is_resource: Callable[[str], bool]
    error: type[Exception]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in (self.resolve(v) for v in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
            if key.startswith("Fn::"):
                raise self.error(f"{key} is not supported offline")
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays, as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and self.is_resource(name.split(".", 1)[0]):
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def _get_att(self, argument: Any) -> Any:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        return self.get_att(logical_id, str(self.resolve(attribute)))

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)


_FUNCTIONS: dict[str, Callable[[Intrinsics, Any], Any]] = {
    "Ref": lambda i, a: i.ref(a),
    "Fn::Sub": Intrinsics.sub,
    "Fn::GetAtt": Intrinsics._get_att,
    "Fn::If": Intrinsics._if,
    "Fn::Join": lambda i, a: str(i.resolve(a[0])).join(str(v) for v in i.resolve(a[1])),
    "Fn::Select": lambda i, a: i.resolve(a[1])[int(i.resolve(a[0]))],
    "Fn::Split": lambda i, a: str(i.resolve(a[1])).split(str(i.resolve(a[0]))),
    "Fn::Equals": lambda i, a: str(i.resolve(a[0])) == str(i.resolve(a[1])),
    "Fn::Not": lambda i, a: not i.resolve(a[0]),
    "Fn::And": lambda i, a: all(i.resolve(c) for c in a),
    "Fn::Or": lambda i, a: any(i.resolve(c) for c in a),
    "Fn::ToJsonString": lambda i, a: json.dumps(i.resolve(a)),
    "Condition": lambda i, a: i.condition(a),
}
