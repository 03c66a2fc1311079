"""DynamoDB's wire format (``{"S": "…"}``, ``{"N": "1.5"}``, …) to and from Python, for every read and write
of the table.

The same values as boto3's TypeSerializer/TypeDeserializer (tests/unit/test_store_wire.py proves it), on a short
path for the types a record holds: TypeSerializer tries its type tests one by one (~2 µs a value, and a
record write carries ~25 values); anything else still goes through boto3's."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_wire(value: Any) -> dict[str, Any]:
    """``value`` in DynamoDB's wire format, exactly as ``TypeSerializer().serialize(_storable(value))``."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int or kind is Decimal:
        return {"N": _number(value)}
    if kind is float:
        return {"N": _number(_decimal(value))}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is dict:
        return {"M": {key: to_wire(item) for key, item in value.items()}}
    if kind is list:
        return {"L": [to_wire(item) for item in value]}
    if kind is set and value and all(type(item) is str for item in value):
        return {"SS": list(value)}
    return _serializer.serialize(_storable(value))  # type: ignore[no-any-return]


def from_wire(value: Mapping[str, Any]) -> Any:
    """A wire-format value as Python, exactly as ``TypeDeserializer().deserialize(value)``: Decimals for
    numbers, sets for string sets."""
    if len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "S" or kind == "BOOL":
            return inner
        if kind == "N":
            return DYNAMODB_CONTEXT.create_decimal(inner)
        if kind == "NULL":
            return None
        if kind == "M":
            return {key: from_wire(item) for key, item in inner.items()}
        if kind == "L":
            return [from_wire(item) for item in inner]
        if kind == "SS":
            return set(inner)
    return _deserializer.deserialize(value)


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A whole item (attribute name → wire value) as Python."""
    return {name: from_wire(value) for name, value in item.items()}


def _storable(value: Any) -> Any:
    """What TypeSerializer is given: DynamoDB numbers are Decimals, so floats (timestamps, durations) are
    converted, recursively."""
    if isinstance(value, float):
        return _decimal(value)
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _decimal(value: float) -> Decimal:
    """A float as the number stored: to the millisecond, which is all a timestamp or duration here needs."""
    return Decimal(str(round(value, 3)))


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number
