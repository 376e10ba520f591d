"""The Helm chart: it lints, renders valid manifests, and each service stands alone."""

from __future__ import annotations

import json

import pytest
from deploy_support import (
    CHART,
    DEPLOYED_SERVICES,
    RELEASE,
    cli_commands,
    container_env,
    containers,
    labelled,
    pod_specs,
    service_env,
    service_folders,
)

PROD_VALUES = str(CHART / "values-prod.yaml")


@pytest.mark.parametrize("values", [[], ["-f", PROD_VALUES]], ids=["default", "prod"])
def test_chart_lints_strictly(tools, values):
    tools.run(tools.helm, "lint", "--strict", CHART, *values)


def test_default_render_is_valid_kubernetes(default_manifests, validate_manifests):
    validate_manifests(default_manifests)


def test_prod_render_is_valid_kubernetes(prod_manifests, validate_manifests):
    validate_manifests(prod_manifests)
    assert labelled(prod_manifests, name="courses", component="api")


@pytest.mark.parametrize("service", DEPLOYED_SERVICES)
def test_every_service_has_its_kubernetes_pieces(default_manifests, service):
    mine = labelled(default_manifests, name=service)
    kinds = {(d["kind"], d["metadata"]["labels"]["app.kubernetes.io/component"]) for d in mine}
    for piece in [
        ("Deployment", "api"),
        ("Deployment", "worker"),
        ("Service", "api"),
        ("HorizontalPodAutoscaler", "api"),
        ("PodDisruptionBudget", "api"),
        ("NetworkPolicy", "api"),
        ("NetworkPolicy", "worker"),
        ("ConfigMap", "config"),
        ("ServiceAccount", "serviceaccount"),
        ("Job", "migrate"),
    ]:
        assert piece in kinds, f"{service} lacks {piece}"


@pytest.mark.parametrize("service", DEPLOYED_SERVICES)
def test_api_probes_readyz_and_healthz_on_its_port(default_manifests, service):
    api = next(
        d
        for d in labelled(default_manifests, name=service, component="api")
        if d["kind"] == "Deployment"
    )
    (container,) = containers(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["serve"]
    assert container["ports"][0]["containerPort"] == service_env(service).port
    worker = next(
        d
        for d in labelled(default_manifests, name=service, component="worker")
        if d["kind"] == "Deployment"
    )
    assert [c["args"] for c in containers(worker)] == [["worker"]]


def test_pods_run_unprivileged_with_a_read_only_root(default_manifests):
    for doc in default_manifests:
        for pod in pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"] + pod.get("initContainers", []):
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert "resources" in container


def test_migrations_are_pre_install_and_pre_upgrade_hooks(default_manifests):
    jobs = [d for d in default_manifests if d["kind"] == "Job"]
    assert {d["metadata"]["labels"]["app.kubernetes.io/name"] for d in jobs} == set(
        DEPLOYED_SERVICES
    )
    for job in jobs:
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        (migrate,) = [c for c in containers(job, init=False)]
        assert migrate["args"] == ["migrate"]
        # A pre-install hook runs before the release's ConfigMaps exist.
        assert not any("configMapRef" in s for s in migrate.get("envFrom", []))


def test_provisioning_init_container_uses_the_admin_secret_only_there(default_manifests):
    for job in (d for d in default_manifests if d["kind"] == "Job"):
        service = job["metadata"]["labels"]["app.kubernetes.io/name"]
        (provision,) = pod_specs(job)[0]["initContainers"]
        env = container_env(provision, default_manifests)
        assert set(env) == {"UNPUZZLE_ADMIN_DATABASE_URL", f"{service.upper()}_DATABASE_URL"}
        assert all("secret" in v for v in env.values())
    for doc in default_manifests:
        for container in containers(doc, init=False):
            assert "UNPUZZLE_ADMIN_DATABASE_URL" not in container_env(container, default_manifests)


def test_prod_values_leave_provisioning_to_the_dba(prod_manifests):
    for job in (d for d in prod_manifests if d["kind"] == "Job"):
        assert "initContainers" not in pod_specs(job)[0]


def test_cron_jobs_run_commands_the_services_have(default_manifests, prod_manifests):
    present = set(service_folders())
    crons = [d for d in default_manifests + prod_manifests if d["kind"] == "CronJob"]
    assert {c["metadata"]["name"] for c in crons} >= {
        f"{RELEASE}-auth-cleanup-sessions",
        f"{RELEASE}-media-cleanup-uploads",
        f"{RELEASE}-payments-expire-subscriptions",
        f"{RELEASE}-analytics-daily-report",
    }
    for cron in crons:
        service = cron["metadata"]["labels"]["app.kubernetes.io/name"]
        if service not in present:
            continue
        (container,) = containers(cron)
        assert container["args"][0] in cli_commands(service), cron["metadata"]["name"]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_secrets_are_referenced_never_inlined(default_manifests, prod_manifests):
    docs = default_manifests + prod_manifests
    assert not [d for d in docs if d["kind"] == "Secret"]
    for service in service_folders():
        secret_vars = service_env(service).dev_secrets | {f"{service.upper()}_DATABASE_URL"}
        for doc in labelled(docs, name=service):
            if doc["kind"] == "ConfigMap":
                assert not secret_vars & set(doc["data"]), doc["metadata"]["name"]
            for container in containers(doc, init=False):
                env = container_env(container, docs)
                for var in secret_vars:
                    assert "secret" in env.get(var, {}), f"{doc['metadata']['name']}: {var}"


def test_one_service_upgrades_alone(helm_template, default_manifests):
    upgraded = helm_template("--set", "courses.image.tag=9.9.9")
    before = {(d["kind"], d["metadata"]["name"]): d for d in default_manifests}
    changed = set()
    for doc in upgraded:
        key = (doc["kind"], doc["metadata"]["name"])
        if json.dumps(doc, sort_keys=True) != json.dumps(before[key], sort_keys=True):
            changed.add(doc["metadata"]["labels"]["app.kubernetes.io/name"])
            for container in containers(doc):
                assert container["image"] == "unpuzzle/courses:9.9.9"
    assert changed == {"courses"}


def test_a_disabled_service_disappears_everywhere(helm_template):
    docs = helm_template("--set", "payments.enabled=false")
    assert not labelled(docs, name="payments")
    (gateway_env,) = [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-gateway-env"]
    assert "payments=" not in gateway_env["data"]["GATEWAY_UPSTREAMS"]
    (auth_policy,) = [
        d
        for d in docs
        if d["metadata"]["name"] == f"{RELEASE}-auth" and d["kind"] == "NetworkPolicy"
    ]
    assert "payments" not in json.dumps(auth_policy)


def test_apis_admit_only_the_gateway_and_their_callers(default_manifests):
    policies = {
        d["metadata"]["labels"]["app.kubernetes.io/name"]: d
        for d in default_manifests
        if d["kind"] == "NetworkPolicy"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    }
    for service, policy in policies.items():
        (rule,) = policy["spec"]["ingress"]
        peers = rule["from"]
        assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway"
        callers = [
            expr["values"]
            for peer in peers[1:]
            for expr in peer["podSelector"].get("matchExpressions", [])
        ]
        expected = [] if service != "auth" else [[s for s in DEPLOYED_SERVICES if s != "auth"]]
        assert callers == expected, service


def test_service_monitors_are_opt_in(default_manifests, prod_manifests):
    assert not [d for d in default_manifests if d["kind"] == "ServiceMonitor"]
    monitors = [d for d in prod_manifests if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == len(DEPLOYED_SERVICES)
    assert all(m["spec"]["endpoints"][0]["path"] == "/metrics" for m in monitors)


def test_gateway_has_deployment_configmap_service_and_ingress(default_manifests):
    gateway = labelled(default_manifests, name="gateway")
    kinds = sorted(d["kind"] for d in gateway)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    (config,) = [d for d in gateway if d["kind"] == "ConfigMap"]
    upstreams = dict(u.split("=") for u in config["data"]["GATEWAY_UPSTREAMS"].split(","))
    services = {d["metadata"]["name"]: d for d in default_manifests if d["kind"] == "Service"}
    for service in DEPLOYED_SERVICES:
        host, port = upstreams[service].split(":")
        assert services[host]["spec"]["ports"][0]["port"] == int(port)
    assert set(upstreams) == set(DEPLOYED_SERVICES)


def test_values_with_a_typo_are_refused(tools):
    with pytest.raises(AssertionError, match="imag"):
        tools.run(tools.helm, "template", RELEASE, CHART, "--set", "courses.imag.tag=1")


@pytest.mark.parametrize(
    "sets",
    [
        ["global.networkPolicy.enabled=false", "gateway.ingress.enabled=false"],
        ["courses.autoscaling.enabled=false", "courses.replicas=3", "courses.pdb.minAvailable=2"],
        [
            "gateway.enabled=false",
            "media.worker.enabled=false",
            "auth.jobs.rotate-keys.enabled=true",
        ],
        ["global.nats.existingSecret.name=infra", "global.redis.existingSecret.name=infra"],
        ["global.otlpEndpoint=http://otel:4318", "global.image.registry=r.example.com"],
    ],
    ids=["no-policies", "fixed-replicas", "no-gateway", "infra-secrets", "otlp-registry"],
)
def test_switches_render_valid_manifests(helm_template, validate_manifests, sets):
    docs = helm_template(*(arg for s in sets for arg in ("--set", s)))
    validate_manifests(docs)
    if "courses.replicas=3" in sets:
        (api,) = [
            d
            for d in docs
            if d["metadata"]["name"] == f"{RELEASE}-courses" and d["kind"] == "Deployment"
        ]
        assert api["spec"]["replicas"] == 3
    if "global.nats.existingSecret.name=infra" in sets:
        (api,) = [
            d
            for d in docs
            if d["metadata"]["name"] == f"{RELEASE}-ai" and d["kind"] == "Deployment"
        ]
        env = container_env(containers(api)[0], docs)
        assert env["AI_NATS_URL"] == {"secret": ("infra", "nats-url")}
        assert env["AI_REDIS_URL"] == {"secret": ("infra", "redis-url")}
