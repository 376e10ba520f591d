"""HTTP routes of the analytics service (``/api/v1/analytics``)."""
