"""AWS answered in-process for almost nothing: a botocore ``before-call`` hook that returns canned responses.

Like botocore's Stubber, the hook runs after botocore has validated and serialised the request (so that cost
stays in the figures) and skips signing, HTTP and response parsing (so the network is not measured). Unlike
the Stubber it needs no queue of expected calls, so the same fake answers a thousand webhooks. It is installed
into ``botocore.handlers.BUILTIN_HANDLERS``, so every client created afterwards, by the relay's own
composition root or by anything a later branch adds (an SQS client), is answered and counted without the
benchmark reaching into the relay's objects.

DynamoDB is modelled just enough for the relay's paths: items are kept per key; SET, ADD and REMOVE of an
UpdateItem are applied naively; ``ReturnValues`` and ``ReturnValuesOnConditionCheckFailure`` are honoured;
a condition that is exactly ``attribute_not_exists(…)`` or ``attribute_exists(…)`` of the key is honoured
(the relay's create and note of a duplicate, the minimal handler's PutItem); every other condition is taken
as true."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.handlers
from botocore.awsrequest import AWSResponse

_ASSIGNMENT = re.compile(r"(#\w+)\s*=\s*(.+)")
_PLACEHOLDER = re.compile(r":\w+")


class FakeAws:
    """Canned answers and a count of every AWS call, by ``service.Operation``."""

    def __init__(self, secret: dict[str, Any]) -> None:
        self.calls: Counter[str] = Counter()
        self.items: dict[str, dict[str, Any]] = {}
        self._secret = json.dumps(secret)
        self._ok = AWSResponse("https://fake.invalid", 200, {}, None)
        self._conditional_failed = AWSResponse("https://fake.invalid", 400, {}, None)

    def count(self, name: str) -> int:
        """Calls made to ``service.Operation`` (e.g. ``dynamodb.UpdateItem``) so far."""
        return self.calls[name]

    def service_calls(self, service: str) -> int:
        """Calls made to every operation of ``service`` so far."""
        return sum(n for key, n in self.calls.items() if key.startswith(service + "."))

    def item_size(self, pk: str) -> int:
        """The stored item's size in bytes, by DynamoDB's rules (what write units are billed on)."""
        item = self.items.get(pk)
        return sum(len(name.encode()) + _value_size(value) for name, value in item.items()) if item else 0

    # botocore event handlers -------------------------------------------------------------------------

    def capture_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """``before-parameter-build``: keep the API parameters where ``before-call`` can read them."""
        context["fakeaws_params"] = params

    def before_call(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        """``before-call``: answer instead of sending. Returning a response makes botocore skip the HTTP."""
        service = model.service_model.service_name
        operation = model.name
        self.calls[f"{service}.{operation}"] += 1
        params: dict[str, Any] = context.get("fakeaws_params") or {}
        if service == "secretsmanager" and operation == "GetSecretValue":
            return self._ok, {
                "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
                "Name": params.get("SecretId", "bench"),
                "SecretString": self._secret,
                "VersionId": "v1",
            }
        if service == "dynamodb" and operation == "UpdateItem":
            return self._update_item(params)
        if service == "dynamodb" and operation == "PutItem":
            return self._put_item(params)
        if service == "dynamodb" and operation == "GetItem":
            item = self.items.get(_key(params))
            return self._ok, ({"Item": dict(item)} if item else {})
        if service == "dynamodb" and operation == "BatchGetItem":
            found = {
                table: [dict(self.items[key["pk"]["S"]]) for key in request["Keys"] if key["pk"]["S"] in self.items]
                for table, request in params.get("RequestItems", {}).items()
            }
            return self._ok, {"Responses": found, "UnprocessedKeys": {}}
        if service == "sqs" and operation == "SendMessage":
            return self._ok, {"MessageId": f"bench-{self.calls[f'{service}.{operation}']}", "MD5OfMessageBody": ""}
        return self._ok, {}

    # DynamoDB, just enough ---------------------------------------------------------------------------

    def _update_item(self, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        pk = _key(params)
        old = self.items.get(pk)
        condition = params.get("ConditionExpression", "")
        if (condition.startswith("attribute_not_exists(") and old) or (
            condition.startswith("attribute_exists(") and not old
        ):
            return self._condition_failed(old, params)
        item = dict(old) if old else {"pk": {"S": pk}}
        names: dict[str, str] = params.get("ExpressionAttributeNames", {})
        values: dict[str, Any] = params.get("ExpressionAttributeValues", {})
        for action, name, placeholder in _actions(params.get("UpdateExpression", "")):
            if action == "REMOVE":
                item.pop(names.get(name, name), None)
            else:
                item[names.get(name, name)] = values[placeholder]
        self.items[pk] = item
        returned = params.get("ReturnValues", "NONE")
        if returned == "ALL_OLD":
            return self._ok, ({"Attributes": dict(old)} if old else {})
        if returned == "ALL_NEW":
            return self._ok, {"Attributes": dict(item)}
        return self._ok, {}

    def _condition_failed(
        self, old: dict[str, Any] | None, params: dict[str, Any]
    ) -> tuple[AWSResponse, dict[str, Any]]:
        error: dict[str, Any] = {
            "Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        if old and params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
            error["Item"] = dict(old)
        return self._conditional_failed, error

    def _put_item(self, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
        item: dict[str, Any] = params["Item"]
        pk = item["pk"]["S"]
        if "attribute_not_exists" in params.get("ConditionExpression", "") and pk in self.items:
            return self._condition_failed(None, params)
        self.items[pk] = dict(item)
        return self._ok, {}


@contextmanager
def installed(fake: FakeAws) -> Iterator[FakeAws]:
    """Answer every botocore client created inside the block with ``fake`` (clients created earlier are not)."""
    specs = _specs(fake)
    botocore.handlers.BUILTIN_HANDLERS.extend(specs)
    try:
        yield fake
    finally:
        for spec in specs:
            botocore.handlers.BUILTIN_HANDLERS.remove(spec)


def install(fake: FakeAws) -> FakeAws:
    """Install for the rest of the process (benchmark child processes); returns ``fake``."""
    botocore.handlers.BUILTIN_HANDLERS.extend(_specs(fake))
    return fake


def _specs(fake: FakeAws) -> list[tuple[str, Callable[..., Any]]]:
    return [("before-parameter-build", fake.capture_params), ("before-call", fake.before_call)]


def _key(params: dict[str, Any]) -> str:
    return str(params.get("Key", {}).get("pk", {}).get("S", ""))


@functools.lru_cache(maxsize=256)
def _actions(expression: str) -> tuple[tuple[str, str, str], ...]:
    """An update expression as (SET|ADD|REMOVE, #name, :value) steps, parsed once per distinct expression
    so that the fake costs next to nothing per call. ``SET #a = f(#a, :x)`` keeps the last value named."""
    steps: list[tuple[str, str, str]] = []
    for clause, body in _clauses(expression):
        for part in _split_top_level(body):
            if clause == "SET":
                match = _ASSIGNMENT.match(part.strip())
                placeholders = _PLACEHOLDER.findall(match.group(2)) if match else []
                if match and placeholders:
                    steps.append(("SET", match.group(1), placeholders[-1]))
            elif clause == "ADD":
                name, _, placeholder = part.strip().partition(" ")
                steps.append(("ADD", name, placeholder.strip()))
            elif clause == "REMOVE":
                steps.append(("REMOVE", part.strip(), ""))
    return tuple(steps)


def _clauses(expression: str) -> list[tuple[str, str]]:
    """``SET a, b ADD c REMOVE d`` → [("SET", "a, b"), ("ADD", "c"), ("REMOVE", "d")]."""
    parts = re.split(r"\b(SET|ADD|REMOVE|DELETE)\b", expression)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def _split_top_level(body: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def _value_size(value: dict[str, Any]) -> int:
    """DynamoDB's item-size rules, closely enough: strings and binaries by length, numbers by digits,
    collections by their elements plus a few bytes each."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        return (len(str(inner).lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: element}) for element in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _value_size(element) for name, element in inner.items())
    return 0
