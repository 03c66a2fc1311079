"""Reads what the local run needs from template.yaml: the HTTP API routes and the table's key schema,
so the local front and the local table cannot drift from what `sam deploy` creates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that keeps intrinsic functions (!Ref, !Sub, !GetAtt …) as {"Fn": value} instead of failing."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Route:
    """One HttpApi event of a function: method, path and the handler that serves it."""

    method: str
    path: str
    function: str
    handler: str


def load_template(path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template as plain data."""
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    return document


def http_routes(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi route in the template, with its function's handler (Globals applied)."""
    routes: list[Route] = []
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            event_properties = event.get("Properties", {})
            routes.append(
                Route(
                    method=str(event_properties.get("Method", "ANY")).upper(),
                    path=str(event_properties.get("Path", "/")),
                    function=name,
                    handler=str(properties.get("Handler")),
                )
            )
    return routes


def table_definition(template: dict[str, Any], logical_id: str = "ConversionsTable") -> dict[str, Any]:
    """CreateTable arguments for a table of the template (keys, indexes, attributes, billing, TTL attribute)."""
    properties = template["Resources"][logical_id]["Properties"]
    return {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        "GlobalSecondaryIndexes": properties.get("GlobalSecondaryIndexes", []),
        "TimeToLiveAttribute": properties.get("TimeToLiveSpecification", {}).get("AttributeName"),
    }


def queue_attributes(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """The SQS attributes of a queue of the template that moto understands (visibility, retention)."""
    properties = template["Resources"][logical_id].get("Properties", {})
    names = {"VisibilityTimeout": "VisibilityTimeout", "MessageRetentionPeriod": "MessageRetentionPeriod"}
    return {attribute: str(properties[key]) for key, attribute in names.items() if key in properties}
