"""The courses service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from courses_service.api import categories, courses, enrollments, progress, reviews, structure
from courses_service.api.cached_catalog import CachedCatalogMiddleware
from courses_service.api.deps import CoursesContext
from courses_service.cache import CourseCache
from courses_service.settings import Settings
from unpuzzle_common.app import ServiceRuntime, create_service_app
from unpuzzle_common.auth import JWKSKeySource, TokenVerifier
from unpuzzle_common.readpool import ReadPool

VERSION = "1.0.0"


def create_app(settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None):
    """The app; ``token_verifier`` replaces the JWKS-backed one (tests mint their own keys)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime.open(settings) as runtime:
            verifier = token_verifier
            if verifier is None:
                keys = JWKSKeySource(settings.jwks_url)
                runtime.closers.append(keys.aclose)
                verifier = TokenVerifier(
                    keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
                )
            reader = ReadPool(
                settings.database_url,
                max_size=settings.db_pool_size,
                application_name=f"{settings.service_name}-reads",
                prepared_statements=settings.db_prepared_statements,
            )
            await reader.open()
            runtime.closers.append(reader.close)
            app.state.runtime = runtime
            app.state.token_verifier = verifier
            app.state.courses = CoursesContext(
                settings=settings,
                sessions=runtime.sessions,
                reader=reader,
                cache=CourseCache.from_settings(settings, runtime.redis),
            )
            yield

    app = create_service_app(
        settings,
        title="Unpuzzle courses",
        version=VERSION,
        description="Catalog, course building, enrollments, progress and reviews.",
        lifespan=lifespan,
        # Inside the request id / access log / metrics middleware, before routing.
        inner_middleware=[Middleware(CachedCatalogMiddleware)],
    )
    # Sub-resources first: their paths are more specific than /courses/{course_ref}.
    for module in (structure, progress, reviews, enrollments, courses, categories):
        app.include_router(module.router)
    return app
