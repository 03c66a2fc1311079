"""core/inbound.py: one request as a platform sent it, read the same way by every biller and by forward mode."""

from __future__ import annotations

import pytest

from postback_relay.core.inbound import ConflictingField, InboundRequest

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def test_the_fields_are_the_querys_then_the_forms_without_the_token() -> None:
    request = InboundRequest("POST", "token=s3cret&trantype=sale&price=9.95", b"tranid=77&price=9.95", FORM)
    assert request.fields() == {"trantype": "sale", "price": "9.95", "tranid": "77"}


def test_a_field_sent_twice_with_different_values_conflicts() -> None:
    with pytest.raises(ConflictingField, match="'price'"):
        InboundRequest("POST", "price=9.95", b"price=19.95", FORM).fields()


def test_a_body_that_is_not_a_form_adds_no_fields() -> None:
    assert InboundRequest("POST", "a=1", b"a=2", {"content-type": "application/json"}).fields() == {"a": "1"}


def test_without_the_token_every_other_byte_of_the_query_stays_as_sent() -> None:
    request = InboundRequest("GET", "a=%41+b&token=x&token=y&b=&c=1&c=2", b"")
    assert request.without_parameter("token") == "a=%41+b&b=&c=1&c=2"
