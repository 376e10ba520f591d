"""Merge the services' OpenAPI documents into the one the gateway serves.

Each service serves its own document with its public paths (``/api/v1/auth/...``).
The merged document keeps only the paths the gateway actually routes to that
service (``/healthz``, ``/metrics`` and friends are not reachable from outside), and
keeps component names unique: a name two services define differently is prefixed
with the service name (``courses_Page``) and every ``$ref`` to it is rewritten.
Identical definitions (FastAPI's ``HTTPValidationError``, say) are shared.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.settings import SERVICE_PREFIXES

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_REF_PREFIX = "#/components/"


def merge_openapi(
    docs: dict[str, dict[str, Any]], *, title: str = "Unpuzzle API", version: str = "v1"
) -> dict[str, Any]:
    """Merge ``{service name: OpenAPI document}`` into one document.

    A path is taken only from the service the gateway routes it to, so two services
    can never both document one operation.
    """
    renames = _component_renames(docs)
    merged: dict[str, Any] = {
        "openapi": _openapi_version(docs),
        "info": {"title": title, "version": version},
        "paths": {},
        "components": {},
    }
    tags: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for service, doc in sorted(docs.items()):
        rename = renames.get(service, {})
        doc = _rewrite(copy.deepcopy(doc), rename)
        _merge_paths(merged["paths"], service, doc.get("paths", {}), operation_ids)
        _merge_components(merged["components"], doc.get("components", {}), service, rename)
        for tag in doc.get("tags", []):
            tags.setdefault(tag["name"], tag)
    if tags:
        merged["tags"] = list(tags.values())
    return merged


def _openapi_version(docs: dict[str, dict[str, Any]]) -> str:
    versions = sorted({doc.get("openapi", "3.1.0") for doc in docs.values()})
    return versions[-1] if versions else "3.1.0"


def _routed(service: str, path: str) -> bool:
    """True when the gateway sends ``path`` to ``service`` (same rule as nginx.conf)."""
    return any(
        path == prefix or path.startswith(prefix + "/")
        for prefix in SERVICE_PREFIXES.get(service, ())
    )


def _merge_paths(
    target: dict[str, Any], service: str, paths: dict[str, Any], operation_ids: set[str]
) -> None:
    for path, item in paths.items():
        if not _routed(service, path):
            continue  # e.g. /healthz, /metrics: served by the service, not via the gateway
        for key, operation in item.items():
            if key in HTTP_METHODS:
                _unique_operation_id(operation, service, operation_ids)
        target[path] = item


def _unique_operation_id(operation: dict[str, Any], service: str, seen: set[str]) -> None:
    operation_id = operation.get("operationId")
    if operation_id is None:
        return
    if operation_id in seen:
        operation_id = f"{service}_{operation_id}"
        operation["operationId"] = operation_id
    seen.add(operation_id)


def _merge_components(
    target: dict[str, Any], components: dict[str, Any], service: str, rename: dict
) -> None:
    for section, entries in components.items():
        merged_section = target.setdefault(section, {})
        for name, definition in entries.items():
            merged_section[rename.get((section, name), name)] = definition


def _component_renames(docs: dict[str, dict[str, Any]]) -> dict[str, dict[tuple[str, str], str]]:
    """Per service, the components that must be prefixed: {(section, name): new name}.

    A name clashes when two services define it differently. Renaming one component
    changes the definitions that refer to it, which can make two previously equal
    definitions differ: so iterate until no new clash appears.
    """
    definers: dict[tuple[str, str], list[str]] = {}
    for service, doc in docs.items():
        for section, entries in doc.get("components", {}).items():
            for name in entries:
                definers.setdefault((section, name), []).append(service)
    shared = {key: services for key, services in definers.items() if len(services) > 1}

    clashing: set[tuple[str, str]] = set()
    while True:
        renames = {
            service: {key: f"{service}_{key[1]}" for key in clashing if service in definers[key]}
            for service in docs
        }
        newly_clashing = {
            key
            for key, services in shared.items()
            if key not in clashing
            and len(
                {
                    repr(_rewrite(copy.deepcopy(_component(docs[s], key)), renames[s]))
                    for s in services
                }
            )
            > 1
        }
        if not newly_clashing:
            return renames
        clashing |= newly_clashing


def _component(doc: dict[str, Any], key: tuple[str, str]) -> Any:
    section, name = key
    return doc["components"][section][name]


def _rewrite(node: Any, rename: dict[tuple[str, str], str]) -> Any:
    """Rewrite ``$ref``s, discriminator mappings and security requirements in place."""
    if not rename:
        return node
    if isinstance(node, list):
        return [_rewrite(item, rename) for item in node]
    if not isinstance(node, dict):
        return node
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            node[key] = _rewrite_ref(value, rename)
        elif key == "discriminator" and isinstance(value, dict) and "mapping" in value:
            mapping = value["mapping"]
            value["mapping"] = {k: _rewrite_ref(v, rename) for k, v in mapping.items()}
        elif key == "security" and isinstance(value, list):
            node[key] = [_rewrite_security(req, rename) for req in value]
        else:
            node[key] = _rewrite(value, rename)
    return node


def _rewrite_ref(ref: Any, rename: dict[tuple[str, str], str]) -> Any:
    if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
        return ref
    section, _, name = ref[len(_REF_PREFIX) :].partition("/")
    new_name = rename.get((section, name))
    return f"{_REF_PREFIX}{section}/{new_name}" if new_name else ref


def _rewrite_security(requirement: Any, rename: dict[tuple[str, str], str]) -> Any:
    # Security requirements name their schemes directly, not through a $ref.
    if not isinstance(requirement, dict):
        return requirement
    return {
        rename.get(("securitySchemes", scheme), scheme): scopes
        for scheme, scopes in requirement.items()
    }
