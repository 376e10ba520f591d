"""Anonymous catalog pages answered from the cache before routing.

A cached catalog page is bytes under a key made from the request's query string
(:func:`courses_service.cache.catalog_key`), so a hit needs neither FastAPI's routing
nor its parameter parsing nor the handler: profiling the cached catalog page showed
those costing more than the Redis lookup itself. This middleware sits inside the
platform's request middleware (request id, access log, metrics, tracing), so a hit is
logged and counted under the catalog's route like any other answer.

Only what the handler would answer the same way for everybody is served here:
``GET /api/v1/courses`` without an ``Authorization`` header. A miss, any other request,
and Redis being away all go on to the handler, which stores the page under the same key
after validating the query: an invalid query is never stored, so never served here.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from courses_service.cache import catalog_parameters, parameters_digest

CATALOG_PATH = "/api/v1/courses"
#: The query parameters of GET /api/v1/courses (tests/contract holds the document; a
#: test checks this list against the route).
CATALOG_PARAMETERS = frozenset(
    {"q", "category", "instructor_id", "price_min", "price_max", "free", "sort", "limit", "cursor"}
)


@dataclass(frozen=True)
class _RouteLabel:
    """What the request middleware reads of ``scope["route"]``: the path template."""

    path: str


_CATALOG_ROUTE = _RouteLabel(CATALOG_PATH)


#: Scope entry: the cache key this request's lookup missed (None: Redis unavailable).
MISSED_KEY = "unpuzzle.catalog_cache_miss"


class CachedCatalogMiddleware:
    """Serve cached anonymous catalog pages without entering the router (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] != CATALOG_PATH
            or _has_authorization(scope)
        ):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        context = getattr(app.state, "courses", None)
        if context is None:  # the lifespan has not run (e.g. a bare TestClient)
            await self.app(scope, receive, send)
            return
        values = catalog_parameters(scope["query_string"], CATALOG_PARAMETERS)
        # The handler sorts by enrollments when the last ``sort`` says so (an invalid one
        # is refused there and never stored).
        popular = values.get("sort", [""])[-1] == "popular"
        page, key = await context.cache.catalog_page(parameters_digest(values), popular=popular)
        if page is None:
            # The handler stores the page under this key without asking Redis again.
            scope[MISSED_KEY] = key
            await self.app(scope, receive, send)
            return
        # The metrics and the access log label answers by route, as the router would.
        scope["route"] = _CATALOG_ROUTE
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(page)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": page})


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])
