"""The model-based test of tenant isolation: hypothesis interleaves deliveries, redeliveries, refunds and
deliveries signed with another tenant's secret, to three tenants (the default one, `acme`, `globex`) that sell
the very same purchase ids, with TrafficStars going down and coming back, the clock jumping, the retry worker
and the sweep running, and a tenant removed mid-way; after every step it checks:

1. every GET carries the key of the tenant whose purchase it reports, and that purchase's own lead code;
2. at most one accepted GET per tenant and purchase;
3. no GET for a tenant's purchase after its refund is recorded, and a refund reverses only its own tenant's;
4. a delivery signed with another tenant's secret is refused (401) and changes nothing;
5. every record is sound and the due index holds no final record;
and at the end, once the pipeline ran dry, that every accepted conversion ended sent, rejected or failed.

The same real parts and the same model of SQS on the test's clock as test_lifecycle_model.py."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from postback_relay.aws.store import ConversionStore
from postback_relay.aws.tenants import TenantDirectory
from postback_relay.core.conversion import lead_code
from postback_relay.core.record import FINAL, IN_FLIGHT, REVERSED, Status, violations
from postback_relay.core.tenant import DEFAULT_TENANT, TenantConfig, scope
from postback_relay.runtime import build_runtime, install_runtime, reset_runtime
from postback_relay.settings import Settings
from postback_relay_dev.apigw import LocalContext
from postback_relay_dev.moto_server import SerializedMotoServer
from postback_relay_dev.resources import create_table, put_secret
from postback_relay_dev.sandbox import Received, TrafficStarsSandbox
from postback_relay_dev.worker import sqs_event
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, charge_refunded, checkout_session, stripe_event, stripe_signature
from tests.support.model import RETRY_URL, Clock, ModelSqs, aws_client, model_env, model_settings
from tests.support.tenants import TENANT_SECRET_PREFIX, now_iso

__all__ = ["model_env"]  # the fixture (tests/support/model.py)

TENANTS = (DEFAULT_TENANT, "acme", "globex")
PURCHASES = ("pi_same_1", "pi_same_2")  # every tenant sells these very ids
KEYS = {DEFAULT_TENANT: TEST_KEY, "acme": "ts-acme-model-canary", "globex": "ts-globex-model-canary"}
SIGNING = {DEFAULT_TENANT: TEST_STRIPE_SECRET, "acme": "whsec_acme_model", "globex": "whsec_globex_model"}
MODES = ("ok", "unavailable", "throttled")
TOTALS: Counter[str] = Counter()


def click_of(tenant: str, purchase: str) -> str:
    return hashlib.sha1(f"{tenant}/{purchase}".encode()).hexdigest()  # noqa: S324 - a 40-hex click id


def identity(tenant: str, purchase: str) -> str:
    return f"{scope(tenant, 'stripe')}#{purchase}"


CLICKS = {click_of(t, p): (t, p) for t in TENANTS for p in PURCHASES}


def test_no_interleaving_mixes_tenants(
    model_env: tuple[SerializedMotoServer, TrafficStarsSandbox], monkeypatch: Any
) -> None:
    moto_server, sandbox = model_env
    monkeypatch.setenv("TENANT_SECRET_PREFIX", TENANT_SECRET_PREFIX)

    class Isolation(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            moto_server.reset()
            sandbox.state.reset()
            self.clock = Clock()
            self.sqs = ModelSqs(self.clock)
            self.settings = Settings.from_env()
            dynamodb = aws_client("dynamodb", moto_server.endpoint)
            secretsmanager = aws_client("secretsmanager", moto_server.endpoint)
            create_table(dynamodb, self.settings.table_name)
            put_secret(
                secretsmanager,
                self.settings.secret_id,
                {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET},
            )
            self.directory = TenantDirectory(dynamodb, self.settings.table_name, 300)
            for name in TENANTS[1:]:
                put_secret(
                    secretsmanager,
                    TENANT_SECRET_PREFIX + name,
                    {"trafficstars_key": KEYS[name], "stripe_webhook_secret": SIGNING[name]},
                )
                config = TenantConfig(
                    name, frozenset({"stripe"}), {"TRAFFICSTARS_URL": sandbox.base_url}, updated_at=now_iso()
                )
                self.directory.save(config, None)
                sandbox.state.accounts[name] = KEYS[name]
            self.store = ConversionStore(dynamodb, self.settings.table_name, 90, self.clock)
            self._new_container()
            self.invoke = Invoker()
            self.mode = "ok"
            self.gets: list[tuple[Received, bool]] = []  # each GET, and whether its answer was ok
            self.reversed_at: dict[str, float] = {}
            self.refunded: set[str] = set()  # identities a refund was delivered for
            self.accepted: set[str] = set()
            self.removed: set[str] = set()
            self.problems: list[str] = []
            sandbox.state.fault = self._upstream
            TOTALS["scenarios"] += 1

        def _new_container(self) -> None:
            install_runtime(build_runtime(self.settings, self.clock, self.sqs))

        def _upstream(self, received: Received) -> tuple[int, str] | None:
            self.gets.append((received, self.mode == "ok"))
            return {"ok": None, "unavailable": (503, ""), "throttled": (429, "")}[self.mode]

        def _post(self, tenant: str, body: bytes, signed_by: str) -> Any:
            path = "/webhooks/stripe" if tenant == DEFAULT_TENANT else f"/webhooks/{tenant}/stripe"
            signature = stripe_signature(body, SIGNING[signed_by], int(self.clock.now))
            return self.invoke(body, {"Stripe-Signature": signature}, path=path)

        @rule(tenant=st.sampled_from(TENANTS), purchase=st.sampled_from(PURCHASES))
        def purchase(self, tenant: str, purchase: str) -> None:
            session = checkout_session(
                payment_intent=purchase, click_id=click_of(tenant, purchase), session_id=f"cs_{purchase}"
            )
            reply = self._post(tenant, stripe_event("checkout.session.completed", session), tenant)
            if tenant in self.removed:
                if reply.status != 404:
                    self.problems.append(f"a removed tenant's delivery was answered {reply.status} {reply.body}")
            elif reply.status >= 300:
                self.problems.append(f"{tenant} {purchase}: answered {reply.status} {reply.body}")
            elif reply.body.get("status") != "duplicate":
                self.accepted.add(identity(tenant, purchase))
            TOTALS["deliveries"] += 1

        @rule(
            tenant=st.sampled_from(TENANTS),
            signed_by=st.sampled_from(TENANTS),
            purchase=st.sampled_from(PURCHASES),
        )
        def signed_with_another_tenants_secret(self, tenant: str, signed_by: str, purchase: str) -> None:
            if tenant == signed_by or tenant in self.removed:
                return
            before = list(self.store.select())
            session = checkout_session(payment_intent=purchase, click_id=click_of(tenant, purchase))
            reply = self._post(tenant, stripe_event("checkout.session.completed", session), signed_by)
            if reply.status != 401:
                self.problems.append(f"signed by {signed_by}, sent to {tenant}: answered {reply.status}")
            if list(self.store.select()) != before:
                self.problems.append(f"signed by {signed_by}, sent to {tenant}: the table changed")
            TOTALS["forgeries"] += 1

        @rule(tenant=st.sampled_from(TENANTS), purchase=st.sampled_from(PURCHASES))
        def refund(self, tenant: str, purchase: str) -> None:
            charge = {**charge_refunded(pi=purchase), "id": f"ch_{purchase}"}  # its own charge, fully refunded
            reply = self._post(tenant, stripe_event("charge.refunded", charge), tenant)
            if tenant in self.removed:
                return
            if reply.status != 200:
                self.problems.append(f"a refund was answered {reply.status} {reply.body}")
                return
            key = identity(tenant, purchase)
            self.refunded.add(key)
            if reply.body.get("status") == "refunded":
                self.reversed_at.setdefault(key, time.time())
            TOTALS["refunds"] += 1

        @rule()
        def acme_is_removed_and_a_new_container_starts(self) -> None:
            if "acme" in self.removed:
                return
            previous = self.directory.get("acme", force=True)
            assert previous is not None
            from dataclasses import replace

            self.directory.save(replace(previous, enabled=False, updated_at=now_iso()), previous)
            self.removed.add("acme")
            self._new_container()

        @initialize(mode=st.sampled_from(MODES))
        def every_tenant_sells_the_same_ids(self, mode: str) -> None:
            """The start: each tenant's purchases of the same ids, with TrafficStars up or not."""
            self.mode = mode
            for tenant in TENANTS:
                for purchase_id in PURCHASES:
                    self.purchase(tenant, purchase_id)

        @rule(mode=st.sampled_from(MODES))
        def upstream(self, mode: str) -> None:
            self.mode = mode

        @rule(seconds=st.sampled_from([5.0, 61.0, 900.0, 3600.0]))
        def clock_jumps(self, seconds: float) -> None:
            self.clock.now += seconds

        @rule()
        def retry_worker(self) -> None:
            self._work()

        @rule()
        def sweep(self) -> None:
            from postback_relay.handlers.retry import sweep_handler

            sweep_handler({}, LocalContext(function_name="SweepFunction", timeout_s=60))

        def _work(self) -> None:
            from postback_relay.handlers.retry import retry_handler

            messages = self.sqs.receive_message(RETRY_URL)["Messages"]
            if not messages:
                return
            result = retry_handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:retry"), LocalContext())
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(RETRY_URL, message["ReceiptHandle"])
            self.sqs.redrive()
            TOTALS["worker batches"] += 1

        @invariant()
        def every_get_is_its_own_tenants_with_its_own_lead_code(self) -> None:
            for received, _ in self.gets:
                tenant, purchase = CLICKS[received.click_id]
                assert received.account == tenant, f"{tenant}'s {purchase} was sent with {received.account}'s key"
                assert received.params.get("lead_code") == lead_code(identity(tenant, purchase))

        @invariant()
        def at_most_one_accepted_get_per_tenants_purchase(self) -> None:
            counts = Counter(CLICKS[r.click_id] for r, ok in self.gets if ok)
            assert all(n <= 1 for n in counts.values()), counts

        @invariant()
        def no_get_after_its_own_refund_and_no_refund_of_anothers(self) -> None:
            for received, _ in self.gets:
                at = self.reversed_at.get(identity(*CLICKS[received.click_id]))
                assert at is None or received.at < at, f"a GET of {CLICKS[received.click_id]} after its refund"
            for item in self.store.select():
                assert violations(item) == [], violations(item)
                if Status(str(item["status"])) in REVERSED:
                    assert str(item["pk"]) in self.refunded, f"{item['pk']} reversed by another tenant's refund"
            statuses = {str(item["pk"]): str(item["status"]) for item in self.store.select()}
            for due in self.store.due(1e12):
                assert statuses.get(due.pk) in {str(s) for s in IN_FLIGHT}, (due.pk, statuses.get(due.pk))

        @invariant()
        def nothing_refused_wrongly(self) -> None:
            assert self.problems == []
            TOTALS["steps"] += 1

        def teardown(self) -> None:
            try:
                self.mode = "ok"
                for _ in range(6):
                    self.clock.now += 3600
                    self.sweep()
                    for _ in range(10):
                        if not self.sqs.queues[RETRY_URL]:
                            break
                        self._work()
                for item in self.store.select():
                    pk, status = str(item["pk"]), Status(str(item["status"]))
                    if pk in self.accepted:
                        assert status in FINAL, f"{pk} stranded as {status}"
                    TOTALS[f"ended {status}"] += 1
                self.every_get_is_its_own_tenants_with_its_own_lead_code()
                self.at_most_one_accepted_get_per_tenants_purchase()
                self.no_get_after_its_own_refund_and_no_refund_of_anothers()
            finally:
                sandbox.state.fault = None
                reset_runtime()

    run_state_machine_as_test(Isolation, settings=model_settings())
    FAULT_FIGURES.append(
        f"model-based tenant test: {TOTALS['scenarios']} scenarios, {TOTALS['steps']} steps checked "
        f"({TOTALS['deliveries']} deliveries, {TOTALS['forgeries']} deliveries signed by another tenant, "
        f"{TOTALS['refunds']} refunds, {TOTALS['worker batches']} worker batches); ended: "
        + ", ".join(f"{name[6:]} {count}" for name, count in sorted(TOTALS.items()) if name.startswith("ended "))
    )
