"""Anonymous catalog pages answered before routing: from the cache, or built at once.

A cached catalog page is bytes under a key made from the request's query string
(:func:`courses_service.cache.catalog_key`), so a hit needs neither FastAPI's routing
nor its parameter parsing nor the handler: profiling the cached catalog page showed
those costing more than the Redis lookup itself. A miss is built here too, with the
handler's own steps (:func:`catalog_query`, :func:`public_page`): after the database
went onto the ReadPool, routing, dependency solving and the middleware below this one
were 30 % of an uncached page's CPU. This middleware sits inside the platform's request
middleware (request id, access log, metrics, tracing), so its answers are logged and
counted under the catalog's route like any other.

Only what the handler would answer the same way for everybody is served here:
``GET /api/v1/courses`` without an ``Authorization`` header, whose parameters pass
:class:`~courses_service.schemas.CatalogParams` — the model FastAPI validates the
handler's parameters with, so both accept the same requests. Anything this middleware
would not answer with a page (an invalid query, a refused value) goes on to the handler,
which answers it as it always did. A failure while reading the page is answered as
the handler's exception handlers would (503 for a lost database, 422 for a value it
refuses, else a logged 500), not retried through the handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from courses_service import catalog
from courses_service.access import parse_course_ref
from courses_service.api.deps import CoursesContext
from courses_service.cache import catalog_parameters, parameters_digest
from courses_service.schemas import CatalogParams
from unpuzzle_common.errors import (
    Problem,
    ValidationFailed,
    database_problem,
    send_problem,
    unexpected_problem,
)
from unpuzzle_common.pagination import decode_cursor

CATALOG_PATH = "/api/v1/courses"
#: The query parameters of GET /api/v1/courses (tests/contract holds the document; a
#: test checks this list against the route).
CATALOG_PARAMETERS = frozenset(CatalogParams.model_fields)


@dataclass(frozen=True)
class _RouteLabel:
    """What the request middleware reads of ``scope["route"]``: the path template."""

    path: str


_CATALOG_ROUTE = _RouteLabel(CATALOG_PATH)


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
            try:
                # FastAPI reads the last of a repeated parameter; so does this.
                params = CatalogParams.model_validate({k: v[-1] for k, v in values.items()})
                query = catalog_query(params)
            except (ValidationError, Problem):
                # The handler answers the problem (and stores nothing).
                await self.app(scope, receive, send)
                return
            try:
                page = await public_page(context, query, key)
            except Problem:  # a cursor of another sort (found before the query runs)
                await self.app(scope, receive, send)
                return
            except Exception as exc:
                # Answered here as the handler's exception handlers would (logged, with
                # the request id and the route), not raised past the request middleware.
                where = f"GET {CATALOG_PATH}"
                problem = database_problem(exc, where) or unexpected_problem(where)
                scope["route"] = _CATALOG_ROUTE
                await send_problem(send, problem, CATALOG_PATH)
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


def catalog_query(params: CatalogParams) -> catalog.CatalogQuery:
    """What a valid set of catalog parameters asks for; 422 for what the model cannot
    check alone (a cursor that is not ours, price bounds in the wrong order)."""
    cursor = decode_cursor(params.cursor) if params.cursor else None
    if params.price_min is not None and params.price_max is not None:
        if params.price_min > params.price_max:
            raise ValidationFailed.field("price_max", "must not be below price_min")
    return catalog.CatalogQuery(
        q=params.q,
        category=parse_course_ref(params.category) if params.category else None,
        instructor_id=params.instructor_id,
        price_min=params.price_min,
        price_max=params.price_max,
        free=params.free,
        sort=params.sort,
        limit=params.limit,
        cursor=cursor,
    )


async def public_page(ctx: CoursesContext, query: catalog.CatalogQuery, key: str | None) -> bytes:
    """The anonymous catalog page of ``query``, read and stored under ``key`` (None:
    Redis is away, nothing is stored)."""
    result, shown = await catalog.search_catalog(ctx.reader, query, None)
    body = result.model_dump_json().encode()
    if key is not None:
        await ctx.cache.store_catalog_page(key, body, shown)
    return body


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])
