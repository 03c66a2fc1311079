"""postback-relay: verified conversion webhooks in, exactly-once TrafficStars postbacks out."""

__version__ = (
    "0.3.0"  # the one place the version is written; tests/infrastructure/test_release.py holds the others to it
)
