"""Opaque cursors, ?limit bounds and next_cursor only when there is more."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi import Depends, FastAPI

from unpuzzle_common.errors import PROBLEM_JSON, ValidationFailed, install_problem_handlers
from unpuzzle_common.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    PageParams,
    decode_cursor,
    encode_cursor,
    make_page,
    page_params,
)

NUMBERS = list(range(1, 46))


def build_app() -> FastAPI:
    """A collection of the numbers 1..45, paginated by keyset on the number."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/numbers")
    async def list_numbers(params: PageParams = Depends(page_params)) -> Page[int]:
        after = params.after["n"] if params.after else 0
        rows = [n for n in NUMBERS if n > after][: params.limit + 1]
        return make_page(rows, params, lambda n: {"n": n})

    return app


@pytest.fixture
def client(client_for):
    return client_for(build_app())


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_cursor_round_trips_its_sort_key() -> None:
    key = {"created_at": "2025-01-02T03:04:05+00:00", "id": "0b7e5c1e-5c1e-4c1e-8c1e-5c1e5c1e5c1e"}

    cursor = encode_cursor(key)

    assert decode_cursor(cursor) == key
    assert all(c.isalnum() or c in "-_" for c in cursor)  # safe in a query string unescaped


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        b64(b"[1, 2, 3]"),  # JSON, but not a sort key
        b64(b"\xff\xfe\x00garbage"),  # not UTF-8
        b64(b'{"n": 1'),  # truncated
    ],
)
def test_garbage_cursor_is_a_validation_failure_on_cursor(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        decode_cursor(cursor)

    assert failed.value.errors == [{"field": "cursor", "message": "not a valid cursor"}]


async def test_garbage_cursor_in_query_answers_422_on_cursor(client) -> None:
    response = await client.get("/numbers", params={"cursor": "definitely-not-ours"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


def test_next_cursor_points_after_the_last_item_when_there_are_more_rows() -> None:
    params = PageParams(limit=3)

    page = make_page([10, 11, 12, 13], params, lambda n: {"n": n})

    assert page.items == [10, 11, 12]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == {"n": 12}


@pytest.mark.parametrize("rows", [[], [10], [10, 11, 12]])
def test_no_next_cursor_on_the_last_page(rows: list[int]) -> None:
    page = make_page(rows, PageParams(limit=3), lambda n: {"n": n})

    assert page.items == rows
    assert page.next_cursor is None


async def test_walking_next_cursors_yields_every_item_once(client) -> None:
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 20}
    pages = 0
    while True:
        response = await client.get("/numbers", params=params)
        assert response.status_code == 200
        body = response.json()
        seen += body["items"]
        pages += 1
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]

    assert seen == NUMBERS
    assert pages == 3


async def test_default_limit_is_twenty(client) -> None:
    body = (await client.get("/numbers")).json()

    assert len(body["items"]) == DEFAULT_LIMIT == 20


@pytest.mark.parametrize("limit", [1, MAX_LIMIT])
async def test_limit_within_bounds_is_accepted(client, limit: int) -> None:
    response = await client.get("/numbers", params={"limit": limit})

    assert response.status_code == 200
    assert len(response.json()["items"]) == min(limit, len(NUMBERS))


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
async def test_limit_out_of_bounds_is_422_on_limit(client, limit: int) -> None:
    response = await client.get("/numbers", params={"limit": limit})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == ["limit"]
