"""Every service is deployed everywhere, with exactly the env vars its settings read."""

from __future__ import annotations

import re

import pytest
import yaml
from deploy_support import (
    CHART,
    DEPLOY,
    DEPLOYED_SERVICES,
    KUSTOMIZE,
    OVERLAYS,
    REPO,
    _load_module,
    container_env,
    containers,
    env_names,
    labelled,
    service_env,
    service_folders,
)

PRESENT = service_folders()
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_every_service_folder_is_deployed():
    unknown = set(PRESENT) - set(DEPLOYED_SERVICES)
    assert not unknown, (
        f"services/{sorted(unknown)} are not deployed: add them to the chart (values.yaml, "
        "_helpers.tpl serviceNames), regenerate the kustomize base, add the overlays and "
        "compose entries, then DEPLOYED_SERVICES in tests/deploy/deploy_support.py"
    )


@pytest.mark.parametrize("service", PRESENT)
def test_service_has_dockerfile_chart_block_kustomize_folders_and_compose_entry(service):
    assert (REPO / "services" / service / "Dockerfile").is_file(), "Dockerfile"
    block = VALUES[service]
    assert block["enabled"] is True
    assert block["port"] == service_env(service).port
    assert block["image"]["repository"] == f"unpuzzle/{service}"
    assert (KUSTOMIZE / "base" / service / "kustomization.yaml").is_file()
    for overlay in OVERLAYS:
        assert (KUSTOMIZE / "overlays" / overlay / service / "kustomization.yaml").is_file()
    for name in (service, f"{service}-worker", f"{service}-migrate"):
        assert name in COMPOSE["services"], f"compose lacks {name}"


@pytest.mark.parametrize("service", PRESENT)
def test_dockerfile_builds_one_unprivileged_image_for_every_role(service):
    dockerfile = REPO / "services" / service / "Dockerfile"
    assert dockerfile.is_file(), f"services/{service}/Dockerfile is missing"
    text = dockerfile.read_text()
    package = f"{service}_service"
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)", text, re.MULTILINE)
    allowed = ("libs/common", f"services/{service}", "constraints.txt")
    assert copies and all(src.startswith(allowed) for src in copies), copies
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and user[-1] not in {"root", "0"}, "runs as root"
    assert re.search(r"^HEALTHCHECK\s", text, re.MULTILINE), "no HEALTHCHECK"
    assert f'ENTRYPOINT ["python", "-m", "{package}"]' in text
    assert re.search(rf"^EXPOSE\s+{service_env(service).port}\b", text, re.MULTILINE)


# ------------------------------------------------------------------------ env vars


def _k8s_renders(default_manifests, prod_manifests, kustomize):
    yield "chart (default values)", default_manifests
    yield "chart (values-prod.yaml)", prod_manifests
    for overlay in OVERLAYS:
        yield f"kustomize {overlay}", kustomize(KUSTOMIZE / "overlays" / overlay)


def _check_env(where: str, service: str, env: dict, *, secrets_from_k8s: bool) -> list[str]:
    spec = service_env(service)
    problems = [f"{where}: {service} does not read {n}" for n in sorted(set(env) - spec.known)]
    problems += [f"{where}: {service} needs {n}" for n in sorted(spec.required - set(env))]
    for name in sorted(spec.dev_secrets):
        if name not in env:
            problems.append(f"{where}: {name} unset (its dev default is refused in production)")
        elif secrets_from_k8s and "secret" not in env[name]:
            problems.append(f"{where}: {name} must come from a Secret")
    return problems


@pytest.mark.parametrize("service", PRESENT)
def test_k8s_env_is_what_the_service_reads(default_manifests, prod_manifests, kustomize, service):
    problems = []
    for where, docs in _k8s_renders(default_manifests, prod_manifests, kustomize):
        mine = labelled(docs, name=service)
        assert mine, f"{where}: nothing for {service}"
        for doc in mine:
            for container in containers(doc, init=False):
                env = container_env(container, docs)
                label = f"{where} {doc['kind']}/{doc['metadata']['name']}"
                problems += _check_env(label, service, env, secrets_from_k8s=True)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("service", PRESENT)
def test_compose_env_is_what_the_service_reads(service):
    problems = []
    for name in (service, f"{service}-worker", f"{service}-migrate"):
        env = {k: {"value": v} for k, v in COMPOSE["services"][name]["environment"].items()}
        problems += _check_env(f"compose {name}", service, env, secrets_from_k8s=False)
    assert not problems, "\n".join(problems)


def _gateway_env_names() -> set[str]:
    from gateway.settings import GatewaySettings

    entrypoint = _load_module("_deploy_gateway_entrypoint", DEPLOY / "gateway" / "entrypoint.py")
    return env_names(GatewaySettings) | env_names(entrypoint.EntrypointSettings)


def test_gateway_env_is_what_the_gateway_reads(default_manifests, prod_manifests, kustomize):
    known = _gateway_env_names()
    sources = {"compose": set(COMPOSE["services"]["gateway"]["environment"])}
    dockerfile = (DEPLOY / "gateway" / "Dockerfile").read_text()
    sources["Dockerfile"] = set(re.findall(r"\b(GATEWAY_[A-Z_]+)=", dockerfile))
    for where, docs in _k8s_renders(default_manifests, prod_manifests, kustomize):
        (deployment,) = [d for d in labelled(docs, name="gateway") if d["kind"] == "Deployment"]
        (container,) = containers(deployment)
        sources[where] = set(container_env(container, docs))
    problems = [
        f"{where}: {sorted(names - known)}" for where, names in sources.items() if names - known
    ]
    assert not problems, "variables the gateway does not read:\n" + "\n".join(problems)
    assert all(
        "GATEWAY_UPSTREAMS" in names for where, names in sources.items() if where != "Dockerfile"
    )
