"""Schemathesis against every service's OpenAPI, through the gateway (issue 9, fuzzing).

One test per service. The operations the gateway's merged document
(``/api/v1/openapi.json``) routes to that service are sent through the gateway URL
with a valid access token, in two passes:

1. **schemathesis**: cases generated from the document, ``FUZZ_EXAMPLES`` per
   operation with data that fits the schema (positive) and as many with data that
   does not (negative);
2. **hostile values**: a few schema-valid cases per operation, each query and top-level
   body field in turn replaced by a value schemas rarely forbid but databases and date
   arithmetic choke on — a NUL byte in a string, 2**63 for an integer, the first or the
   last day for a date.

Every response must hold:

- ``not_a_server_error``: no 5xx;
- ``problem_json``: every error is ``application/problem+json`` with ``type``,
  ``title``, ``status`` (the response's) and ``detail`` strings (DESIGN.md §3);
- ``content_type_conformance``, ``response_schema_conformance``: a documented status
  answers with a documented media type and a body matching the documented schema.

The caller is a fuzz account with every role (student, instructor, admin: promoted by
the stack's admin, never the admin itself), so role checks let requests reach the
handlers. Path parameters are drawn at random and from a small world that account owns
(a published course with a section and a lesson it is enrolled in, a doomed course the
DELETEs may delete, a pending payment for another instructor's paid course, an upload,
an AI tutor session, its own sign-in session): random ids reach the 404 paths, the
world's the handlers' bodies. Reads run first and deletes last.

Bounded and reproducible: ``derandomize=True``, no shrinking, no example database. A
gateway 429 with a short ``Retry-After`` is waited out and the request sent again (the
suite's stack should raise the gateway's per-user/per-address limits: see
``_examples``).

A real bug goes in ``KNOWN_BUGS`` (operation → check → what is wrong): the suite stays
green and the list visible; an entry that no longer shows is reported as a warning.
Anything else fails the service's test with each failing request as curl and the
response.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure, FlakyReplay, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

#: The public path prefixes of each service, as the gateway routes them
#: (gateway/settings.py SERVICE_PREFIXES; not imported: the e2e suite runs under a plain
#: `pytest` too, where the repository root is not importable).
#: `test_every_operation_belongs_to_a_fuzzed_service` catches a prefix missing here.
SERVICE_PREFIXES: dict[str, tuple[str, ...]] = {
    "auth": ("/api/v1/auth",),
    "courses": ("/api/v1/categories", "/api/v1/courses", "/api/v1/enrollments"),
    "media": ("/api/v1/media",),
    "ai": ("/api/v1/ai",),
    "payments": ("/api/v1/payments",),
    "analytics": ("/api/v1/analytics",),
}

#: Cases per operation and generation mode when the stack raises the gateway's per-user
#: and per-address rate limits; at the defaults (10 r/s per user) the run would spend
#: minutes waiting out 429s, so it fuzzes lighter.
FUZZ_EXAMPLES = 25
FUZZ_EXAMPLES_AT_DEFAULT_LIMITS = 5
#: Schema-valid cases per operation whose fields are made hostile one at a time.
HOSTILE_BASES = 2

#: Operations fuzzed by a new fuzz account each, and why (by method and path prefix).
FRESH_ACCOUNT: dict[str, str] = {
    "POST /api/v1/ai": "the free plan allows an account 20 AI requests a day",
}

#: Operations fuzzed with a restriction: ``"skip"`` (not at all) or ``"negative"``
#: (only with data the schema refuses, which validation rejects before the handler).
RESTRICTED: dict[str, tuple[str, str]] = {
    # Every failed sign-in counts against the client address (auth: 20 per 15 min, then
    # 429 for every sign-in from it): schema-valid fuzzing would lock the other journeys
    # of the shared stack out.
    "POST /api/v1/auth/signin": ("negative", "failed sign-ins lock the test address out"),
}

#: Real bugs this fuzzing found, not fixed yet: operation ("METHOD /path" as in the
#: merged document) → check → what is wrong. ``"*"`` applies to every operation.
#: Failures listed here are tolerated (and printed); remove an entry with its fix.
KNOWN_BUGS: dict[str, dict[str, str]] = {
    # Empty: the first runs found 500s on NUL bytes and out-of-range numbers and dates,
    # a 500 that left a dead keepalive connection in nginx's pool (the next POST got a
    # 502), and errors documented as FastAPI's JSON instead of problem+json; all fixed.
}

#: Longest gateway 429 waited out before sending the request again; a longer
#: ``Retry-After`` (the AI daily limit, a sign-in lockout) is an answer to check.
RETRY_429_MAX_WAIT = 3.0
RETRY_429_ATTEMPTS = 20
REQUEST_TIMEOUT = 30.0

#: An integer past PostgreSQL's bigint (so past integer too).
HUGE_INT = 2**63
#: The first and the last day a date can name: arithmetic on them overflows.
EXTREME_DATES = ("0001-01-01", "9999-12-31")


# -- The fuzz account and its world ------------------------------------------------------


@dataclass
class World:
    """The fuzz account's token and the ids its requests may use as path parameters."""

    url: str
    #: The stack admin's token: it promotes fuzz accounts (and is never fuzzed with).
    admin: dict[str, str]
    token: str
    #: ``"<any|keep|delete> <path prefix>"`` → path parameter values. "keep" ones are for
    #: every method but DELETE, "delete" ones only for DELETE; the longest prefix wins.
    params: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return _bearer(self.token)

    def path_parameters(self, method: str, path: str) -> dict[str, str]:
        names = {segment[1:-1] for segment in path.split("/") if segment.startswith("{")}
        scope = "delete" if method.upper() == "DELETE" else "keep"
        values: dict[str, str] = {}
        for key in sorted(self.params, key=lambda k: (len(k.partition(" ")[2]), k)):
            kind, _, prefix = key.partition(" ")
            if kind in (scope, "any") and path.startswith(prefix):
                values.update(self.params[key])
        return {name: value for name, value in values.items() if name in names}

    def with_fresh_account(self) -> World:
        """This world seen by a new fuzz account with its own AI tutor session (the free
        plan allows an account 20 AI requests a day)."""
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT) as http:
            token = _fuzz_account(http, self.admin)
            course = self.params["any /api/v1/courses"]["course_ref"]
            tutor = _tutor_session(http, _bearer(token), course)
        params = {**self.params, "any /api/v1/ai/sessions": {"session_id": tutor}}
        return World(self.url, self.admin, token, params)


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json() if response.content else {}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _signup(http: httpx.Client, role: str) -> dict[str, Any]:
    body = {
        "email": f"fuzz-{uuid.uuid4().hex[:12]}@example.com",
        "password": "correct horse battery staple",
        "full_name": "Fuzz Account",
        "role": role,
    }
    return _ok(http.post("/api/v1/auth/signup", json=body), 201) | {"password": body["password"]}


def _fuzz_account(http: httpx.Client, admin: dict[str, str]) -> str:
    """A new account with every role: its access token."""
    account = _signup(http, "instructor")
    _ok(
        http.put(
            f"/api/v1/auth/users/{account['user']['id']}/roles",
            json={"roles": ["student", "instructor", "admin"]},
            headers=admin,
        )
    )
    # Roles show in the next token.
    signin = {"email": account["user"]["email"], "password": account["password"]}
    return _ok(http.post("/api/v1/auth/signin", json=signin))["access_token"]


def _tutor_session(http: httpx.Client, headers: dict[str, str], course_id: str) -> str:
    body = {"session_type": "chat", "course_id": course_id}
    return _ok(http.post("/api/v1/ai/sessions", json=body, headers=headers), 201)["id"]


def _course(http: httpx.Client, headers: dict[str, str], *, price: int) -> dict[str, str]:
    """A published course with one section and one lesson: its ids."""
    body = {"title": f"Fuzz {uuid.uuid4().hex[:8]}", "price": price, "currency": "usd"}
    course = _ok(http.post("/api/v1/courses", json=body, headers=headers), 201)
    base = f"/api/v1/courses/{course['id']}"
    section = _ok(http.post(f"{base}/sections", json={"title": "One"}, headers=headers), 201)
    lesson = _ok(
        http.post(
            f"{base}/sections/{section['id']}/lessons",
            json={"title": "First", "content": "<p>Fuzz.</p>"},
            headers=headers,
        ),
        201,
    )
    _ok(http.post(f"{base}/publish", headers=headers))
    return {"course_ref": course["id"], "section_id": section["id"], "lesson_id": lesson["id"]}


def build_world(url: str, admin_email: str, admin_password: str) -> World:
    """Sign the fuzz account up, give it every role, and make the things it owns."""
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as http:
        signin = {"email": admin_email, "password": admin_password}
        admin = _bearer(_ok(http.post("/api/v1/auth/signin", json=signin))["access_token"])
        token = _fuzz_account(http, admin)
        headers = _bearer(token)
        # Whose roles PUT /users/{id}/roles may change (never an admin's).
        bystander = _signup(http, "student")["user"]["id"]

        free = _course(http, headers, price=0)
        _ok(http.post(f"/api/v1/courses/{free['course_ref']}/enroll", headers=headers), 201)
        doomed = _course(http, headers, price=0)
        # Nobody buys their own course: a paid one by another instructor.
        seller = _bearer(_signup(http, "instructor")["access_token"])
        paid = _course(http, seller, price=1999)
        # Payments learns of the course from course.published.v1 (within 2 s).
        deadline = time.monotonic() + 10
        while True:
            intent = http.post(
                "/api/v1/payments/intents", json={"course_id": paid["course_ref"]}, headers=headers
            )
            if intent.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        payment = _ok(intent, 201)
        upload_body = {"filename": "fuzz.mp4", "file_size": 1024, "content_type": "video/mp4"}
        upload = _ok(http.post("/api/v1/media/uploads", json=upload_body, headers=headers), 201)
        tutor = _tutor_session(http, headers, free["course_ref"])
        sessions = _ok(http.get("/api/v1/auth/sessions", headers=headers))["items"]
        (current,) = [s for s in sessions if s["current"]]
    return World(
        url=url,
        admin=admin,
        token=token,
        params={
            "any /api/v1/courses": free,
            "delete /api/v1/courses": doomed,
            "any /api/v1/analytics/courses": {"course_id": free["course_ref"]},
            "any /api/v1/auth/users": {"user_id": bystander},
            # Revoking its own session leaves the access token valid until it expires.
            "any /api/v1/auth/sessions": {"session_id": current["id"]},
            "any /api/v1/payments": {"payment_id": payment["payment_id"]},
            "any /api/v1/media/uploads": {"upload_id": upload["upload_id"]},
            "any /api/v1/ai/sessions": {"session_id": tutor},
        },
    )


# -- Checks --------------------------------------------------------------------------------


def _header(response: schemathesis.Response, name: str) -> str:
    values = response.headers.get(name.lower()) or [""]
    return values[0]


def _curl(case: schemathesis.Case, base_url: str) -> str:
    return case.as_curl_command(headers={"Authorization": "Bearer <fuzz token>"}, base_url=base_url)


def _describe(case: schemathesis.Case, response: schemathesis.Response, base_url: str) -> str:
    body = response.text if len(response.text) <= 500 else response.text[:500] + "..."
    content_type = _header(response, "content-type")
    return f"{_curl(case, base_url)}\n  -> {response.status_code} {content_type}: {body}"


def check_problem_json(response: schemathesis.Response) -> str | None:
    """What keeps an error response from being a DESIGN §3 problem document, if anything."""
    if response.status_code < 400:
        return None
    content_type = _header(response, "content-type")
    if not content_type.startswith("application/problem+json"):
        return f"error with content-type {content_type!r}, not application/problem+json"
    try:
        body = response.json()
    except ValueError:
        return "problem+json body is not JSON"
    if not isinstance(body, dict):
        return "problem+json body is not an object"
    missing = [key for key in ("type", "title", "status", "detail") if key not in body]
    if missing:
        return f"problem document without {', '.join(missing)}"
    if body["status"] != response.status_code:
        return f"problem status {body['status']!r}, HTTP status {response.status_code}"
    if not all(isinstance(body[key], str) for key in ("type", "title", "detail")):
        return "problem type, title and detail are not all strings"
    return None


def _documented_as_fastapi_default(case: schemathesis.Case, status: int) -> bool:
    """The status is documented with FastAPI's default validation-error body."""
    response = case.operation.responses.find_by_status_code(status)
    if response is None:
        return False
    content = (response.definition or {}).get("content") or {}
    refs = [str((media or {}).get("schema", {}).get("$ref", "")) for media in content.values()]
    return any(ref.endswith("/HTTPValidationError") for ref in refs)


_SCHEMATHESIS_CHECKS = {
    "not_a_server_error": not_a_server_error,
    "content_type_conformance": content_type_conformance,
    "response_schema_conformance": response_schema_conformance,
}


def run_checks(case: schemathesis.Case, response: schemathesis.Response) -> dict[str, str]:
    """Check name → what failed, for the checks this response fails."""
    failures: dict[str, str] = {}
    problem = check_problem_json(response)
    if problem:
        failures["problem_json"] = problem
    documented_as_fastapi_default = (
        response.status_code >= 400
        and "documented_errors" in KNOWN_BUGS.get("*", {})
        and _documented_as_fastapi_default(case, response.status_code)
    )
    for name, check in _SCHEMATHESIS_CHECKS.items():
        if documented_as_fastapi_default and name != "not_a_server_error":
            continue
        try:
            case.validate_response(response, checks=[check])
        except FailureGroup as group:
            failures[name] = "; ".join(
                " ".join(f"{failure.title}: {failure.message}".split())
                for failure in group.exceptions
            )
    return failures


# -- Fuzzing one operation -----------------------------------------------------------------


@dataclass
class Findings:
    """What fuzzing one service found."""

    #: Operation → reports of failures that are not known bugs.
    new: dict[str, list[str]] = field(default_factory=dict)
    #: (operation, check) → reports of known bugs seen.
    known: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    def record(
        self,
        label: str,
        kind: str,
        case: schemathesis.Case,
        response: schemathesis.Response,
        failures: dict[str, str],
        base_url: str,
    ) -> bool:
        """Note the failures of one response; whether any was not a known bug."""
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        new = []
        for check, message in failures.items():
            if _known(label, check):
                examples = self.known.setdefault((label, check), [])
                if len(examples) < 2:
                    examples.append(f"[{kind}] {message}\n{_describe(case, response, base_url)}")
            else:
                new.append(f"{check}: {message}")
        if new:
            reports = self.new.setdefault(label, [])
            if len(reports) < 3:
                reports.append(
                    f"[{kind}] " + "; ".join(new) + "\n" + _describe(case, response, base_url)
                )
        return bool(new)


def _known(label: str, check: str) -> str | None:
    return KNOWN_BUGS.get(label, {}).get(check) or KNOWN_BUGS.get("*", {}).get(check)


class _Sender:
    """Sends cases through the gateway, waiting out gateway 429s."""

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base_url = base_url
        self.session = session
        self.requests = 0

    def send(self, case: schemathesis.Case, headers: dict[str, str]) -> schemathesis.Response:
        for attempt in range(1, RETRY_429_ATTEMPTS + 1):
            self.requests += 1
            response = case.call(
                base_url=self.base_url,
                session=self.session,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            )
            if response.status_code >= 500 and _known("*", "connection_closed_after_500"):
                self.flush(case.operation.path, headers)
            if response.status_code != 429:
                return response
            try:
                wait = float(_header(response, "retry-after") or 1)
            except ValueError:
                wait = 1.0
            if wait > RETRY_429_MAX_WAIT or attempt == RETRY_429_ATTEMPTS:
                return response
            time.sleep(max(wait, 0.2))
        raise AssertionError("unreachable")

    def flush(self, path: str, headers: dict[str, str]) -> None:
        """A GET to the service that serves ``path``: nginx retries a GET on a fresh
        connection when the pooled one was closed, so the dead one leaves the pool."""
        prefix = next(
            p
            for prefixes in SERVICE_PREFIXES.values()
            for p in prefixes
            if path == p or path.startswith(p + "/")
        )
        self.session.get(
            f"{self.base_url}{prefix}/fuzz-connection-flush", headers=headers, timeout=10
        )


class _NewFailure(Exception):
    pass


_SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
    print_blob=False,
)


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a (resolved) schema: its anyOf/oneOf branches, or itself."""
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return [b for branch in branches if isinstance(branch, dict) for b in _branches(branch)]
    return [schema]


def hostile_values(schema: dict[str, Any]) -> list[Any]:
    """Values a field of ``schema`` may take that databases and date arithmetic choke on."""
    values: list[Any] = []
    for branch in _branches(schema):
        kind, fmt = branch.get("type"), branch.get("format")
        if kind == "integer":
            values.append(HUGE_INT)
        elif kind != "string" or "enum" in branch or fmt in ("uuid", "binary"):
            continue
        elif fmt == "date":
            values += EXTREME_DATES
        elif fmt == "date-time":
            values += [f"{day}T00:00:00Z" for day in EXTREME_DATES]
        elif fmt is None:
            size = max(int(branch.get("minLength", 0)), 3)
            if size <= int(branch.get("maxLength", size)):
                values.append(("a\x00" + "b" * size)[:size])
    return values


def _fields(operation: schemathesis.APIOperation) -> Iterator[tuple[str, str, dict, bool]]:
    """(location, name, schema, required) of each query parameter and JSON body property."""
    for parameter in operation.query:
        schema = parameter.definition.get("schema") or {}
        yield "query", parameter.name, schema, parameter.is_required
    for body in operation.body:
        if body.media_type != "application/json":
            continue
        schema = body.optimized_schema or {}
        required = set(schema.get("required", []))
        for name, prop in (schema.get("properties") or {}).items():
            yield "body", name, prop, name in required


def hostile_variants(case: schemathesis.Case) -> Iterator[schemathesis.Case]:
    """For each query or body field: ``case`` with only the required fields and that one,
    set to each of its hostile values (alone, so no other field gets it refused first)."""
    fields = list(_fields(case.operation))
    required = {(location, name) for location, name, _, is_required in fields if is_required}
    for location, name, schema, _ in fields:
        values = getattr(case, location)
        if location == "body" and not isinstance(values, dict):
            continue
        kept = {k: v for k, v in (values or {}).items() if (location, k) in required}
        for value in hostile_values(schema):
            variant = case.derive(keep_auth=True)
            setattr(variant, location, {**kept, name: value})
            yield variant


def fuzz_operation(
    operation: schemathesis.APIOperation,
    *,
    sender: _Sender,
    world: World,
    examples: int,
    findings: Findings,
) -> None:
    label = operation.label
    restriction = RESTRICTED.get(label, ("", ""))[0]
    if restriction == "skip":
        return
    modes = [GenerationMode.NEGATIVE]
    if restriction != "negative":
        modes.insert(0, GenerationMode.POSITIVE)
    known_ids = world.path_parameters(operation.method, operation.path)

    def strategy(mode: GenerationMode) -> st.SearchStrategy[schemathesis.Case]:
        generated = operation.as_strategy(mode)
        if not known_ids:
            return generated
        return st.one_of(operation.as_strategy(mode, path_parameters=known_ids), generated)

    def check(case: schemathesis.Case, kind: str) -> bool:
        try:
            response = sender.send(case, world.headers)
        except requests.RequestException as error:
            findings.new.setdefault(label, []).append(
                f"[{kind}] no response: {error!r}\n{_curl(case, sender.base_url)}"
            )
            return True
        failures = run_checks(case, response)
        return findings.record(label, kind, case, response, failures, sender.base_url)

    def generated(mode: GenerationMode) -> None:
        @settings(max_examples=examples, **_SETTINGS)
        @given(case=strategy(mode))
        def run(case: schemathesis.Case) -> None:
            if check(case, mode.value):
                raise _NewFailure(label)  # this mode found one: on to the next

        try:
            run()
        except Unsatisfiable:
            pass  # nothing to negate: the operation takes no input
        except (_NewFailure, FlakyFailure, FlakyReplay):
            pass  # recorded (flaky: the server's state changed in between)

    @settings(max_examples=HOSTILE_BASES, **_SETTINGS)
    @given(case=strategy(GenerationMode.POSITIVE))
    def hostile(case: schemathesis.Case) -> None:
        for variant in hostile_variants(case):
            check(variant, "hostile")

    # Hostile values first (a few requests, before a daily quota runs out), then
    # schemathesis' own cases, positive and negative.
    if GenerationMode.POSITIVE in modes:
        try:
            hostile()
        except Unsatisfiable:
            pass
    for mode in modes:
        generated(mode)


# -- The tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_world(stack) -> World:
    return build_world(stack.url, stack.admin_email, stack.admin_password)


@pytest.fixture(scope="module")
def api_schema(stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.url}/api/v1/openapi.json", timeout=30)


@pytest.fixture(scope="module")
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _examples(stack) -> int:
    """Full fuzzing when the stack lifts the gateway's per-user and per-address limits."""
    lifted = all(
        name in stack.env for name in ("GATEWAY_RATE_LIMIT_USER", "GATEWAY_RATE_LIMIT_ADDRESS")
    )
    return FUZZ_EXAMPLES if lifted else FUZZ_EXAMPLES_AT_DEFAULT_LIMITS


def _routed_to(service: str) -> Callable[[str], bool]:
    prefixes = SERVICE_PREFIXES[service]
    return lambda path: any(path == p or path.startswith(p + "/") for p in prefixes)


def _order(operation: schemathesis.APIOperation) -> tuple[int, int]:
    """Reads, then writes, then deletes (deepest first): the world lasts longest."""
    rank = {"GET": 0, "HEAD": 0, "DELETE": 2}.get(operation.method.upper(), 1)
    return rank, -operation.path.count("/") if rank == 2 else 0


@pytest.mark.timeout(170)
@pytest.mark.parametrize("service", list(SERVICE_PREFIXES))
def test_fuzz_service_api(service, stack, api_schema, fuzz_world, http_session):
    routed = _routed_to(service)
    operations = sorted(
        (op for op in (r.ok() for r in api_schema.get_all_operations()) if routed(op.path)),
        key=_order,
    )
    if not operations:
        pytest.skip(f"the gateway routes no operation of {service} (devstack did not start it)")
    examples = _examples(stack)
    sender = _Sender(stack.url, http_session)
    findings = Findings()
    started = time.monotonic()
    for operation in operations:
        world = fuzz_world
        if any(operation.label.startswith(prefix) for prefix in FRESH_ACCOUNT):
            world = fuzz_world.with_fresh_account()
        fuzz_operation(operation, sender=sender, world=world, examples=examples, findings=findings)
    print(
        f"\n{service}: {len(operations)} operations, {sender.requests} requests in "
        f"{time.monotonic() - started:.1f}s ({examples} examples per mode); "
        f"statuses {dict(sorted(findings.statuses.items()))}"
    )
    for label, (restriction, reason) in RESTRICTED.items():
        if routed(label.partition(" ")[2]):
            how = "not fuzzed" if restriction == "skip" else "negative cases only"
            print(f"{label}: {how} ({reason})")
    for (label, check), reports in sorted(findings.known.items()):
        print(f"known bug {label} {check}: {_known(label, check)}\n" + "\n".join(reports))
    listed = {
        (label, check)
        for label, checks in KNOWN_BUGS.items()
        if label != "*" and routed(label.partition(" ")[2])
        for check in checks
    }
    for label, check in sorted(listed - set(findings.known)):
        warnings.warn(
            f"KNOWN_BUGS[{label!r}][{check!r}] did not show: fixed? Remove the entry.",
            stacklevel=1,
        )
    if findings.new:
        report = "\n\n".join(
            f"{label}:\n" + "\n".join(reports) for label, reports in findings.new.items()
        )
        pytest.fail(
            f"fuzzing {service} failed {len(findings.new)} operation(s); fix them or list them "
            f"in KNOWN_BUGS with the reason:\n\n{report}",
            pytrace=False,
        )


def test_every_operation_belongs_to_a_fuzzed_service(api_schema):
    """An operation under a prefix missing from SERVICE_PREFIXES would never be fuzzed."""
    labels = [result.ok().label for result in api_schema.get_all_operations()]
    assert labels, "the gateway's document has no operations"
    orphans = [
        label
        for label in labels
        if not any(_routed_to(service)(label.partition(" ")[2]) for service in SERVICE_PREFIXES)
    ]
    assert not orphans, f"operations of no service in SERVICE_PREFIXES: {orphans}"
