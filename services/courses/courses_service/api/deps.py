"""What the routers take from the running service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from courses_service.cache import CourseCache, touched_courses
from courses_service.settings import Settings
from unpuzzle_common.db import transaction
from unpuzzle_common.readpool import ReadPool


@dataclass
class CoursesContext:
    """Everything the routes need, built once in the app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    #: The catalog's reads (no transaction, prepared statements; see ReadPool).
    reader: ReadPool
    cache: CourseCache

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One write: commit on success, then retire the cache entries it made stale.

        The invalidation runs after the commit and before the response is sent, so the
        caller's next read sees its own write.
        """
        async with transaction(self.sessions) as session:
            yield session
            touched = touched_courses(session)
        await self.cache.invalidate(touched)


async def courses_context(request: Request) -> CoursesContext:
    return request.app.state.courses


def json_response(body: bytes | BaseModel, status_code: int = 200) -> Response:
    """A JSON answer from already-serialised bytes (cache hits) or a model."""
    if isinstance(body, BaseModel):
        body = body.model_dump_json().encode()
    return Response(content=body, status_code=status_code, media_type="application/json")
