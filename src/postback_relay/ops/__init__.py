"""Operator tooling: the `postback-relay` CLI, deployment discovery, checks, replay. Never imported by handlers."""
