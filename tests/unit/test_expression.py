"""The expression builder: every placeholder in the text is defined, and nothing else is."""

from __future__ import annotations

from postback_relay.core.expression import Expression, Update


def test_an_update_is_its_clauses_in_order_with_the_placeholders_they_name() -> None:
    update = Update().remove("lease_token").add("attempts", 1).set("status", "sent").set_once("first_paid", "in_1")
    update.when(f"attribute_exists({update.name('pk')})")
    assert update.request(lambda value: ("encoded", value)) == {
        "UpdateExpression": "SET #status = :v1, #first_paid = if_not_exists(#first_paid, :v2) "
        "ADD #attempts :v0 REMOVE #lease_token",
        "ConditionExpression": "attribute_exists(#pk)",
        "ExpressionAttributeNames": {
            "#lease_token": "lease_token",
            "#attempts": "attempts",
            "#status": "status",
            "#first_paid": "first_paid",
            "#pk": "pk",
        },
        "ExpressionAttributeValues": {":v0": ("encoded", 1), ":v1": ("encoded", "sent"), ":v2": ("encoded", "in_1")},
    }


def test_a_name_that_is_not_an_identifier_gets_a_numbered_placeholder() -> None:
    expression = Expression()
    assert expression.one_of("detail-x", ["a", "b"]) == "#a0 IN (:v0, :v1)"
    assert expression.names == {"#a0": "detail-x"}


def test_empty_placeholders_are_left_out_because_dynamodb_refuses_them() -> None:
    assert Expression().placeholders(str) == {}
    assert Update().remove("lease_token").request(str) == {
        "UpdateExpression": "REMOVE #lease_token",
        "ExpressionAttributeNames": {"#lease_token": "lease_token"},
    }
