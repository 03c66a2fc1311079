"""A tenant's name, record keys, settings and retry rate (core/tenant.py, settings.py, core/ratelimit.py)."""

from __future__ import annotations

import pytest

from postback_relay.core.conversion import Conversion, Link, Reversal, lead_code
from postback_relay.core.ratelimit import TokenBucket
from postback_relay.core.tenant import DEFAULT_TENANT, is_slug, scope, source_of, tenant_of
from postback_relay.settings import Settings, SettingsError

BASE = {"SECRET_ID": "s", "TABLE_NAME": "t"}


class TestNames:
    @pytest.mark.parametrize("name", ["acme", "a", "shop-2", "0x", "a" * 32])
    def test_a_slug_names_a_tenant(self, name: str) -> None:
        assert is_slug(name)

    @pytest.mark.parametrize("name", ["", "Acme", "-acme", "a" * 33, "a/b", "a#b", "_connect", "café", "a b", None, 7])
    def test_anything_else_does_not(self, name: object) -> None:
        assert not is_slug(name)


class TestKeys:
    def test_the_default_tenants_keys_are_the_ones_written_before_tenants_existed(self) -> None:
        conversion = Conversion("stripe", "pi_1", "evt_1", "checkout.session.completed", None, None)
        assert conversion.identity == "stripe#pi_1"
        assert lead_code(conversion.identity) == lead_code("stripe#pi_1")

    def test_a_named_tenants_keys_carry_its_name_everywhere(self) -> None:
        conversion = Conversion("stripe", "in_1", "evt_1", "invoice.paid", None, None, aliases=("pi_1",), tenant="acme")
        assert conversion.identity == "acme/stripe#in_1"
        assert conversion.alias_identities == ("acme/stripe#pi_1",)
        reversal = Reversal("stripe", ("pi_1", "ch_1"), "evt_2", "charge.refunded", "refunded", tenant="acme")
        assert reversal.identities == ("acme/stripe#pi_1", "acme/stripe#ch_1")
        assert Link("stripe", "evt_3", "invoice_payment.paid", "in_1", tenant="acme").identity == "acme/stripe#in_1"

    @pytest.mark.parametrize(
        ("key", "tenant", "source"),
        [
            ("stripe#pi_1", DEFAULT_TENANT, "stripe"),
            ("acme/stripe#pi_1", "acme", "stripe"),
            ("acme/tracker#T-1/2", "acme", "tracker"),  # a purchase id may hold a slash
            ("paddle-sandbox#txn_1", DEFAULT_TENANT, "paddle-sandbox"),
            ("nokey", DEFAULT_TENANT, ""),
        ],
    )
    def test_a_key_names_its_tenant_and_source(self, key: str, tenant: str, source: str) -> None:
        assert (tenant_of(key), source_of(key)) == (tenant, source)

    def test_scope_and_tenant_of_agree(self) -> None:
        for tenant in (DEFAULT_TENANT, "acme"):
            assert tenant_of(f"{scope(tenant, 'shopify')}#1") == tenant


class TestTenantSettings:
    def test_a_tenant_sets_its_own_and_inherits_only_what_the_deployment_decides(self) -> None:
        base = Settings.from_env({**BASE, "ACCOUNT_CURRENCY": "GBP", "SEND_LEASE_SECONDS": "40"})
        tenant = base.for_tenant(
            {"CLICK_ID_METADATA_KEY": "ts", "TRAFFICSTARS_URL_FORM": "query", "TRAFFICSTARS_GOAL_PURCHASE": "12"}
        )
        assert tenant.click_id_metadata_key == "ts"
        assert tenant.trafficstars.options.goal_ids == {"purchase": "12"}
        assert tenant.account_currency == "USD"  # the table's default, not the stack's GBP
        assert tenant.send_lease_seconds == 40  # the deployment's: not a tenant setting
        assert tenant.table_name == "t" and tenant.secret_id == "s"

    @pytest.mark.parametrize("name", ["TABLE_NAME", "SECRET_ID", "RETRY_QUEUE_URL", "TRAFFICSTARS_READ_TIMEOUT", "X"])
    def test_a_setting_of_the_deployment_is_refused(self, name: str) -> None:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env(BASE).for_tenant({name: "1"})

    @pytest.mark.parametrize(
        ("overrides", "named"),
        [
            ({"ACCOUNT_CURRENCY": "dollars"}, "ACCOUNT_CURRENCY"),
            ({"VALUE_POLICY": "fixed"}, "VALUE_FIXED"),
            ({"TRAFFICSTARS_URL": "http://example.com/x"}, "TRAFFICSTARS_URL"),
            ({"TRAFFICSTARS_GOAL_LEAD": "abc"}, "TRAFFICSTARS_GOAL_LEAD"),
            ({"POSTBACK_APPROVED_STATUSES": "approved,refunded"}, "POSTBACK_APPROVED_STATUSES"),
        ],
    )
    def test_a_tenants_setting_is_read_by_the_same_reader_as_the_stacks(
        self, overrides: dict[str, str], named: str
    ) -> None:
        with pytest.raises(SettingsError, match=named):
            Settings.from_env(BASE).for_tenant(overrides)


class TestRetryRate:
    def test_a_bucket_gives_its_burst_then_one_token_per_interval(self) -> None:
        now = [100.0]
        bucket = TokenBucket(2, clock=lambda: now[0])
        assert [bucket.take(), bucket.take()] == [0.0, 0.0]
        assert bucket.take() == pytest.approx(0.5)  # nothing taken: the wait for the next token
        now[0] += 0.5
        assert bucket.take() == 0.0
        now[0] += 100
        assert [bucket.take(), bucket.take(), bucket.take() > 0] == [0.0, 0.0, True]  # never more than the burst

    def test_a_slow_rate_still_lets_one_through(self) -> None:
        now = [0.0]
        bucket = TokenBucket(0.1, clock=lambda: now[0])
        assert bucket.take() == 0.0
        assert bucket.take() == pytest.approx(10.0)
