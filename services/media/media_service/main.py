"""The media service's FastAPI application."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from media_service.api import media, uploads
from media_service.api.deps import MediaContext
from media_service.delivery import UrlSigner
from media_service.settings import Settings
from media_service.storage import ObjectStore, S3ObjectStore, StorageError, prepare_bucket
from unpuzzle_common.app import ServiceRuntime, create_service_app
from unpuzzle_common.auth import JWKSKeySource, TokenVerifier
from unpuzzle_common.errors import ServiceUnavailable, problem_response
from unpuzzle_common.observability import BodyLimitMiddleware

VERSION = "1.0.0"

log = logging.getLogger(__name__)

#: The one route whose bodies may be as large as a chunk (``max_body_bytes``).
CHUNK_ROUTE = re.compile(r"^/api/v1/media/uploads/[^/]+/chunks/[^/]+$")


@dataclass
class MediaRuntime(ServiceRuntime):
    """The shared runtime plus the object store, whose reachability readiness reports."""

    store: ObjectStore | None = None

    async def readiness(self) -> dict[str, str]:
        checks = await super().readiness()
        if self.store is not None:
            try:
                await asyncio.wait_for(self._check_store(self.store), 3)
                checks["storage"] = "ok"
            except (StorageError, TimeoutError) as exc:
                checks["storage"] = f"unreachable: {type(exc).__name__}"
        return checks

    async def _check_store(self, store: ObjectStore) -> None:
        try:
            await store.check()
        except StorageError:
            # A store that came up after us has no bucket yet: create it (when allowed).
            if not (isinstance(self.settings, Settings) and self.settings.creates_bucket):
                raise
            await store.ensure_bucket()


class SmallBodiesExceptChunks:
    """Holds every route but the chunk upload to ``max_bytes`` (JSON bodies are small)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.limited = BodyLimitMiddleware(app, max_bytes=max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not CHUNK_ROUTE.match(scope["path"]):
            await self.limited(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    store: ObjectStore | None = None,
) -> FastAPI:
    """The app; ``token_verifier`` replaces the JWKS-backed one (tests mint their own
    keys) and ``store`` the S3 store built from the settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        object_store = store or S3ObjectStore(settings)
        try:
            await prepare_bucket(object_store, settings)
            async with MediaRuntime.open(settings) as runtime:
                runtime.store = object_store
                verifier = token_verifier
                if verifier is None:
                    keys = JWKSKeySource(settings.jwks_url)
                    runtime.closers.append(keys.aclose)
                    verifier = TokenVerifier(
                        keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
                    )
                app.state.runtime = runtime
                app.state.token_verifier = verifier
                app.state.media = MediaContext(
                    settings=settings,
                    sessions=runtime.sessions,
                    store=object_store,
                    signer=UrlSigner(settings, object_store),
                )
                yield
        finally:
            if own_store:
                object_store.close()

    app = create_service_app(
        settings,
        title="Unpuzzle media",
        version=VERSION,
        description="Resumable uploads to object storage, media processing, signed delivery.",
        lifespan=lifespan,
    )
    app.add_middleware(SmallBodiesExceptChunks, max_bytes=settings.json_max_body_bytes)

    async def storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("object store failed on %s %s: %s", request.method, request.url.path, exc)
        problem = ServiceUnavailable(
            "The media store is unavailable; try again shortly.", headers={"Retry-After": "5"}
        )
        return problem_response(problem, request)

    app.add_exception_handler(StorageError, storage_unavailable)
    for module in (uploads, media):
        app.include_router(module.router)
    return app
