"""Routers of the AI API (all under ``/api/v1/ai``)."""
