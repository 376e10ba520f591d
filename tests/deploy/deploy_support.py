"""Helpers of the deployment checks: paths, settings -> env names, manifest queries."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "k8s" / "chart"
KUSTOMIZE = DEPLOY / "k8s" / "kustomize"
OVERLAYS = ("dev", "prod")
RELEASE = "unpuzzle"
#: Kubernetes version the manifests are validated against (kubectl's minor).
KUBERNETES_VERSION = "1.31.0"
#: Every service the deployment knows; a folder under services/ must be one of them.
DEPLOYED_SERVICES = ("auth", "courses", "media", "ai", "payments", "analytics")


def service_folders() -> list[str]:
    """The services in this checkout (folders of services/ with a pyproject.toml)."""
    return sorted(p.name for p in (REPO / "services").iterdir() if (p / "pyproject.toml").is_file())


# ------------------------------------------------------------------ settings -> env


def _load_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_class(service: str) -> type:
    """The service's Settings class, loaded from its file (installed or not)."""
    path = REPO / "services" / service / f"{service}_service" / "settings.py"
    return _load_module(f"_deploy_settings_{service}", path).Settings


def env_names(settings_cls: type) -> set[str]:
    """Every env var a pydantic-settings class reads: prefix + field, or its aliases."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


@dataclass(frozen=True)
class ServiceEnv:
    """What the deployment must know about a service's environment."""

    name: str
    prefix: str
    #: Every variable the service reads.
    known: frozenset[str]
    #: Variables whose development defaults ENV=production refuses.
    dev_secrets: frozenset[str]
    #: The listen port the service defaults to.
    port: int

    @property
    def required(self) -> set[str]:
        """What every deployment of the service must set."""
        needed = {"DATABASE_URL", "NATS_URL", "REDIS_URL", "HOST"}
        if self.name != "auth":
            needed.add("JWKS_URL")
        return {self.prefix + n for n in needed}


@cache
def service_env(service: str) -> ServiceEnv:
    cls = settings_class(service)
    prefix = cls.model_config["env_prefix"]
    return ServiceEnv(
        name=service,
        prefix=prefix,
        known=frozenset(env_names(cls)),
        dev_secrets=frozenset(f"{prefix}{f}".upper() for f in cls.dev_secrets),
        port=cls.model_fields["port"].default,
    )


# ---------------------------------------------------------------------- the tools


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path
    compose_schema: Path | None

    def run(self, *argv: str | Path) -> str:
        result = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stderr}"
            )
        return result.stdout


def parse_manifests(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


# ------------------------------------------------------------------- validation


#: Custom resources the Kubernetes schemas do not cover, with the fields they need.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints")}


# ------------------------------------------------------------------ manifest helpers


def labelled(docs: Iterable[dict[str, Any]], **labels: str) -> list[dict[str, Any]]:
    """Manifests whose labels include these (keys without the app.kubernetes.io/ prefix)."""
    wanted = {f"app.kubernetes.io/{k}": v for k, v in labels.items()}
    return [
        d for d in docs if wanted.items() <= (d.get("metadata", {}).get("labels") or {}).items()
    ]


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return [spec["template"]["spec"]]
    return []


def containers(doc: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    found = []
    for pod in pod_specs(doc):
        found += pod.get("containers", [])
        if init:
            found += pod.get("initContainers", [])
    return found


def container_env(
    container: dict[str, Any], docs: Iterable[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """name -> {"value": ...} or {"secret": (name, key)} for everything a container gets,
    following envFrom into ConfigMaps of the same render (Secrets' keys are unknown)."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = configmaps[source["configMapRef"]["name"]].get("data", {})
            env.update({k: {"value": v} for k, v in data.items()})
    for entry in container.get("env", []):
        if "valueFrom" in entry and "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = {"secret": (ref["name"], ref["key"])}
        else:
            env[entry["name"]] = {"value": entry.get("value")}
    return env


@cache
def cli_commands(service: str) -> frozenset[str]:
    """Subcommands of ``python -m <service>_service``, from its own ``--help``."""
    folder = str(REPO / "services" / service)
    if importlib.util.find_spec(f"{service}_service") is None and folder not in sys.path:
        sys.path.append(folder)
    cli = importlib.import_module(f"{service}_service.cli")
    usage = io.StringIO()
    with contextlib.redirect_stdout(usage), contextlib.suppress(SystemExit):
        cli.main(["--help"])
    choices = re.search(r"\{([a-z0-9,-]+)\}", usage.getvalue())
    assert choices, f"no subcommands in the help of {service}_service:\n{usage.getvalue()}"
    return frozenset(choices.group(1).split(","))
