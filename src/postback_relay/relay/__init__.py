"""The relay's logic, between the handlers and the adapters (orchestration.py, and one module per step).

No Logger here: powertools names a child logger after its module, and one named after this package would
become the parent of every step's logger, which then could not reach the service logger's handler (nor tag
the correlation id)."""

from postback_relay.relay.orchestration import Relay

__all__ = ["Relay"]
