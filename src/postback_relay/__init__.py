"""postback-relay: verified conversion webhooks in, exactly-once TrafficStars postbacks out."""

# The one place the version is written; tests/infrastructure/test_release.py holds the others to it.
__version__ = "0.8.0"
