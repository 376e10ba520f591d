"""Shared code of the Unpuzzle services.

Only what every service needs lives here: configuration, database access, events
(outbox, relay, consumers), token verification, problem+json errors, pagination,
idempotency and observability. A service imports this package and its own, never
another service.
"""
