"""Regenerate the committed JSON Schemas of the events (``make contracts``).

For each event type of ``unpuzzle_common.events.schemas.EVENT_TYPES`` the JSON Schema of
its ``data`` — in pydantic's validation mode, i.e. what consumers accept — is written to
``tests/contract/events/<type>.json``, pretty-printed with sorted keys, so a change to an
event shows up as a readable diff in review.

Within one version (``….v1``) an event may only grow (DESIGN §4): a new optional field,
a wider type. A change that would make consumers refuse what producers of the same
version send — a field removed, a type narrowed, a new constraint, an optional field made
required — is **refused** here: publish it as ``….v2`` beside ``….v1`` instead. Likewise a
type's schema is kept until a later version of it exists. ``--force`` writes anyway, for
a deliberate break that every consumer's owner has agreed to.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = Path(__file__).resolve().parent / "events"

_VERSIONED = re.compile(r"^(?P<name>.+)\.v(?P<version>\d+)$")


def event_types() -> dict[str, Any]:
    """The event types of this checkout, each with the pydantic model of its ``data``."""
    from unpuzzle_common.events.schemas import EVENT_TYPES

    return dict(EVENT_TYPES)


def producer_of(event_type: str) -> str:
    """The service whose stream carries ``event_type`` (by its domain, the first word)."""
    from unpuzzle_common.events.jetstream import PRODUCED_DOMAINS

    domain = event_type.split(".", 1)[0]
    owners = [service for service, domains in PRODUCED_DOMAINS.items() if domain in domains]
    if len(owners) != 1:
        raise ValueError(f"{event_type}: produced by {owners or 'no service'} (PRODUCED_DOMAINS)")
    return owners[0]


def schema_path(event_type: str) -> Path:
    return SCHEMAS_DIR / f"{event_type}.json"


def build_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of ``event_type``'s data as the code describes it now."""
    model = event_types()[event_type]
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["x-event-type"] = event_type
    schema["x-producer"] = producer_of(event_type)
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def superseded(event_type: str, current: set[str]) -> bool:
    """Whether a later version of ``event_type`` exists among ``current``."""
    match = _VERSIONED.match(event_type)
    if not match:
        return False
    for other in current:
        later = _VERSIONED.match(other)
        if (
            later
            and later["name"] == match["name"]
            and int(later["version"]) > int(match["version"])
        ):
            return True
    return False


# -- Compatibility: does the new schema accept everything the old one accepted? ------

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "const")


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How ``new`` refuses data that ``old`` accepted ([] when it accepts all of it).

    Understands the JSON Schema pydantic writes: objects with ``properties`` and
    ``required``, ``$ref`` into ``$defs``, ``anyOf``/``oneOf`` (optional fields), arrays,
    type lists, numeric and length bounds, ``pattern``, ``format``, ``enum``, ``const``
    and ``additionalProperties``. A field removed from ``properties`` counts as breaking
    even though an object without the keyword would still accept it: consumers may
    rely on it.
    """
    problems: list[str] = []
    _compare(old, old, new, new, "data", problems)
    return problems


def _resolve(schema: Any, doc: dict[str, Any]) -> dict[str, Any]:
    if schema is True or schema is None:
        return {}
    if schema is False:
        return {"not": {}}
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are understood, not {ref}")
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
        if seen > 50:
            raise ValueError(f"reference cycle at {ref}")
    return schema


def _branches(schema: Any, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives a schema accepts, each with at most one ``type``."""
    schema = _resolve(schema, doc)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            out: list[dict[str, Any]] = []
            for branch in schema[key]:
                out.extend(_branches({**rest, **_resolve(branch, doc)}, doc))
            return out
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(_resolve(part, doc))
        return _branches(merged, doc)
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return [{**schema, "type": kind} for kind in kinds]
    return [schema]


def _type_accepts(old: str | None, new: str | None) -> bool:
    if new is None:
        return True
    if old is None:
        return False
    return old == new or (old == "integer" and new == "number")


def _narrowing(
    old: dict[str, Any],
    old_doc: dict[str, Any],
    new: dict[str, Any],
    new_doc: dict[str, Any],
    path: str,
) -> list[str]:
    """Why ``new`` (one branch) refuses some of what ``old`` (one branch) accepts."""
    old_type, new_type = old.get("type"), new.get("type")
    if not _type_accepts(old_type, new_type):
        return [f"{path}: type {old_type or 'any'} narrowed to {new_type}"]
    problems = []
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            problems.append(f"{path}: {key} {old.get(key, 'none')} → {new[key]}")
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            problems.append(f"{path}: {key} {old.get(key, 'none')} → {new[key]}")
    for key in _EXACT:
        if key in new and old.get(key) != new[key]:
            problems.append(f"{path}: {key} {old.get(key, 'none')!r} → {new[key]!r}")
    if "enum" in new:
        lost = (
            [value for value in old["enum"] if value not in new["enum"]]
            if "enum" in old
            else ["(any value)"]
        )
        if lost:
            problems.append(f"{path}: enum no longer accepts {lost}")
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        problems.append(f"{path}: additional properties are now refused")
    if "properties" in old or "properties" in new:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, old_prop in old_props.items():
            if name not in new_props:
                problems.append(f"{path}.{name}: field removed")
                continue
            _compare(old_prop, old_doc, new_props[name], new_doc, f"{path}.{name}", problems)
        for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
            problems.append(f"{path}.{name}: field is now required")
    if "items" in old or "items" in new:
        _compare(
            old.get("items", {}), old_doc, new.get("items", {}), new_doc, f"{path}[]", problems
        )
    return problems


def _compare(
    old: Any,
    old_doc: dict[str, Any],
    new: Any,
    new_doc: dict[str, Any],
    path: str,
    problems: list[str],
) -> None:
    new_branches = _branches(new, new_doc)
    for old_branch in _branches(old, old_doc):
        reasons = [
            _narrowing(old_branch, old_doc, new_branch, new_doc, path)
            for new_branch in new_branches
        ]
        if any(not r for r in reasons):
            continue  # some alternative of the new schema accepts all of this one
        same_type = [
            r
            for r, branch in zip(reasons, new_branches, strict=True)
            if branch.get("type") == old_branch.get("type")
        ]
        if len(same_type) == 1:
            problems.extend(same_type[0])
        else:
            kinds = "|".join(sorted({str(b.get("type", "any")) for b in new_branches}))
            problems.append(f"{path}: type {old_branch.get('type', 'any')} narrowed to {kinds}")


# -- The command -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--force", action="store_true", help="write breaking changes too (agreed breaks only)"
    )
    args = parser.parse_args(argv)
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    current = event_types()
    refused: list[str] = []
    for event_type in sorted(current):
        path = schema_path(event_type)
        schema = build_schema(event_type)
        if path.exists() and not args.force:
            breaks = breaking_changes(json.loads(path.read_text()), schema)
            if breaks:
                refused.append(f"{event_type}:\n  " + "\n  ".join(breaks))
                continue
        text = render(schema)
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        print(f"{'updated' if changed else 'unchanged'} {path.relative_to(REPO)}")
    for stale in sorted(SCHEMAS_DIR.glob("*.json")):
        if stale.stem in current:
            continue
        if superseded(stale.stem, set(current)) or args.force:
            stale.unlink()
            print(f"removed {stale.relative_to(REPO)} (no such event type)")
        else:
            refused.append(f"{stale.stem}: removed without a later version replacing it")
    if refused:
        print(
            "refused: these changes break consumers of the same version; publish them as a "
            "new version beside the old one (DESIGN §4), or pass --force:\n" + "\n".join(refused),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
