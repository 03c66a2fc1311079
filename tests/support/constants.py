"""The tests' secrets: canaries, so a test can look for them in every log line, item, message and output."""

from __future__ import annotations

import hashlib

from postback_relay.platforms import ROUTED
from postback_relay.platforms.stripe import STRIPE

TEST_KEY = "ts-canary-key-7f3a9c1e5b"
TEST_STRIPE_SECRET = "whsec_test_canary_4b8d2e6f0a"
# Every other source's secret, as the relay's secret JSON holds them: one canary per platform of the registry.
TEST_SOURCE_SECRETS = {
    source.secret_field: f"{source.secret_field}_canary_{hashlib.sha256(source.secret_field.encode()).hexdigest()[:6]}"
    for source in ROUTED.values()
    if source is not STRIPE  # Stripe's is TEST_STRIPE_SECRET
}
FAULT_FIGURES: list[str] = []  # filled by tests/integration/test_faults.py, printed at the end of the run
