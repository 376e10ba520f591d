"""The kustomize base (generated from the chart) and the dev and prod overlays."""

from __future__ import annotations

import importlib.util

import pytest
from deploy_support import (
    DEPLOY,
    DEPLOYED_SERVICES,
    KUSTOMIZE,
    OVERLAYS,
    container_env,
    containers,
    labelled,
)

COMPONENTS = (*DEPLOYED_SERVICES, "gateway")


def _generator():
    spec = importlib.util.spec_from_file_location(
        "_deploy_gen_kustomize", DEPLOY / "tools" / "gen_kustomize.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_base_is_the_chart_rendered(tools):
    generator = _generator()
    files = generator.generate(generator.render_chart(str(tools.helm)))
    stale = generator.stale_files(files)
    assert not stale, (
        f"deploy/k8s/kustomize/base differs from the chart in {stale}: "
        "run .venv/bin/python deploy/tools/gen_kustomize.py"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_valid_manifests(kustomize, validate_manifests, overlay):
    docs = kustomize(KUSTOMIZE / "overlays" / overlay)
    validate_manifests(docs)
    for component in COMPONENTS:
        assert labelled(docs, name=component), f"{overlay} lacks {component}"


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("folder", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_each_component_applies_alone(kustomize, validate_manifests, folder, component):
    docs = kustomize(KUSTOMIZE / folder / component)
    validate_manifests(docs)
    assert {d["metadata"]["labels"]["app.kubernetes.io/name"] for d in docs} == {component}
    if folder.startswith("overlays/"):
        expected = "unpuzzle-dev" if folder.endswith("dev") else "unpuzzle"
        assert {d["metadata"]["namespace"] for d in docs} == {expected}


def test_dev_runs_in_development_mode_without_disruption_budgets(kustomize):
    docs = kustomize(KUSTOMIZE / "overlays" / "dev")
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert all(
        d["spec"]["minReplicas"] == 1 for d in docs if d["kind"] == "HorizontalPodAutoscaler"
    )
    for service in DEPLOYED_SERVICES:
        for doc in labelled(docs, name=service):
            for container in containers(doc):
                assert container_env(container, docs)["ENV"] == {"value": "development"}
                assert container["image"].endswith(":dev")


def test_prod_runs_in_production_mode_from_its_registry(kustomize):
    docs = kustomize(KUSTOMIZE / "overlays" / "prod")
    assert len([d for d in docs if d["kind"] == "PodDisruptionBudget"]) == len(COMPONENTS)
    for service in DEPLOYED_SERVICES:
        for doc in labelled(docs, name=service):
            for container in containers(doc):
                assert container_env(container, docs)["ENV"] == {"value": "production"}
                assert container["image"].startswith(f"registry.example.com/unpuzzle/{service}:")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_follows_the_overlay_config(kustomize, overlay):
    """Without Helm hooks the Job reads the (hashed) ConfigMap like the Deployments."""
    docs = kustomize(KUSTOMIZE / "overlays" / overlay)
    for job in (d for d in docs if d["kind"] == "Job"):
        (migrate,) = containers(job)
        (api,) = [
            c
            for d in labelled(docs, name=job["metadata"]["labels"]["app.kubernetes.io/name"])
            if d["kind"] == "Deployment"
            and d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
            for c in containers(d)
        ]
        assert migrate["envFrom"] == api["envFrom"]
        assert container_env(migrate, docs) == container_env(api, docs)
