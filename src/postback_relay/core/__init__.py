"""The domain, pure: no boto3, requests or powertools here (tests/unit/test_layers.py holds it so)."""
