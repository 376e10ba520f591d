"""What the routers take from the running service."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.delivery import UrlSigner
from media_service.settings import Settings
from media_service.storage import ObjectStore


@dataclass
class MediaContext:
    """Everything the media routes need, built once in the app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    store: ObjectStore
    signer: UrlSigner


async def media_context(request: Request) -> MediaContext:
    return request.app.state.media
