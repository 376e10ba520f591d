"""Events: what producers build is what consumers accept, and v1 only ever grows.

- Every event type's JSON Schema is committed under ``events/`` (``make contracts``);
  a change to a type shows as a diff, and a change that would break its consumers
  (a field removed, a type narrowed, a field made required) is refused unless the
  type's version changes (DESIGN §4).
- A payload each producer builds travels as its envelope and is accepted by the
  model consumers import and by the committed schema.
- Consumers ignore fields they do not know yet (additions keep ``v1``).
- Producers pass only fields the schema has (a misspelt one would be dropped silently:
  the models ignore unknown fields), and only the owning service produces a type.
- Consumers register handlers only for known types, with the shared models.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import difflib
import importlib
import importlib.util
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import event_samples
import pytest
import regenerate
import regenerate_events
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, create_model

from unpuzzle_common.events import (
    EVENT_TYPES,
    PRODUCED_DOMAINS,
    Envelope,
    EventData,
    EventRouter,
    parse_data,
)

SERVICES_DIR = regenerate.SERVICES_DIR
MAX_DIFF_LINES = 150
#: The model class of each type, by class name (how producer code names them).
MODELS_BY_NAME = {model.__name__: model for model in EVENT_TYPES.values()}


def _service_packages() -> list[tuple[str, Path]]:
    return [(name, SERVICES_DIR / name / f"{name}_service") for name in regenerate.services()]


def _committed(event_type: str) -> dict[str, Any]:
    return json.loads(regenerate_events.schema_path(event_type).read_text())


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def samples() -> list[Any]:
    return asyncio.run(event_samples.producer_samples())


# -- Committed schemas -----------------------------------------------------------------


def test_every_event_type_has_a_committed_schema_and_every_schema_a_type():
    committed = {path.stem for path in regenerate_events.SCHEMAS_DIR.glob("*.json")}
    current = set(EVENT_TYPES)
    stale = {t for t in committed - current if not regenerate_events.superseded(t, current)}
    assert committed >= current and not stale, (
        f"missing: {sorted(current - committed)}, removed without a later version: "
        f"{sorted(stale)}; run `make contracts`"
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_schema_matches_the_committed_snapshot(event_type: str):
    path = regenerate_events.schema_path(event_type)
    assert path.exists(), f"{path} is missing: run `make contracts` and commit it"
    committed = _committed(event_type)
    current = regenerate_events.build_schema(event_type)
    breaks = regenerate_events.breaking_changes(committed, current)
    if breaks:
        pytest.fail(
            f"{event_type} changed in a way its consumers would refuse:\n  "
            + "\n  ".join(breaks)
            + "\nWithin a version an event may only grow (new optional fields, wider types). "
            "Publish the change as a new version beside this one (DESIGN §4).",
            pytrace=False,
        )
    committed_text, current_text = path.read_text(), regenerate_events.render(current)
    if committed_text != current_text:
        name = f"tests/contract/events/{event_type}.json"
        diff = list(
            difflib.unified_diff(
                committed_text.splitlines(),
                current_text.splitlines(),
                f"committed {name}",
                f"current {name}",
                lineterm="",
            )
        )[:MAX_DIFF_LINES]
        pytest.fail(
            f"the schema of {event_type} differs from {name} (compatibly).\n"
            "Run `make contracts` and commit the result.\n\n" + "\n".join(diff),
            pytrace=False,
        )


def test_committed_schemas_leave_room_for_additions():
    def closed(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("additionalProperties") is False:
                yield node.get("title", "?")
            for value in node.values():
                yield from closed(value)
        elif isinstance(node, list):
            for value in node:
                yield from closed(value)

    for event_type in EVENT_TYPES:
        assert list(closed(_committed(event_type))) == [], event_type


# -- Producers' payloads against consumers' schemas -------------------------------------


def test_every_event_type_has_a_producer_sample(samples):
    assert {s.event_type for s in samples} == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_producer_payload_travels_and_fits_the_consumers_schema(event_type: str, samples):
    mine = [s for s in samples if s.event_type == event_type]
    assert mine, f"no sample of {event_type} in event_samples.py"
    validator = _validator(_committed(event_type))
    for sample in mine:
        envelope = sample.envelope()
        assert envelope.source == regenerate_events.producer_of(event_type), sample.built_by
        received = Envelope.from_json(envelope.to_json())  # as a consumer gets it off NATS
        assert received == envelope
        assert received.parsed() == sample.data, sample.built_by
        assert received.subject == sample.data.default_subject(), sample.built_by
        errors = [e.message for e in validator.iter_errors(received.data)]
        assert errors == [], f"{sample.built_by}: {errors}"


def _with_additions(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a later v1 producer could send it: unknown fields, nested ones too."""
    grown = copy.deepcopy(data)
    grown["added_in_a_later_v1"] = {"nested": [1, "two", None]}
    for value in grown.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    item["also_added_later"] = True
    return grown


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_consumers_tolerate_fields_added_later(event_type: str, samples):
    for sample in (s for s in samples if s.event_type == event_type):
        wire = json.loads(sample.envelope().to_json())
        grown = {**wire, "data": _with_additions(wire["data"]), "added_to_the_envelope": 1}
        received = Envelope.from_json(json.dumps(grown))
        assert received.parsed() == sample.data, sample.built_by
        assert parse_data(event_type, grown["data"]) == sample.data
        errors = [e.message for e in _validator(_committed(event_type)).iter_errors(grown["data"])]
        assert errors == [], errors


def test_a_consumer_refuses_data_missing_a_required_field(samples):
    """The other side of tolerance: what the schema requires, consumers insist on."""
    for sample in samples:
        model = type(sample.data)
        data = sample.data.model_dump(mode="json")
        for name, field in model.model_fields.items():
            if field.is_required():
                broken = {k: v for k, v in data.items() if k != name}
                with pytest.raises(ValueError):
                    parse_data(sample.event_type, broken)


# -- What producer code builds, statically ----------------------------------------------


def _python_files() -> Iterator[tuple[str, Path]]:
    for service, package in _service_packages():
        for path in sorted(package.rglob("*.py")):
            yield service, path


def _event_constructions() -> Iterator[tuple[str, Path, ast.Call, type[EventData]]]:
    """Every ``SomeEvent(...)`` call in the services' code, with its model."""
    for service, path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in MODELS_BY_NAME:
                yield service, path, node, MODELS_BY_NAME[name]


def test_producers_pass_only_fields_the_schema_has():
    found, problems = 0, []
    for _, path, call, model in _event_constructions():
        found += 1
        where = f"{path.relative_to(regenerate.REPO)}:{call.lineno} {model.__name__}"
        if call.args:
            problems.append(f"{where}: positional arguments")
        names = {k.arg for k in call.keywords if k.arg is not None}
        unknown = names - set(model.model_fields)
        if unknown:
            problems.append(f"{where}: {sorted(unknown)} are not fields (silently dropped)")
        spread = any(k.arg is None for k in call.keywords)
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        if not spread and required - names:
            problems.append(f"{where}: required {sorted(required - names)} not passed")
    assert found, "no event is built anywhere under services/"
    assert problems == []


def _outbox_writes() -> Iterator[tuple[str, str, ast.Call, dict[str, Any]]]:
    """Every ``add_event(...)`` call in the services' code, with its module's constants."""
    for service, path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "add_event":
                where = f"{path.relative_to(regenerate.REPO)}:{node.lineno}"
                yield service, where, node, constants


def test_only_the_owning_service_writes_an_event_type_to_its_outbox():
    problems, found = [], 0
    for service, where, call, constants in _outbox_writes():
        found += 1
        source = next((k.value for k in call.keywords if k.arg == "source"), None)
        if isinstance(source, ast.Constant):
            value = source.value
        elif isinstance(source, ast.Name):
            value = constants.get(source.id)
        else:
            value = None
        if value != service:
            problems.append(f"{where}: source={value!r} in service {service}")
        data = call.args[2] if len(call.args) > 2 else None
        if isinstance(data, ast.Call):
            name = getattr(data.func, "id", None) or getattr(data.func, "attr", None)
            model = MODELS_BY_NAME.get(name)
            if model and regenerate_events.producer_of(model.event_type) != service:
                problems.append(f"{where}: {service} writes {model.event_type}")
    assert found, "no add_event call under services/"
    assert problems == []


def test_no_service_defines_an_event_model_of_its_own():
    names = {"EventData", *MODELS_BY_NAME}
    own = []
    for _, path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if bases & names:
                    own.append(f"{path.relative_to(regenerate.REPO)}:{node.lineno} {node.name}")
    assert own == [], "event schemas live in unpuzzle_common.events.schemas only"


def test_every_event_type_is_carried_by_its_producers_stream():
    for event_type in EVENT_TYPES:
        assert regenerate_events.producer_of(event_type) in PRODUCED_DOMAINS


# -- Consumers' registrations -------------------------------------------------------------


def _events_modules() -> list[str]:
    return [service for service, package in _service_packages() if (package / "events.py").exists()]


def _routers(service: str) -> list[EventRouter]:
    """The EventRouters a service's events module defines or builds."""
    with regenerate.offline_env(service):
        module = importlib.import_module(f"{service}_service.events")
        routers = [value for value in vars(module).values() if isinstance(value, EventRouter)]
        build = getattr(module, "build_router", None)
        if callable(build):
            parameters = inspect.signature(build).parameters
            settings = importlib.import_module(f"{service}_service.settings").Settings()
            routers.append(build(settings) if parameters else build())
    return routers


@pytest.mark.parametrize("service", _events_modules())
def test_consumers_register_only_known_event_types(service: str):
    routers = _routers(service)
    registered = {t for router in routers for t in router.event_types}
    assert registered <= set(EVENT_TYPES), sorted(registered - set(EVENT_TYPES))
    for event_type in registered:
        regenerate_events.producer_of(event_type)  # some service's stream carries it


@pytest.mark.parametrize("service", regenerate.services())
def test_event_models_named_in_registrations_are_the_shared_ones(service: str):
    """Every decorator naming an event model (``@router.on(X)``, ``@_extracts(X, Y)``)."""
    package = f"{service}_service"
    with regenerate.offline_env(service):
        for path in sorted((SERVICES_DIR / service / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            named = [
                arg.id
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                for decorator in node.decorator_list
                if isinstance(decorator, ast.Call)
                for arg in decorator.args
                if isinstance(arg, ast.Name)
            ]
            if not named:
                continue
            relative = path.relative_to(SERVICES_DIR / service).with_suffix("")
            module = importlib.import_module(".".join(relative.parts))
            for name in named:
                value = getattr(module, name, None)
                if inspect.isclass(value) and issubclass(value, EventData):
                    assert EVENT_TYPES.get(value.event_type) is value, (
                        f"{path}: {name} is not the model of a known event type"
                    )


# -- The compatibility check itself ------------------------------------------------------


class _Lesson(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lesson_id: str
    title: str | None = None


class _V1(EventData):
    event_type: ClassVar[str] = "thing.happened.v1"
    subject_field: ClassVar[str] = "thing_id"
    thing_id: str
    amount: int = Field(ge=0)
    ratio: float
    note: str | None = None
    kind: str = Field(default="a", json_schema_extra={"enum": ["a", "b"]})
    lessons: list[_Lesson] | None = None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="validation")


def _variant(**fields: Any) -> type[BaseModel]:
    """_V1 with some fields replaced (a value of None removes the field)."""
    annotations = {name: (field.annotation, field) for name, field in _V1.model_fields.items()}
    for name, value in fields.items():
        if value is None:
            annotations.pop(name)
        else:
            annotations[name] = value
    return create_model("_V1", __base__=EventData, **annotations)


def test_compatibility_check_allows_what_consumers_survive():
    old = _schema(_V1)
    assert regenerate_events.breaking_changes(old, old) == []
    grown = _variant(added=(int | None, Field(default=None)))
    assert regenerate_events.breaking_changes(old, _schema(grown)) == []
    wider = _variant(amount=(float, Field(ge=0)), note=(str | int | None, Field(default=None)))
    assert regenerate_events.breaking_changes(old, _schema(wider)) == []
    relaxed = _variant(ratio=(float | None, Field(default=None)))
    assert regenerate_events.breaking_changes(old, _schema(relaxed)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"note": None}, "data.note: field removed"),
        ({"amount": (str, Field())}, "data.amount: type integer narrowed to string"),
        ({"ratio": (int, Field())}, "data.ratio: type number narrowed to integer"),
        ({"amount": (int, Field(ge=1))}, "data.amount: minimum 0 → 1"),
        ({"note": (str, Field())}, "data.note"),
        ({"thing_id": (str, Field(pattern="^t"))}, "data.thing_id: pattern"),
        ({"added": (int, Field())}, "data.added: field is now required"),
        (
            {"kind": (str, Field(default="a", json_schema_extra={"enum": ["a"]}))},
            "data.kind: enum no longer accepts ['b']",
        ),
    ],
)
def test_compatibility_check_refuses_breaking_changes(change: dict[str, Any], expected: str):
    breaks = regenerate_events.breaking_changes(_schema(_V1), _schema(_variant(**change)))
    assert any(expected in b for b in breaks), breaks


def test_compatibility_check_follows_nested_models():
    class _Narrower(BaseModel):
        lesson_id: str

    class _Wider(BaseModel):
        lesson_id: str
        title: str | None = None
        position: int | None = None

    old = _schema(_V1)
    narrowed = _variant(lessons=(list[_Narrower] | None, Field(default=None)))
    assert "data.lessons[].title: field removed" in regenerate_events.breaking_changes(
        old, _schema(narrowed)
    )
    widened = _variant(lessons=(list[_Wider] | None, Field(default=None)))
    assert regenerate_events.breaking_changes(old, _schema(widened)) == []
    not_a_list = _variant(lessons=(_Wider | None, Field(default=None)))
    assert regenerate_events.breaking_changes(old, _schema(not_a_list))


def test_a_later_version_may_replace_a_type():
    current = {"thing.happened.v2", "other.v1"}
    assert regenerate_events.superseded("thing.happened.v1", current)
    assert not regenerate_events.superseded("thing.happened.v3", current)
    assert not regenerate_events.superseded("other.v1", current)
