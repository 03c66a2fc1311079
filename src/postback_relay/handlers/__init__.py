"""The Lambda entry points and what only they know: routes, HTTP statuses, metrics, tracing."""
