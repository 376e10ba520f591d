"""The breaking-change check of the OpenAPI documents, and the gates built on it.

Each rule of ``openapi_compat`` has a synthetic case here (a small FastAPI-shaped
document, changed in one place); the changes clients survive stay clean; a committed
document is broken on purpose; ``make contracts`` refuses a break under the same
version; the history walk finds a break committed under the same version.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import regenerate

compat = regenerate.compat

Doc = dict[str, Any]


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


_PROBLEM = {
    "description": "Validation failed",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_ITEM_ID = {
    "in": "path",
    "name": "item_id",
    "required": True,
    "schema": {"type": "string", "format": "uuid", "title": "Item Id"},
}

#: A small document shaped as FastAPI writes them: $refs, Optional as anyOf with null,
#: extra="forbid" inputs, a recursive response model.
BASE: Doc = {
    "openapi": "3.1.0",
    "info": {"title": "Items", "version": "1.0.0"},
    "paths": {
        "/items": {
            "get": {
                "summary": "List Items",
                "parameters": [
                    {
                        "in": "query",
                        "name": "limit",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                    {
                        "in": "query",
                        "name": "q",
                        "required": False,
                        "schema": {
                            "anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}]
                        },
                    },
                ],
                "responses": {
                    "200": {"description": "Successful Response", "content": _json("Page")},
                    "422": _PROBLEM,
                },
            },
            "post": {
                "requestBody": {"required": True, "content": _json("ItemCreate")},
                "responses": {
                    "201": {"description": "Successful Response", "content": _json("Item")},
                    "422": _PROBLEM,
                },
            },
        },
        "/items/{item_id}": {
            "get": {
                "parameters": [_ITEM_ID],
                "responses": {
                    "200": {"description": "Successful Response", "content": _json("Item")}
                },
            },
            "patch": {
                "parameters": [_ITEM_ID],
                "requestBody": {"required": False, "content": _json("ItemUpdate")},
                "responses": {
                    "200": {"description": "Successful Response", "content": _json("Item")}
                },
            },
            "delete": {
                "parameters": [_ITEM_ID],
                "responses": {"204": {"description": "Successful Response"}},
            },
        },
    },
    "components": {
        "schemas": {
            "ItemCreate": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "kind": {"type": "string", "enum": ["a", "b"], "default": "a"},
                    "slug": {"type": "string", "pattern": "^[a-z]+$"},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                },
                "required": ["title"],
            },
            "ItemUpdate": {
                "type": "object",
                "properties": {"title": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            },
            "Item": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "title": {"type": "string"},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "parent": {"anyOf": [{"$ref": "#/components/schemas/Item"}, {"type": "null"}]},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                },
                "required": ["id", "title", "note", "kind", "children"],
            },
            "Page": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["items", "next_cursor"],
            },
            "Problem": {"type": "object", "properties": {"title": {"type": "string"}}},
        }
    },
}


def _changed(edit: Callable[[Doc], Any]) -> Doc:
    document = copy.deepcopy(BASE)
    edit(document)
    return document


def _schema(document: Doc, name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def _prop(document: Doc, schema: str, name: str) -> dict[str, Any]:
    return _schema(document, schema)["properties"][name]


def _param(document: Doc, path: str, method: str, name: str) -> dict[str, Any]:
    (param,) = (p for p in document["paths"][path][method]["parameters"] if p["name"] == name)
    return param


def _breaks(new: Doc, old: Doc = BASE) -> list[str]:
    return [str(change) for change in compat.breaking_changes(old, new)]


# -- Each rule, on its own ---------------------------------------------------------------


BREAKING: dict[str, tuple[Callable[[Doc], Any], str]] = {
    # Operations
    "path removed": (
        lambda d: d["paths"].pop("/items/{item_id}"),
        "/items/{item_id} — path: removed",
    ),
    "operation removed": (
        lambda d: d["paths"]["/items"].pop("post"),
        "POST /items — operation: removed",
    ),
    # Requests
    "new required parameter": (
        lambda d: d["paths"]["/items"]["get"]["parameters"].append(
            {"in": "query", "name": "lang", "required": True, "schema": {"type": "string"}}
        ),
        "GET /items — query parameter 'lang': new required parameter",
    ),
    "parameter made required": (
        lambda d: _param(d, "/items", "get", "limit").update(required=True),
        "query parameter 'limit': optional parameter is now required",
    ),
    "new required body property": (
        lambda d: _schema(d, "ItemCreate").update(
            properties={**_schema(d, "ItemCreate")["properties"], "price": {"type": "integer"}},
            required=["title", "price"],
        ),
        "POST /items — request body (application/json): price: new required property",
    ),
    "body property made required": (
        lambda d: _schema(d, "ItemCreate")["required"].append("note"),
        "request body (application/json): note: optional property is now required",
    ),
    "request body made required": (
        lambda d: d["paths"]["/items/{item_id}"]["patch"]["requestBody"].update(required=True),
        "PATCH /items/{item_id} — request body: a request body is now required",
    ),
    "request body added, required": (
        lambda d: d["paths"]["/items/{item_id}"]["delete"].update(
            requestBody={"required": True, "content": _json("ItemUpdate")}
        ),
        "DELETE /items/{item_id} — request body: a request body is now required",
    ),
    "request type changed": (
        lambda d: _prop(d, "ItemCreate", "title").update(type="integer"),
        "title: type string → integer",
    ),
    "parameter type changed": (
        lambda d: _param(d, "/items", "get", "limit")["schema"].update(type="boolean"),
        "query parameter 'limit': type integer → boolean",
    ),
    "request nullable removed": (
        lambda d: _prop(d, "ItemCreate", "note").update(anyOf=[{"type": "string"}]),
        "note: no longer accepts null",
    ),
    "parameter nullable removed": (
        lambda d: _param(d, "/items", "get", "q").update(schema={"type": "string"}),
        "query parameter 'q': no longer accepts null",
    ),
    "request enum value removed": (
        lambda d: _prop(d, "ItemCreate", "kind").update(enum=["a"]),
        "kind: enum no longer accepts ['b']",
    ),
    "request enum introduced": (
        lambda d: _prop(d, "ItemCreate", "title").update(enum=["x"]),
        "title: now restricted to ['x']",
    ),
    "maxLength lowered": (
        lambda d: _prop(d, "ItemCreate", "title").update(maxLength=100),
        "title: maxLength 200 → 100",
    ),
    "maxItems lowered": (
        lambda d: _prop(d, "ItemCreate", "tags").update(maxItems=5),
        "tags: maxItems 10 → 5",
    ),
    "maximum lowered": (
        lambda d: _param(d, "/items", "get", "limit")["schema"].update(maximum=50),
        "query parameter 'limit': maximum 100 → 50",
    ),
    "minLength raised": (
        lambda d: _prop(d, "ItemCreate", "title").update(minLength=3),
        "title: minLength 1 → 3",
    ),
    "minItems added": (
        lambda d: _prop(d, "ItemCreate", "tags").update(minItems=1),
        "tags: minItems none → 1",
    ),
    "minimum raised": (
        lambda d: _param(d, "/items", "get", "limit")["schema"].update(minimum=5),
        "query parameter 'limit': minimum 1 → 5",
    ),
    "bound inside a nullable parameter": (
        lambda d: _param(d, "/items", "get", "q")["schema"]["anyOf"][0].update(maxLength=50),
        "query parameter 'q': maxLength 200 → 50",
    ),
    "pattern added": (
        lambda d: _prop(d, "ItemCreate", "title").update(pattern="^[A-Z]"),
        "title: pattern None → '^[A-Z]'",
    ),
    "pattern changed": (
        lambda d: _prop(d, "ItemCreate", "slug").update(pattern="^[a-z0-9]+$"),
        "slug: pattern '^[a-z]+$' → '^[a-z0-9]+$'",
    ),
    "format added": (
        lambda d: _prop(d, "ItemCreate", "note")["anyOf"][0].update(format="email"),
        "note: format None → 'email'",
    ),
    "array items narrowed": (
        lambda d: _prop(d, "ItemCreate", "tags")["items"].update(maxLength=20),
        "tags[]: maxLength none → 20",
    ),
    "items made unique": (
        lambda d: _prop(d, "ItemCreate", "tags").update(uniqueItems=True),
        "tags: items must now be unique",
    ),
    "unknown properties refused": (
        lambda d: _schema(d, "ItemUpdate").update(additionalProperties=False),
        "request body (application/json): unknown properties are now refused",
    ),
    "property removed from a strict input": (
        lambda d: _schema(d, "ItemCreate")["properties"].pop("note"),
        "note: property removed (and now refused)",
    ),
    "request content type dropped": (
        lambda d: d["paths"]["/items"]["post"]["requestBody"].update(
            content={"application/x-www-form-urlencoded": _json("ItemCreate")["application/json"]}
        ),
        "request body (application/json): content type no longer accepted",
    ),
    # Success responses
    "response property removed": (
        lambda d: _schema(d, "Item")["properties"].pop("title"),
        "GET /items/{item_id} — response 200 (application/json): title: property removed",
    ),
    "response property removed deep down": (
        lambda d: _schema(d, "Item")["properties"].pop("kind"),
        "GET /items — response 200 (application/json): items[].kind: property removed",
    ),
    "response property made optional": (
        lambda d: _schema(d, "Item")["required"].remove("kind"),
        "kind: required property is now optional (may be absent)",
    ),
    "response nullable added": (
        lambda d: _prop(d, "Item", "title").update(anyOf=[{"type": "string"}, {"type": "null"}]),
        "response 200 (application/json): title: may now be null",
    ),
    "response type changed": (
        lambda d: _schema(d, "Item")["properties"].update(id={"type": "integer"}),
        "id: type string → integer",
    ),
    "response format changed": (
        lambda d: _prop(d, "Item", "id").update(format="uri"),
        "id: format 'uuid' → 'uri'",
    ),
    "response type added": (
        lambda d: _prop(d, "Item", "note").update(
            anyOf=[{"type": "string"}, {"type": "integer"}, {"type": "null"}]
        ),
        "note: may now be integer",
    ),
    "recursive response narrowed": (
        lambda d: _prop(d, "Item", "children").update(type="object"),
        "children: type array → object",
    ),
    "success status removed": (
        lambda d: d["paths"]["/items"]["post"]["responses"].update(
            {"200": d["paths"]["/items"]["post"]["responses"].pop("201")}
        ),
        "POST /items — response 201: success status code removed",
    ),
    "response content type removed": (
        lambda d: d["paths"]["/items/{item_id}"]["get"]["responses"]["200"].update(
            content={"text/csv": {"schema": {"type": "string"}}}
        ),
        "GET /items/{item_id} — response 200 (application/json): content type removed",
    ),
    # Security
    "security added": (
        lambda d: d["paths"]["/items"]["get"].update(security=[{"HTTPBearer": []}]),
        "GET /items — security: authentication is now required (HTTPBearer)",
    ),
    "security added document-wide": (
        lambda d: d.update(security=[{"HTTPBearer": []}]),
        "DELETE /items/{item_id} — security: authentication is now required",
    ),
}


@pytest.mark.parametrize("rule", BREAKING)
def test_each_rule_reports_its_break(rule: str):
    edit, expected = BREAKING[rule]
    breaks = _breaks(_changed(edit))
    assert any(expected in b for b in breaks), breaks


def test_integer_response_widened_to_number_breaks_clients():
    old = _changed(lambda d: _schema(d, "Item")["properties"].update(id={"type": "integer"}))
    new = _changed(lambda d: _schema(d, "Item")["properties"].update(id={"type": "number"}))
    assert any("id: type integer → number" in b for b in _breaks(new, old))
    assert _breaks(old, new) == []  # number → integer returns a subset


def test_security_narrowed_to_another_scheme_breaks_clients():
    old = _changed(lambda d: d["paths"]["/items"]["get"].update(security=[{"HTTPBearer": []}]))
    other = _changed(lambda d: d["paths"]["/items"]["get"].update(security=[{"ApiKey": []}]))
    assert _breaks(other, old) == ["GET /items — security: HTTPBearer is no longer accepted"]
    either = [{"HTTPBearer": []}, {"ApiKey": []}]
    wider = _changed(lambda d: d["paths"]["/items"]["get"].update(security=either))
    assert _breaks(wider, old) == []
    assert _breaks(BASE, old) == []  # security removed: anonymous calls now work too


def test_a_union_is_explained_by_its_matching_alternative():
    def union(d: Doc) -> None:
        d["components"]["schemas"].update(
            Video={
                "type": "object",
                "properties": {"kind": {"const": "video"}, "seconds": {"type": "integer"}},
                "required": ["kind", "seconds"],
            },
            Text={
                "type": "object",
                "properties": {"kind": {"const": "text"}, "body": {"type": "string"}},
                "required": ["kind", "body"],
            },
        )
        refs = [{"$ref": "#/components/schemas/Video"}, {"$ref": "#/components/schemas/Text"}]
        body = d["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = {"oneOf": refs, "discriminator": {"propertyName": "kind"}}

    old = _changed(union)
    new = copy.deepcopy(old)
    _prop(new, "Text", "body")["maxLength"] = 100
    assert _breaks(new, old) == [
        "POST /items — request body (application/json): body: maxLength none → 100"
    ]


# -- What clients survive --------------------------------------------------------------------


NOT_BREAKING: dict[str, Callable[[Doc], Any]] = {
    "identical": lambda d: None,
    "new path": lambda d: d["paths"].update(
        {"/tags": {"get": {"responses": {"200": {"description": "ok"}}}}}
    ),
    "new operation": lambda d: d["paths"]["/items/{item_id}"].update(
        put={"responses": {"200": {"description": "ok"}}}
    ),
    "new optional parameter": lambda d: d["paths"]["/items"]["get"]["parameters"].append(
        {"in": "query", "name": "lang", "required": False, "schema": {"type": "string"}}
    ),
    "new optional body property": lambda d: _schema(d, "ItemCreate")["properties"].update(
        price={"type": "integer", "default": 0}
    ),
    "new response property": lambda d: _schema(d, "Item")["properties"].update(
        rating={"type": "number"}
    ),
    "new error response": lambda d: d["paths"]["/items/{item_id}"]["get"]["responses"].update(
        {"404": _PROBLEM}
    ),
    "new success status": lambda d: d["paths"]["/items"]["post"]["responses"].update(
        {"200": {"description": "Already there", "content": _json("Item")}}
    ),
    "words changed": lambda d: (
        d["paths"]["/items"]["get"].update(summary="All items", description="Newest first."),
        _prop(d, "Item", "title").update(description="Its name.", examples=["Light"]),
        d["info"].update(description="Items, now described."),
    ),
    "response enum value added (by choice)": lambda d: _prop(d, "Item", "kind").update(
        enum=["a", "b", "c"]
    ),
    "parameter removed (by choice)": lambda d: d["paths"]["/items"]["get"]["parameters"].pop(),
    "property removed from a lenient input": lambda d: _schema(d, "ItemUpdate").update(
        properties={}
    ),
    "request widened": lambda d: (
        _prop(d, "ItemCreate", "title").update(maxLength=500, minLength=0),
        _prop(d, "ItemCreate", "kind").update(enum=["a", "b", "c"]),
        _prop(d, "ItemCreate", "slug").pop("pattern"),
        _param(d, "/items", "get", "limit")["schema"].update(type="number", maximum=1000),
        _schema(d, "ItemCreate")["required"].clear(),
    ),
    "request made nullable": lambda d: _prop(d, "ItemCreate", "title").update(
        anyOf=[{"type": "string"}, {"type": "null"}]
    ),
    "request body made optional": lambda d: d["paths"]["/items"]["post"]["requestBody"].update(
        required=False
    ),
    "response narrowed": lambda d: (
        _prop(d, "Item", "note").pop("anyOf"),
        _prop(d, "Item", "note").update(type="string", maxLength=10),
        _schema(d, "Page")["properties"].update(total={"type": "integer"}),
        _schema(d, "Page")["required"].append("total"),
    ),
    "path parameter renamed": lambda d: d["paths"].update(
        {
            "/items/{id}": {
                method: {**op, "parameters": [{**_ITEM_ID, "name": "id"}]}
                for method, op in d["paths"].pop("/items/{item_id}").items()
            }
        }
    ),
    "component renamed": lambda d: (
        _schema(d, "Item").update(title="Item-Output"),
        d["components"]["schemas"].update(Thing=d["components"]["schemas"].pop("ItemCreate")),
        d["paths"]["/items"]["post"]["requestBody"].update(content=_json("Thing")),
    ),
    "version only": lambda d: d["info"].update(version="2.0.0"),
}


@pytest.mark.parametrize("change", NOT_BREAKING)
def test_changes_clients_survive_are_not_reported(change: str):
    assert _breaks(_changed(NOT_BREAKING[change])) == []


def test_recursive_models_are_compared_without_end():
    """Mutually recursive models, and a model that is an alternative of itself."""

    def cycle(d: Doc) -> None:
        schemas = d["components"]["schemas"]
        schemas["Node"] = {
            "type": "object",
            "properties": {
                "edge": {"$ref": "#/components/schemas/Edge"},
                "self": {"anyOf": [{"$ref": "#/components/schemas/Node"}, {"type": "null"}]},
            },
            "required": ["edge", "self"],
        }
        schemas["Edge"] = {
            "type": "object",
            "properties": {"to": {"$ref": "#/components/schemas/Node"}, "w": {"type": "number"}},
            "required": ["to", "w"],
        }
        schemas["Loop"] = {"anyOf": [{"$ref": "#/components/schemas/Loop"}, {"type": "null"}]}
        _schema(d, "Item")["properties"].update(
            node={"$ref": "#/components/schemas/Node"}, loop={"$ref": "#/components/schemas/Loop"}
        )

    old = _changed(cycle)
    assert _breaks(old, old) == []
    new = copy.deepcopy(old)
    _prop(new, "Edge", "w")["type"] = "string"
    assert any("node.edge.w: type number → string" in b for b in _breaks(new, old))


# -- A committed document -----------------------------------------------------------------


@pytest.fixture
def courses() -> Doc:
    return json.loads(regenerate.doc_path("courses").read_text())


def test_committed_documents_do_not_break_themselves():
    for service in regenerate.services():
        document = json.loads(regenerate.doc_path(service).read_text())
        assert compat.breaking_changes(document, copy.deepcopy(document)) == [], service


def test_breaks_in_a_committed_document_are_found(courses: Doc):
    new = copy.deepcopy(courses)
    del new["paths"]["/api/v1/categories"]
    del new["components"]["schemas"]["CourseDetail"]["properties"]["slug"]
    new["components"]["schemas"]["CourseCreate"]["required"].append("description")
    assert [str(c) for c in compat.breaking_changes(courses, new)] == [
        "/api/v1/categories — path: removed",
        "POST /api/v1/courses — request body (application/json): "
        "description: optional property is now required",
        "POST /api/v1/courses — response 201 (application/json): slug: property removed",
        "GET /api/v1/courses/{course_ref} — response 200 (application/json): "
        "slug: property removed",
        "PATCH /api/v1/courses/{course_ref} — response 200 (application/json): "
        "slug: property removed",
        "POST /api/v1/courses/{course_ref}/publish — response 200 (application/json): "
        "slug: property removed",
        "POST /api/v1/courses/{course_ref}/unpublish — response 200 (application/json): "
        "slug: property removed",
    ]


# -- make contracts refuses a break under the same version ------------------------------------


def test_regenerate_refuses_a_break_without_a_new_version(tmp_path: Path):
    path = tmp_path / "items.json"
    assert regenerate.write_document(path, BASE).status == "created"
    assert regenerate.write_document(path, BASE).status == "unchanged"
    committed = path.read_text()

    broken = _changed(lambda d: d["paths"].pop("/items/{item_id}"))
    outcome = regenerate.write_document(path, broken)
    assert outcome.status == "refused"
    assert [str(c) for c in outcome.changes] == ["/items/{item_id} — path: removed"]
    assert path.read_text() == committed, "a refused document must not be written"
    message = regenerate.refusal_message("items", path, outcome)
    assert "/items/{item_id} — path: removed" in message
    assert "bump VERSION in services/items/items_service/main.py (e.g. 1.0.0 → 2.0.0)" in message

    grown = _changed(NOT_BREAKING["new path"])
    assert regenerate.write_document(path, grown).status == "updated"
    bumped = _changed(
        lambda d: (d["paths"].pop("/items/{item_id}"), d["info"].update(version="2.0.0"))
    )
    assert regenerate.write_document(path, bumped).status == "updated"
    assert json.loads(path.read_text()) == bumped


# -- CI walks the committed history ----------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", *identity, "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _commit(repo: Path, document: Doc, message: str) -> None:
    (repo / "items.json").write_text(regenerate.render(document))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    return tmp_path


def _history_breaks(path: Path, since: str | None = None) -> list[str]:
    return [str(b) for b in regenerate.breaks_within_version(regenerate.revisions(path, since))]


def test_history_finds_a_break_committed_under_the_same_version(repo: Path):
    path = repo / "items.json"
    _commit(repo, BASE, "Add items")
    _commit(repo, _changed(NOT_BREAKING["new path"]), "Add tags")
    assert _history_breaks(path) == []

    dropped = _changed(BREAKING["path removed"][0])
    _commit(repo, dropped, "Drop one item's path")
    dropped["info"]["description"] = "Items, described."
    _commit(repo, dropped, "Describe the items")
    (found,) = _history_breaks(path)
    assert "(Drop one item's path), both 1.0.0" in found
    assert "/items/{item_id} — path: removed" in found
    assert "/tags — path: removed" in found  # compared with the step before, not the first

    bumped = _changed(
        lambda d: (d["paths"].pop("/items/{item_id}"), d["info"].update(version="2.0.0"))
    )
    _commit(repo, bumped, "Bump to 2.0.0")
    assert _history_breaks(path) == [], "a new version allows the break"


def test_history_includes_an_uncommitted_document(repo: Path):
    path = repo / "items.json"
    _commit(repo, BASE, "Add items")
    path.write_text(regenerate.render(_changed(BREAKING["operation removed"][0])))
    (found,) = _history_breaks(path)
    assert "→ working tree, both 1.0.0" in found


def test_history_from_before_the_rule_is_not_walked(repo: Path):
    path = repo / "items.json"
    _commit(repo, BASE, "Add items")
    _commit(repo, _changed(BREAKING["path removed"][0]), "Break before the rule")
    (repo / "gate.py").write_text("# the rule\n")
    _commit(repo, _changed(BREAKING["path removed"][0]), "Add the rule")
    assert _history_breaks(path, since="gate.py") == []
    _commit(repo, _changed(BREAKING["operation removed"][0]), "Break under the rule")
    (found,) = _history_breaks(path, since="gate.py")
    assert "(Break under the rule)" in found
    assert len(_history_breaks(path, since=None)) == 2


def test_history_is_unavailable_outside_git_and_in_a_shallow_clone(repo: Path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("not-a-repo") / "items.json"
    elsewhere.write_text(regenerate.render(BASE))
    with pytest.raises(regenerate.HistoryUnavailable, match="not a git checkout"):
        list(regenerate.revisions(elsewhere))

    _commit(repo, BASE, "Add items")
    _commit(repo, _changed(NOT_BREAKING["new path"]), "Add tags")
    shallow = tmp_path_factory.mktemp("shallow")
    _git(shallow, "clone", "-q", "--depth", "1", repo.as_uri(), "clone")
    with pytest.raises(regenerate.HistoryUnavailable, match="shallow clone"):
        list(regenerate.revisions(shallow / "clone" / "items.json"))
