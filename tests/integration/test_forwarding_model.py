"""The model-based test of forward mode: hypothesis interleaves Verotel postbacks (first payments, their
redeliveries, rebills, credits, chargebacks, forgeries) with a merchant endpoint that answers, refuses, fails or
drops the connection, TrafficStars going down and the relay's table becoming unreachable; after every step:

1. at most one accepted GET per transaction (forwarding never makes the relay send twice);
2. no GET for the sale once a reversal of it was recorded;
3. the platform's answer is the merchant's while the relay settled the event (its failure passed on, or the
   relay's own `OK` with FORWARD_ON_FAILURE=answer), and the relay's 503 whenever it could not;
4. a forgery is refused 401 and never reaches the merchant; every verified postback does, once.

Real parts: the handler in-process, moto server, the HTTPS TrafficStars sandbox and an HTTPS merchant on loopback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import trustme
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from postback_relay.core.conversion import lead_code
from postback_relay.runtime import reset_runtime
from postback_relay_dev.resources import create_queues, create_table, put_secret
from postback_relay_dev.sandbox import Received, TrafficStarsSandbox
from tests.integration.platforms import test_verotel as verotel
from tests.support.aws import Aws
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import Invoker, Reply
from tests.support.merchant import MerchantEndpoint
from tests.support.model import model_settings

MERCHANT = ("answers", "refuses", "fails", "drops")
REBILLS = ("99999992", "99999993")
STORE_TARGET = "DynamoDB"
SALE_LEAD_CODE = lead_code(verotel.PURCHASE)


@pytest.fixture
def merchant(authority: trustme.CA) -> Iterator[MerchantEndpoint]:
    server = MerchantEndpoint(authority).start()
    yield server
    server.stop()


def test_no_interleaving_of_forwards_and_faults_changes_what_is_sent(
    relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox, merchant: MerchantEndpoint
) -> None:
    relay_env.setenv("VEROTEL_FORWARD_URL", merchant.url())
    relay_env.setenv("FORWARD_TIMEOUT_SECONDS", "1")
    totals: Counter[str] = Counter()

    class Forwarding(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            aws.server.reset()
            create_table(aws.dynamodb, aws.table_name)
            create_queues(aws.sqs, "conversions-test")
            put_secret(aws.secretsmanager, aws.secret_id, {"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS})
            sandbox.state.reset()
            merchant.behaviour.reset()
            self.invoke = Invoker()
            self.trafficstars_down = False
            self.store_down = False
            self.gets: list[tuple[Received, bool]] = []  # each GET and whether it was answered ok
            sandbox.state.fault = self._upstream
            self.reversed_at: int | None = None  # how many GETs had been made when a reversal was recorded
            self.verified = 0  # postbacks that passed the signature check
            self.problems: list[str] = []

        @initialize(on_failure=st.sampled_from(["pass", "answer"]))
        def configure(self, on_failure: str) -> None:
            relay_env.setenv("FORWARD_ON_FAILURE", on_failure)
            reset_runtime()
            self.on_failure = on_failure

        def _upstream(self, received: Received) -> tuple[int, str] | None:
            self.gets.append((received, not self.trafficstars_down))
            return (503, "") if self.trafficstars_down else None

        def _deliver(self, params: dict[str, str], merchant_does: str) -> Reply:
            behaviour = merchant.behaviour
            behaviour.drop = merchant_does == "drops"
            behaviour.status, behaviour.body = {"answers": (200, b"OK"), "refuses": (403, b"who?")}.get(
                merchant_does, (500, b"members area down")
            )
            before = len(behaviour.received)
            reply = verotel.deliver(self.invoke, params)
            self.verified += 1
            if len(behaviour.received) != before + 1:
                self.problems.append(f"a verified postback reached the merchant {len(behaviour.received) - before}x")
            self._check_answer(reply, merchant_does)
            totals[f"merchant {merchant_does}"] += 1
            return reply

        def _check_answer(self, reply: Reply, merchant_does: str) -> None:
            """Invariant 3: the relay's 503 while its table is unreachable (it cannot settle anything), else the
            merchant's answer, its failure passed on, or the relay's `OK` standing in for a failed merchant."""
            if self.store_down:
                if reply.status != 503 or reply.text == "OK":
                    self.problems.append(f"the table is down and the answer was {reply.status} {reply.text[:80]}")
                totals["relay 503"] += 1
                return
            answered = (reply.status, reply.body.get("reason") if reply.status == 502 else reply.text)
            if merchant_does in ("fails", "drops") and self.on_failure == "answer":
                expected: tuple[int, str | None] = (200, "OK")
            else:
                expected = {
                    "answers": (200, "OK"),
                    "refuses": (403, "who?"),
                    "fails": (500, "members area down"),
                    "drops": (502, "connection_error"),
                }[merchant_does]
            if answered != expected:
                self.problems.append(f"merchant {merchant_does}, {self.on_failure}: {answered}, not {expected}")
            totals[f"settled, merchant {merchant_does}"] += 1

        def _relay_status(self, reply: Reply) -> str | None:
            return reply.headers.get("X-Postback-Relay-Status")

        @rule(merchant_does=st.sampled_from(MERCHANT))
        def first_payment(self, merchant_does: str) -> None:
            self._deliver(verotel.initial(), merchant_does)

        @rule(transaction=st.sampled_from(REBILLS), merchant_does=st.sampled_from(MERCHANT))
        def rebill(self, transaction: str, merchant_does: str) -> None:
            self._deliver(verotel.rebill(transaction), merchant_does)

        @rule(event=st.sampled_from(["credit", "chargeback"]), merchant_does=st.sampled_from(MERCHANT))
        def reversal(self, event: str, merchant_does: str) -> None:
            reply = self._deliver(verotel.reversal(event), merchant_does)
            status = self._relay_status(reply)
            recorded = status in ("refunded", "charged_back", "duplicate", "ignored")
            if self.reversed_at is None and (recorded or (status is None and reply.text == "OK")):
                self.reversed_at = len(self.gets)  # (ignored: the sale was not there; it can never be sent now)

        @rule()
        def forgery(self) -> None:
            before = len(merchant.behaviour.received)
            reply = verotel.deliver(self.invoke, verotel.initial(), key="not-the-key")
            if reply.status != 401 or len(merchant.behaviour.received) != before:
                self.problems.append(f"a forgery was answered {reply.status} or reached the merchant")

        @rule(down=st.booleans())
        def trafficstars(self, down: bool) -> None:
            self.trafficstars_down = down

        @rule(down=st.booleans())
        def store(self, down: bool) -> None:
            aws.server.fault = (lambda environ: STORE_TARGET in environ.get("HTTP_X_AMZ_TARGET", "")) if down else None
            self.store_down = down

        @invariant()
        def nothing_went_wrong(self) -> None:
            assert self.problems == []

        @invariant()
        def at_most_one_accepted_get_per_transaction(self) -> None:
            accepted = Counter(received.params.get("lead_code") for received, ok in self.gets if ok)
            assert [code for code, count in accepted.items() if count > 1] == []

        @invariant()
        def no_get_for_the_sale_after_its_reversal(self) -> None:
            if self.reversed_at is not None:
                late = [r for r, _ in self.gets[self.reversed_at :] if r.params.get("lead_code") == SALE_LEAD_CODE]
                assert late == []

        def teardown(self) -> None:
            aws.server.fault = None
            sandbox.state.fault = None
            totals["scenarios"] += 1

    run_state_machine_as_test(Forwarding, settings=model_settings())
    FAULT_FIGURES.append(f"forward model: {dict(sorted(totals.items()))}")
    assert totals["scenarios"] > 0 and totals["relay 503"] > 0 and totals["settled, merchant drops"] > 0
