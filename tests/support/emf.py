"""Reading CloudWatch embedded-metric-format (EMF) records back from what the handler printed, the way
CloudWatch reads them: one metric datapoint per (dimension set, metric) of each `_aws` record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Datapoint:
    """One metric's values under one dimension set of one record."""

    namespace: str
    name: str
    unit: str
    dimensions: dict[str, str]
    values: list[float]


def records(output: str) -> list[dict[str, Any]]:
    """Every EMF record among the printed lines."""
    found = []
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            found.append(document)
    return found


def datapoints(output: str) -> list[Datapoint]:
    """What CloudWatch would store: each metric once per dimension set it is declared with."""
    points = []
    for record in records(output):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                raw = record[metric["Name"]]
                values = [float(v) for v in raw] if isinstance(raw, list) else [float(raw)]
                for dimension_set in directive["Dimensions"]:
                    dimensions = {name: str(record[name]) for name in dimension_set}
                    points.append(
                        Datapoint(directive["Namespace"], metric["Name"], metric.get("Unit", ""), dimensions, values)
                    )
    return points


def values(output: str, name: str, **dimensions: str) -> list[float]:
    """The values of ``name`` under exactly ``dimensions`` (plus `service`), in print order."""
    wanted = {"service": "postback-relay", **dimensions}
    return [v for p in datapoints(output) if p.name == name and p.dimensions == wanted for v in p.values]
