"""The wire codec's short path to DynamoDB's wire format gives exactly what boto3's TypeSerializer and
TypeDeserializer give, for the values a record holds and for anything else (which they still handle)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from postback_relay.aws.wire import _storable, from_wire, to_wire

scalars = (
    st.none()
    | st.booleans()
    | st.text(max_size=20)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
)
values = st.recursive(
    scalars | st.frozensets(st.text(min_size=1, max_size=8), min_size=1, max_size=4).map(set),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def reference(value: Any) -> Any:
    return TypeSerializer().serialize(_storable(value))


@given(values)
def test_to_wire_is_the_type_serializer(value: Any) -> None:
    assert to_wire(value) == reference(value)


@given(values)
def test_from_wire_is_the_type_deserializer(value: Any) -> None:
    wire = reference(value)
    assert from_wire(wire) == TypeDeserializer().deserialize(wire)


@pytest.mark.parametrize(
    "value",
    [{1, 2}, {b"a"}, b"raw", Binary(b"x"), (1, "a"), frozenset({"a"}), [{"at": 1.5, "tags": {"x"}}], Decimal("1.10")],
)
def test_other_types_are_serialized_as_before(value: Any) -> None:
    wire = reference(value)
    assert to_wire(value) == wire
    assert from_wire(wire) == TypeDeserializer().deserialize(wire)


@pytest.mark.parametrize(
    "value", [Decimal("NaN"), Decimal("Infinity"), 1.5e300, {1.5}, Decimal("1.00000000000000000000000000000000000001")]
)
def test_values_dynamodb_cannot_store_fail_as_before(value: Any) -> None:
    with pytest.raises(Exception) as expected:
        reference(value)
    with pytest.raises(expected.type):
        to_wire(value)


@pytest.mark.parametrize("value", [set(), Decimal(10) ** 50, -0.0, True, 10**37])
def test_edge_values_are_serialized_as_before(value: Any) -> None:
    assert to_wire(value) == reference(value)
