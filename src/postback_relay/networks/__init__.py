"""The ad networks a conversion is reported to: one module each (TrafficStars today)."""
