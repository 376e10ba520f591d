"""Configuration of the courses service (environment variables prefixed ``COURSES_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COURSES_", extra="ignore")

    service_name: str = "courses"
    host: str = "127.0.0.1"
    port: int = 8102

    #: First token of every Redis key this service writes (tests use a random one).
    cache_prefix: str = "courses"
    #: Seconds a cached anonymous catalog page lives (writes invalidate it at once anyway).
    catalog_cache_ttl: int = 60
    #: Seconds a cached course document lives (writes invalidate it at once anyway).
    course_cache_ttl: int = 300
    #: The catalog's read pool prepares its statements (off for a pooler that cannot hold
    #: them: PgBouncer in transaction mode without ``max_prepared_statements``).
    db_prepared_statements: bool = True
    #: After a Redis failure, seconds during which Redis is not tried again.
    cache_retry_after: float = 5.0

    #: Where a client buys a paid course (named in the 402 answer of the free path).
    payment_intents_path: str = "/api/v1/payments/intents"

    #: Deliveries of a consumed event before it is dead-lettered.
    consumer_max_deliver: int = 5
