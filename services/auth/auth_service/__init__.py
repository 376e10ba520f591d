"""Unpuzzle auth service: users, credentials, roles, sessions and signing keys."""
