"""Configuration of the analytics service (environment variables prefixed ``ANALYTICS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="ignore")

    service_name: str = "analytics"
    host: str = "127.0.0.1"
    port: int = 8106

    #: Deliveries of a consumed event before it is dead-lettered.
    consumer_max_deliver: int = 5
    #: Events fetched from JetStream and applied in one transaction (each still deduplicated
    #: by its id). Bigger batches ingest faster; 1 is the plain one-event-per-transaction path.
    consumer_batch_size: int = Field(default=250, ge=1, le=1000)
    #: Seconds one fetch waits for the first event (an arriving event ends the wait at once).
    consumer_fetch_timeout: float = 2.0

    #: Days a report covers when the request names no range (ending today, UTC).
    report_default_days: int = Field(default=30, ge=1)
    #: Longest range (in days, both ends included) one report may cover.
    report_max_days: int = Field(default=366, ge=1)
