"""Which differences between two OpenAPI documents break a client of the older one.

``breaking_changes(old, new)`` compares two OpenAPI 3.1 documents as FastAPI writes them
(``$ref`` into ``components``, ``anyOf: [..., {"type": "null"}]`` for Optional, recursive
models) and lists what a client written against ``old`` would trip over in ``new``:

- **Operations.** A path or an operation (method) removed. Paths are matched with their
  parameters' names blanked (``/courses/{id}`` is ``/courses/{ref}`` on the wire), and
  path parameters by position.
- **Requests** (parameters and request body: ``new`` must accept all ``old`` accepted).
  A new required parameter or body property, an optional one made required, a request
  body newly required, a request content type dropped, and any narrowing of a value: a
  type dropped from the accepted set (``null`` too), enum values removed, a lower bound
  (``minimum``, ``minLength``, ``minItems`` …) raised or added, an upper bound lowered or
  added, a ``pattern``/``format``/``multipleOf`` added or changed, unknown properties
  newly refused (``additionalProperties: false``).
  *Not* breaking: a parameter removed (FastAPI ignores parameters it does not know; the
  client's value is dropped, not refused), a body property removed from a schema that
  still accepts unknown properties. A body property removed from a schema that refuses
  them (``additionalProperties: false``, i.e. ``extra="forbid"``) *is* breaking: the
  server now answers 422 to what it used to take.
- **Success responses** (2xx: ``old`` must describe all ``new`` returns). A status code
  or a content type removed, a property removed, a required property made optional (it
  may now be absent), a type widened or changed (``string`` → ``string | null``,
  ``integer`` → ``number``), a ``format`` changed or dropped.
  *Not* breaking, by choice: enum values added to a response (clients must tolerate
  unknown values, as they tolerate unknown properties), bounds and patterns of response
  values (clients read them, they do not validate them), a new success status code.
- **Security.** A requirement an operation did not have (anonymous calls now refused, or
  a way to authenticate no longer accepted).

Everything else is additive or cosmetic: new paths, operations, optional inputs and
response properties, new error responses, descriptions, summaries, examples, titles.

Pure: no I/O. ``regenerate.py`` refuses to write a breaking document under the same
``info.version``, and walks the committed history with it for CI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "multipleOf")
_TEMPLATE_PARAMETER = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class Change:
    """One way ``new`` breaks a client of ``old``."""

    path: str
    method: str | None  # None when the whole path is gone
    location: str  # "operation", "query parameter 'limit'", "response 200 (application/json)" …
    message: str

    def __str__(self) -> str:
        where = f"{self.method.upper()} {self.path}" if self.method else self.path
        return f"{where} — {self.location}: {self.message}"


def version(document: dict[str, Any]) -> str:
    """The document's ``info.version`` ("" when it has none)."""
    return str(document.get("info", {}).get("version", ""))


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """What in ``new`` breaks a client written against ``old`` ([] when nothing does).

    The rules are the module's docstring. The debatable ones, decided: enum values added
    to a *response* are not breaking (clients must tolerate values they do not know yet),
    and neither is a parameter removed (the server ignores it instead of refusing it).
    """
    changes: list[Change] = []
    old_paths, new_paths = _paths(old), _paths(new)
    for key, (path, old_item) in old_paths.items():
        if key not in new_paths:
            changes.append(Change(path, None, "path", "removed"))
            continue
        new_path, new_item = new_paths[key]
        for method in METHODS:
            if method not in old_item:
                continue
            if method not in new_item:
                changes.append(Change(path, method, "operation", "removed"))
                continue
            operation = _Operation(old, new, path, method)
            operation.compare(old_item, new_path, new_item)
            changes += operation.changes
    return changes


def _paths(document: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Path items by their template with parameter names blanked (the first one wins)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for path, item in document.get("paths", {}).items():
        out.setdefault(_TEMPLATE_PARAMETER.sub("{}", path), (path, _resolve(item, document)))
    return out


def _resolve(node: Any, document: dict[str, Any]) -> Any:
    """``node`` with its ``$ref`` (if any) followed; sibling keywords override the target."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are understood, not {ref}")
        if ref in seen:
            raise ValueError(f"reference cycle at {ref}")
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


# -- Operations --------------------------------------------------------------------------


class _Operation:
    """Compares one operation of ``old`` with the same operation of ``new``."""

    def __init__(
        self, old_doc: dict[str, Any], new_doc: dict[str, Any], path: str, method: str
    ) -> None:
        self.old_doc, self.new_doc = old_doc, new_doc
        self.path, self.method = path, method  # the old template: what the client calls
        self.changes: list[Change] = []

    def _add(self, location: str, message: str) -> None:
        self.changes.append(Change(self.path, self.method, location, message))

    def _schema_changes(self, location: str, old: Any, new: Any, side: str) -> None:
        for message in _Schemas(self.old_doc, self.new_doc, side).compare(old, new):
            self._add(location, message)

    def compare(self, old_item: dict[str, Any], new_path: str, new_item: dict[str, Any]) -> None:
        old_op = _resolve(old_item[self.method], self.old_doc)
        new_op = _resolve(new_item[self.method], self.new_doc)
        self._parameters(
            _parameters(self.path, old_item, old_op, self.old_doc),
            _parameters(new_path, new_item, new_op, self.new_doc),
        )
        self._request_body(
            _resolve(old_op.get("requestBody"), self.old_doc),
            _resolve(new_op.get("requestBody"), self.new_doc),
        )
        self._responses(old_op.get("responses", {}), new_op.get("responses", {}))
        self._security(
            old_op.get("security", self.old_doc.get("security", [])),
            new_op.get("security", self.new_doc.get("security", [])),
        )

    def _parameters(
        self, old: dict[tuple[str, Any], dict[str, Any]], new: dict[tuple[str, Any], dict[str, Any]]
    ) -> None:
        # A parameter removed is not a break: FastAPI ignores what it does not declare.
        for key, new_param in new.items():
            location = f"{new_param.get('in')} parameter '{new_param.get('name')}'"
            old_param = old.get(key)
            if old_param is None:
                if new_param.get("required"):
                    self._add(location, "new required parameter")
                continue
            if new_param.get("required") and not old_param.get("required"):
                self._add(location, "optional parameter is now required")
            self._schema_changes(
                location, _parameter_schema(old_param), _parameter_schema(new_param), "request"
            )

    def _request_body(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None:
            return  # the server ignores a body it no longer reads
        if new.get("required") and not (old or {}).get("required"):
            self._add("request body", "a request body is now required")
        if old is None:
            return
        new_content = new.get("content", {})
        for media_type, old_media in old.get("content", {}).items():
            location = f"request body ({media_type})"
            if media_type not in new_content:
                self._add(location, "content type no longer accepted")
                continue
            self._schema_changes(
                location, old_media.get("schema"), new_content[media_type].get("schema"), "request"
            )

    def _responses(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for status, old_response in old.items():
            if not _is_success(status):
                continue  # error responses may come and go: clients handle any error
            if status not in new:
                self._add(f"response {status}", "success status code removed")
                continue
            old_content = _resolve(old_response, self.old_doc).get("content", {})
            new_content = _resolve(new[status], self.new_doc).get("content", {})
            for media_type, old_media in old_content.items():
                location = f"response {status} ({media_type})"
                if media_type not in new_content:
                    self._add(location, "content type removed")
                    continue
                self._schema_changes(
                    location,
                    old_media.get("schema"),
                    new_content[media_type].get("schema"),
                    "response",
                )

    def _security(self, old: list[dict[str, list[str]]], new: list[dict[str, list[str]]]) -> None:
        """Each way of calling ``old`` accepted must still be enough for ``new``."""
        if not new:
            return

        def enough(given: dict[str, list[str]], asked: dict[str, list[str]]) -> bool:
            return all(
                name in given and set(scopes) <= set(given[name]) for name, scopes in asked.items()
            )

        for alternative in old or [{}]:
            if any(enough(alternative, asked) for asked in new):
                continue
            if not alternative:
                self._add("security", f"authentication is now required ({_schemes(new)})")
            else:
                self._add("security", f"{_schemes([alternative])} is no longer accepted")


def _is_success(status: str) -> bool:
    return str(status).upper().startswith("2")


def _schemes(requirements: list[dict[str, list[str]]]) -> str:
    def one(requirement: dict[str, list[str]]) -> str:
        return " + ".join(
            f"{name}{sorted(scopes) if scopes else ''}" for name, scopes in requirement.items()
        )

    return " or ".join(one(r) for r in requirements)


def _parameters(
    path: str, item: dict[str, Any], operation: dict[str, Any], document: dict[str, Any]
) -> dict[tuple[str, Any], dict[str, Any]]:
    """The operation's parameters (the path item's too), keyed as the wire sees them.

    Path parameters by their position in the template, headers case-insensitively, the
    others by name.
    """
    positions = {name[1:-1]: index for index, name in enumerate(_TEMPLATE_PARAMETER.findall(path))}
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
        param = _resolve(raw, document)
        where, name = param.get("in", ""), param.get("name", "")
        if where == "path":
            key: tuple[str, Any] = (where, positions.get(name, name))
        elif where == "header":
            key = (where, name.lower())
        else:
            key = (where, name)
        out[key] = param
    return out


def _parameter_schema(param: dict[str, Any]) -> Any:
    if "schema" in param:
        return param["schema"]
    for media in param.get("content", {}).values():
        return media.get("schema")
    return None


# -- Schemas -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Branch:
    """One alternative of a schema (``anyOf``/``oneOf``/a type list), with at most one type."""

    schema: dict[str, Any]
    ref: str | None  # the component it came from: what a recursive model repeats

    @property
    def type(self) -> str | None:
        return self.schema.get("type")

    @property
    def enum(self) -> list[Any] | None:
        if "const" in self.schema:
            return [self.schema["const"]]
        return self.schema.get("enum")


def _accepts(wider: str | None, narrower: str | None) -> bool:
    """Whether a value of type ``narrower`` is also one of type ``wider`` (None: any)."""
    if wider is None:
        return True
    if narrower is None:
        return False
    return wider == narrower or (wider == "number" and narrower == "integer")


def _at(pointer: str, message: str) -> str:
    return f"{pointer}: {message}" if pointer else message


def _child(pointer: str, name: str) -> str:
    return f"{pointer}.{name}" if pointer else name


class _Schemas:
    """Compares schemas of two documents for one side of an exchange.

    ``request``: ``new`` must accept every value ``old`` accepted (the client sends).
    ``response``: ``old`` must describe every value ``new`` returns (the client reads).
    """

    def __init__(self, old_doc: dict[str, Any], new_doc: dict[str, Any], side: str) -> None:
        assert side in ("request", "response")
        self.old_doc, self.new_doc, self.side = old_doc, new_doc, side

    def compare(self, old: Any, new: Any) -> list[str]:
        return self._compare(old, new, "", frozenset())

    def _compare(self, old: Any, new: Any, pointer: str, stack: frozenset[Any]) -> list[str]:
        if old is None or new is None:
            return []  # no schema on one side: nothing was promised
        old_branches = list(_branches(old, self.old_doc))
        new_branches = list(_branches(new, self.new_doc))
        if self.side == "request":
            given, taking = old_branches, new_branches  # values the client sends / who takes them
        else:
            given, taking = new_branches, old_branches  # values returned / what clients expect
        problems: list[str] = []
        for value in given:
            reasons = []
            for taker in taking:
                old_b, new_b = (value, taker) if self.side == "request" else (taker, value)
                key = (old_b.ref, new_b.ref)
                if key != (None, None) and key in stack:
                    reasons.append([])  # a recursive model met again: judged further up
                else:
                    reasons.append(self._pair(old_b, new_b, pointer, stack | {key}))
            if any(not r for r in reasons):
                continue  # some alternative takes every such value
            # Explain with the alternative meant for these values: the same component, or
            # else a compatible type with the fewest objections.
            kin = [
                (t.ref != value.ref, len(r), i, r)
                for i, (r, t) in enumerate(zip(reasons, taking, strict=True))
                if _kin(value, t, self.side)
            ]
            if kin:
                problems += min(kin)[-1]
            else:
                problems.append(_at(pointer, self._type_message(value, taking)))
        return problems

    def _type_message(self, value: _Branch, taking: list[_Branch]) -> str:
        """``value``'s type is not among those ``taking`` has."""
        kinds = "|".join(sorted({t.type or "any" for t in taking}))
        if value.type == "null":
            return "no longer accepts null" if self.side == "request" else "may now be null"
        if len(taking) == 1:
            old, new = (value, taking[0]) if self.side == "request" else (taking[0], value)
            return f"type {old.type or 'any'} → {new.type or 'any'}"
        if self.side == "request":
            return f"no longer accepts {value.type or 'any type'} (accepts {kinds})"
        return f"may now be {value.type or 'any type'} (was {kinds})"

    def _pair(self, old: _Branch, new: _Branch, pointer: str, stack: frozenset[Any]) -> list[str]:
        if self.side == "request":
            return self._narrowing(old, new, pointer, stack)
        return self._widening(old, new, pointer, stack)

    def _narrowing(
        self, old_b: _Branch, new_b: _Branch, pointer: str, stack: frozenset[Any]
    ) -> list[str]:
        """How ``new_b`` refuses values of ``old_b`` (one alternative each) a client sends."""
        old, new = old_b.schema, new_b.schema
        if not _accepts(new_b.type, old_b.type):
            return [_at(pointer, f"type {old_b.type or 'any'} → {new_b.type}")]
        problems = []
        for key in _LOWER_BOUNDS:
            if key in new and (key not in old or new[key] > old[key]):
                problems.append(_at(pointer, f"{key} {old.get(key, 'none')} → {new[key]}"))
        for key in _UPPER_BOUNDS:
            if key in new and (key not in old or new[key] < old[key]):
                problems.append(_at(pointer, f"{key} {old.get(key, 'none')} → {new[key]}"))
        for key in _EXACT:
            if key in new and old.get(key) != new[key]:
                problems.append(_at(pointer, f"{key} {old.get(key)!r} → {new[key]!r}"))
        if new_b.enum is not None and old_b.enum is None:
            problems.append(_at(pointer, f"now restricted to {new_b.enum}"))
        elif new_b.enum is not None and old_b.enum is not None:
            lost = [value for value in old_b.enum if value not in new_b.enum]
            if lost:
                problems.append(_at(pointer, f"enum no longer accepts {lost}"))
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            problems.append(_at(pointer, "items must now be unique"))
        refuses_unknown = new.get("additionalProperties") is False
        if refuses_unknown and old.get("additionalProperties") is not False:
            problems.append(_at(pointer, "unknown properties are now refused"))
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, old_prop in old_props.items():
            if name in new_props:
                problems += self._compare(old_prop, new_props[name], _child(pointer, name), stack)
            elif refuses_unknown:
                problems.append(_at(_child(pointer, name), "property removed (and now refused)"))
        old_required = set(old.get("required", []))
        for name in [n for n in new.get("required", []) if n not in old_required]:
            message = (
                "optional property is now required"
                if name in old_props
                else "new required property"
            )
            problems.append(_at(_child(pointer, name), message))
        problems += self._nested(old, new, pointer, stack)
        return problems

    def _widening(
        self, old_b: _Branch, new_b: _Branch, pointer: str, stack: frozenset[Any]
    ) -> list[str]:
        """How ``new_b`` may return what ``old_b`` did not promise (one alternative each)."""
        old, new = old_b.schema, new_b.schema
        if not _accepts(old_b.type, new_b.type):
            return [_at(pointer, f"type {old_b.type} → {new_b.type or 'any'}")]
        problems = []
        if "format" in old and old["format"] != new.get("format"):
            problems.append(_at(pointer, f"format {old['format']!r} → {new.get('format')!r}"))
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        new_required = set(new.get("required", []))
        for name, old_prop in old_props.items():
            where = _child(pointer, name)
            if name not in new_props:
                problems.append(_at(where, "property removed"))
                continue
            if name in old.get("required", []) and name not in new_required:
                problems.append(_at(where, "required property is now optional (may be absent)"))
            problems += self._compare(old_prop, new_props[name], where, stack)
        problems += self._nested(old, new, pointer, stack)
        return problems

    def _nested(
        self, old: dict[str, Any], new: dict[str, Any], pointer: str, stack: frozenset[Any]
    ) -> list[str]:
        """Array items and the values of maps (``additionalProperties`` schemas)."""
        problems = []
        if "items" in old or "items" in new:
            problems += self._compare(
                old.get("items", {}), new.get("items", {}), f"{pointer}[]", stack
            )
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            problems += self._compare(old_extra, new_extra, _child(pointer, "*"), stack)
        return problems


def _kin(value: _Branch, taker: _Branch, side: str) -> bool:
    """Whether ``taker`` is the alternative meant for ``value`` (same or compatible type)."""
    if side == "request":
        return _accepts(taker.type, value.type)
    return _accepts(taker.type, value.type) or _accepts(value.type, taker.type)


def _branches(
    schema: Any,
    document: dict[str, Any],
    ref: str | None = None,
    expanding: frozenset[str] = frozenset(),
) -> Iterator[_Branch]:
    """The alternatives ``schema`` accepts, each with at most one ``type``.

    Each remembers the component it was reached through (``ref``); a component that is an
    alternative of itself (``A = A | null``) adds nothing and is expanded once.
    """
    if schema is True or schema is None:
        schema = {}
    if schema is False:
        return  # accepts nothing: no alternative
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in expanding:
            return
        expanding |= {ref}
        schema = _resolve(schema, document)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            for branch in schema[key]:
                if branch is False:
                    continue
                # The branch's own keywords win over the shared ones (title, default …).
                merged = {**rest, **(branch if isinstance(branch, dict) else {})}
                yield from _branches(merged, document, ref, expanding)
            return
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(_resolve(part, document))
        yield from _branches(merged, document, ref, expanding)
        return
    kinds = schema.get("type")
    if isinstance(kinds, list):
        for kind in kinds:
            yield _Branch({**schema, "type": kind}, ref)
        return
    yield _Branch(schema, ref)
