"""Routers of the auth API (all under ``/api/v1/auth``)."""
