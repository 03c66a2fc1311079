"""postback-relay: verified conversion webhooks in, exactly-once TrafficStars postbacks out."""

__version__ = "0.1.0"
