"""The platforms' list APIs, read for reconciliation (README "Reconciliation"): one module per platform, each
turning what its API lists into the shape its webhook has, so the relay's own parser reads both the same way."""
