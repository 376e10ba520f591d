"""Routers of the media API (all under ``/api/v1/media``)."""
