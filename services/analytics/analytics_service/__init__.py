"""Unpuzzle analytics: every event stored once as a fact, daily rollups, reports."""
