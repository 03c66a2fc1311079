"""Verotel FlexPay postback signatures, specified by the official client's test vectors.

Vectors: https://github.com/verotel/flexpay-php-client, ``tests/VerotelFlexPayClientTest.php``.
"""

from __future__ import annotations

import pytest

from postback_relay.platforms.verotel_signature import canonical, matches, sign

SHOP_ID = "68849"
SECRET = "zpXwe2D77g4P7ysGJcr3rY87TBYs6J"
PARAMS = {
    "saleID": "433456",
    "priceAmount": "0.00",
    "referenceID": "reference1234",
    "priceCurrency": "USD",
    "custom1": "My",
    "description": "My Dščřčřřěřě&?=blah123",
    "subscriptionType": "RECURRING",
    "period": "P1M",
    "name": "My name",
    "trialAmount": "0.01",
    "trialPeriod": "P3D",
    "successURL": "http://backURL.test",
    "declineURL": "http://declineURL.test",
    "cancelDiscountPercentage": "30",
}
SHA256 = "ff5cf9bcc0497c8cb40087065e5016dcfbe2efd23327f6c67614fa23537c24b2"
PARAMS_WITH_EXTRA = {**PARAMS, "blah": "something"}
SHA1 = "fc63f38e2722d2e5bc4f2044ad3ffb2051e89643"


def test_the_official_sha256_vector_signs_with_the_shop_id_added() -> None:
    assert sign(SECRET, PARAMS, SHOP_ID) == SHA256


def test_the_official_sha256_vector_matches() -> None:
    assert matches([SECRET], PARAMS, SHA256, SHOP_ID)


def test_the_official_sha1_vector_signs_every_received_parameter() -> None:
    assert sign(SECRET, PARAMS_WITH_EXTRA, SHOP_ID, algorithm="sha1") == SHA1


def test_the_official_sha1_vector_matches() -> None:
    assert matches([SECRET], PARAMS_WITH_EXTRA, SHA1, SHOP_ID)


def test_a_shop_id_in_the_params_signs_as_the_shop_id_added() -> None:
    in_params = {**PARAMS, "shopID": SHOP_ID}
    assert sign(SECRET, in_params, None) == sign(SECRET, PARAMS, SHOP_ID) == SHA256
    assert matches([SECRET], in_params, SHA256, None)


def test_a_shop_id_in_the_params_wins_over_the_known_one() -> None:
    assert sign(SECRET, {**PARAMS, "shopID": SHOP_ID}, "99999") == SHA256


def test_the_canonical_string_is_the_secret_then_sorted_pairs_joined_by_colons() -> None:
    assert canonical("s", {"b": "2", "a": "1", "signature": "x"}, "7") == "s:a=1:b=2:shopID=7"


def test_no_shop_id_is_added_when_none_is_known() -> None:
    assert canonical("s", {"a": "1"}, None) == "s:a=1"


def test_the_signature_parameter_is_not_signed() -> None:
    assert matches([SECRET], {**PARAMS, "signature": SHA256}, SHA256, SHOP_ID)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("priceAmount", "0.01"),
        ("description", "My Dščřčřřěřě&?=blah124"),
        ("description", "My Dščřčřřěře&?=blah123"),
        *((key, value[:-1] + ("X" if value[-1] != "X" else "Y")) for key, value in PARAMS.items()),
    ],
)
def test_a_one_character_change_of_any_value_fails(key: str, value: str) -> None:
    assert not matches([SECRET], {**PARAMS, key: value}, SHA256, SHOP_ID)


def test_a_different_shop_id_fails() -> None:
    assert not matches([SECRET], PARAMS, SHA256, "68848")


def test_an_extra_parameter_fails() -> None:
    assert not matches([SECRET], PARAMS_WITH_EXTRA, SHA256, SHOP_ID)


def test_a_wrong_secret_fails() -> None:
    assert not matches([SECRET[:-1] + "K"], PARAMS, SHA256, SHOP_ID)


def test_no_secrets_fail() -> None:
    assert not matches([], PARAMS, SHA256, SHOP_ID)


def test_an_upper_case_signature_matches() -> None:
    assert matches([SECRET], PARAMS, SHA256.upper(), SHOP_ID)
    assert matches([SECRET], PARAMS_WITH_EXTRA, SHA1.upper(), SHOP_ID)


def test_the_second_of_two_secrets_matches() -> None:
    assert matches(["not-the-secret", SECRET], PARAMS, SHA256, SHOP_ID)


def test_a_non_ascii_signature_fails_without_raising() -> None:
    assert not matches([SECRET], PARAMS, "ff5cé", SHOP_ID)


def test_an_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="md5"):
        sign(SECRET, PARAMS, SHOP_ID, algorithm="md5")
