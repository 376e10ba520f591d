"""deploy/compose.yaml: a valid Compose file that runs every service like the chart does."""

from __future__ import annotations

import json

import pytest
import yaml
from deploy_support import DEPLOY, DEPLOYED_SERVICES, REPO, service_env, service_folders
from jsonschema import Draft201909Validator

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification(tools, compose):
    if tools.compose_schema is None:
        pytest.skip("the Compose Specification schema could not be fetched from npm")
    schema = json.loads(tools.compose_schema.read_text())
    # The schema in the npm package (2021) predates the top-level project `name` (2022).
    schema["properties"].setdefault("name", {"type": "string"})
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in Draft201909Validator(schema).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_infrastructure_is_all_there(compose):
    services = compose["services"]
    assert "-js" in services["nats"]["command"]
    for name in ("postgres", "nats", "redis", "minio"):
        assert "healthcheck" in services[name], name


@pytest.mark.parametrize("service", DEPLOYED_SERVICES)
def test_each_service_has_migrate_api_and_worker(compose, service):
    services = compose["services"]
    migrate, api, worker = (services[f"{service}{s}"] for s in ("-migrate", "", "-worker"))
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert api["command"] == ["serve"]
    assert worker["command"] == ["worker"]
    for container in (migrate, api, worker):
        assert container["image"] == f"unpuzzle/{service}:dev"
        assert container["build"] == {
            "context": "..",
            "dockerfile": f"services/{service}/Dockerfile",
        }
    assert migrate["depends_on"]["db-provision"]["condition"] == "service_completed_successfully"
    for container in (api, worker):
        condition = container["depends_on"][f"{service}-migrate"]["condition"]
        assert condition == "service_completed_successfully"
    # Only the API answers the image's HTTP healthcheck.
    assert migrate["healthcheck"] == {"disable": True} == worker["healthcheck"]
    assert compose["services"]["gateway"]["depends_on"][service]["condition"] == "service_healthy"


def test_every_dependency_exists(compose):
    names = set(compose["services"])
    for name, service in compose["services"].items():
        assert set(service.get("depends_on", {})) <= names, name


def test_gateway_routes_to_every_service_on_its_port(compose):
    gateway = compose["services"]["gateway"]
    upstreams = dict(
        item.split("=") for item in gateway["environment"]["GATEWAY_UPSTREAMS"].split(",")
    )
    assert set(upstreams) == set(DEPLOYED_SERVICES)
    for service in service_folders():
        assert upstreams[service] == f"{service}:{service_env(service).port}"
    assert gateway["build"]["dockerfile"] == "deploy/gateway/Dockerfile"
    assert (REPO / gateway["build"]["dockerfile"]).is_file()


def test_every_service_role_is_provisioned_with_its_own_password(compose):
    provision = compose["services"]["db-provision"]
    for service in DEPLOYED_SERVICES:
        password = provision["environment"][f"DB_PASSWORD_{service.upper()}"]
        url = compose["services"][service]["environment"][f"{service.upper()}_DATABASE_URL"]
        assert url.startswith(f"postgresql+psycopg://unpuzzle_{service}:{password}@postgres:")
