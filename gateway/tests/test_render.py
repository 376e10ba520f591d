"""render.py without traffic: settings, keys file, OpenAPI merge, rendered config."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from pydantic import ValidationError

from gateway.render import (
    ROUTE_RULES,
    GatewaySettings,
    InvalidJWK,
    jwks_to_keyfile,
    merge_openapi,
    nginx_command,
    render_config,
    write_keyfile,
)
from gateway.tests.support import SigningKey, gateway_settings, jwks

# ----------------------------------------------------------------------- settings


def test_settings_defaults_route_every_service_on_its_dev_port():
    settings = GatewaySettings()

    assert settings.upstreams["auth"] == "127.0.0.1:8101"
    assert settings.upstreams["analytics"] == "127.0.0.1:8106"
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 8080)
    assert (settings.rate_limit_strict, settings.rate_limit_strict_burst) == ("30r/m", 10)


@pytest.mark.parametrize(
    "value", ['{"auth": "auth:8000", "ai": "ai:8000"}', "auth=auth:8000, ai=ai:8000"]
)
def test_settings_read_upstreams_as_json_or_pairs(monkeypatch, value):
    monkeypatch.setenv("GATEWAY_UPSTREAMS", value)

    assert GatewaySettings().upstreams == {"auth": "auth:8000", "ai": "ai:8000"}


def test_settings_take_several_addresses_for_a_replicated_service(monkeypatch, tmp_path):
    monkeypatch.setenv("GATEWAY_UPSTREAMS", "courses=127.0.0.1:8102 127.0.0.1:8112")
    settings = GatewaySettings()

    assert settings.upstreams == {"courses": "127.0.0.1:8102 127.0.0.1:8112"}
    config = render_config(settings, tmp_path)
    block = config[config.index("upstream svc_courses") :].split("}", 1)[0]
    assert "server 127.0.0.1:8102;" in block and "server 127.0.0.1:8112;" in block


def test_settings_read_origins_as_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv(
        "GATEWAY_CORS_ALLOWED_ORIGINS", "https://unpuzzle.dev, http://localhost:3000"
    )

    assert GatewaySettings().cors_allowed_origins == [
        "https://unpuzzle.dev",
        "http://localhost:3000",
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("upstreams", {"billing": "127.0.0.1:1"}),
        ("upstreams", {"auth": "127.0.0.1; evil"}),
        ("upstreams", {"auth": "127.0.0.1:1 evil"}),
        ("upstreams", {"auth": " "}),
        ("rate_limit_strict", "5 per minute"),
        ("body_limit", "1 m"),
        ("jwt_issuer", 'a"; evil'),
        ("cors_allowed_origins", ["*"]),
        ("jwt_leeway_seconds", 300),
        ("listen_host", "0.0.0.0; evil"),
    ],
)
def test_settings_refuse_values_that_would_break_the_config(field, value):
    with pytest.raises(ValidationError):
        GatewaySettings(**{field: value})


# ---------------------------------------------------------------------- keys file


def spki_of(key: SigningKey) -> bytes:
    return key.private_key.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def test_keyfile_holds_spki_per_kid_with_the_algorithm_pinned():
    es, rs = SigningKey.es256(), SigningKey.rs256()

    keyfile = jwks_to_keyfile(jwks(es, rs))

    assert [(k["kid"], k["alg"]) for k in keyfile["keys"]] == [(es.kid, "ES256"), (rs.kid, "RS256")]
    for entry, key in zip(keyfile["keys"], (es, rs), strict=True):
        assert base64.b64decode(entry["spki"]) == spki_of(key)
        load_der_public_key(base64.b64decode(entry["spki"]))


def test_keyfile_skips_keys_the_gateway_cannot_verify():
    es = SigningKey.es256()
    eddsa = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    document = {"keys": [{**eddsa, "kid": "ed"}, {**es.jwk(), "kid": "enc", "use": "enc"}]}

    assert jwks_to_keyfile({"keys": [*document["keys"], es.jwk()]})["keys"][0]["kid"] == es.kid
    assert jwks_to_keyfile(document) == {"keys": []}


@pytest.mark.parametrize(
    "change",
    [{"x": "AAAA"}, {"kid": None}, {"y": None}],
    ids=["point off the curve", "no kid", "no y"],
)
def test_keyfile_refuses_malformed_keys(change):
    jwk = SigningKey.es256().jwk()
    jwk.update(change)
    jwk = {k: v for k, v in jwk.items() if v is not None}

    with pytest.raises(InvalidJWK):
        jwks_to_keyfile({"keys": [jwk]})


def test_keyfile_refuses_duplicate_kids():
    first, second = SigningKey.es256(kid="k1"), SigningKey.es256(kid="k1")

    with pytest.raises(InvalidJWK):
        jwks_to_keyfile(jwks(first, second))


def test_write_keyfile_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "jwt-keys.json"
    path.write_text("old")

    write_keyfile(path, jwks(SigningKey.es256()))

    assert json.loads(path.read_text())["keys"][0]["alg"] == "ES256"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-keys.json"]  # no temp file left


# ------------------------------------------------------------------------ OpenAPI


def service_doc(paths: dict, schemas: dict) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "svc", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(schema: dict, operation_id: str) -> dict:
    content = {"application/json": {"schema": schema}}
    return {"operationId": operation_id, "responses": {"200": {"content": content}}}


VALIDATION_ERROR = {"type": "object", "properties": {"detail": {"type": "array"}}}


def test_merge_prefixes_clashing_schemas_and_rewrites_refs():
    auth = service_doc(
        {"/api/v1/auth/me": {"get": operation(ref("User"), "me")}},
        {"User": {"type": "object"}, "Page": {"properties": {"user": ref("User")}}},
    )
    courses = service_doc(
        {"/api/v1/courses": {"get": operation(ref("Page"), "list_courses")}},
        {"User": {"type": "string"}, "Page": {"properties": {"user": ref("User")}}},
    )

    merged = merge_openapi({"auth": auth, "courses": courses})

    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"auth_User", "courses_User", "auth_Page", "courses_Page"}
    # Page looked identical in both, but refers to a User that differs: it clashes too.
    assert schemas["courses_Page"]["properties"]["user"] == ref("courses_User")
    courses_get = merged["paths"]["/api/v1/courses"]["get"]
    assert courses_get["responses"]["200"]["content"]["application/json"]["schema"] == ref(
        "courses_Page"
    )
    assert merged["paths"]["/api/v1/auth/me"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] == ref("auth_User")


def test_merge_shares_identical_schemas_and_drops_unrouted_paths():
    auth = service_doc(
        {
            "/api/v1/auth/signin": {"post": operation(ref("HTTPValidationError"), "signin")},
            "/healthz": {"get": operation({}, "healthz")},
            "/metrics": {"get": operation({}, "metrics")},
        },
        {"HTTPValidationError": VALIDATION_ERROR},
    )
    media = service_doc(
        {
            "/api/v1/media": {"get": operation(ref("HTTPValidationError"), "list_media")},
            "/api/v1/auth/steal": {"get": operation({}, "steal")},
        },
        {"HTTPValidationError": VALIDATION_ERROR},
    )

    merged = merge_openapi({"auth": auth, "media": media})

    assert set(merged["paths"]) == {"/api/v1/auth/signin", "/api/v1/media"}
    assert set(merged["components"]["schemas"]) == {"HTTPValidationError"}
    assert merged["info"]["title"] == "Unpuzzle API"


def test_merge_renames_clashing_security_schemes_in_requirements():
    def doc(path: str, scheme: dict) -> dict:
        secured = {**operation({}, path), "security": [{"Bearer": []}]}
        document = service_doc({path: {"get": secured}}, {})
        document["components"]["securitySchemes"] = {"Bearer": scheme}
        return document

    merged = merge_openapi(
        {
            "auth": doc("/api/v1/auth/me", {"type": "http", "scheme": "bearer"}),
            "ai": doc("/api/v1/ai/usage", {"type": "apiKey", "in": "header", "name": "X"}),
        }
    )

    assert set(merged["components"]["securitySchemes"]) == {"auth_Bearer", "ai_Bearer"}
    assert merged["paths"]["/api/v1/ai/usage"]["get"]["security"] == [{"ai_Bearer": []}]


def test_merge_makes_clashing_operation_ids_unique():
    auth = service_doc({"/api/v1/auth/me": {"get": operation({}, "read_me")}}, {})
    ai = service_doc({"/api/v1/ai/usage": {"get": operation({}, "read_me")}}, {})

    merged = merge_openapi({"auth": auth, "ai": ai})

    ids = {merged["paths"][p]["get"]["operationId"] for p in merged["paths"]}
    assert ids == {"read_me", "auth_read_me"}


# ------------------------------------------------------------------------- config


def test_every_public_route_is_a_route_rule():
    listed = {(rule.methods, rule.path) for rule in ROUTE_RULES}

    assert (("POST",), "/api/v1/auth/signin") in listed
    assert (("POST",), "/api/v1/payments/webhooks/stripe") in listed
    assert all(rule.access in {"public", "strict", "optional"} for rule in ROUTE_RULES)


def test_rendered_config_passes_nginx_test(tmp_path):
    settings = gateway_settings(
        tmp_path,
        {"auth": "127.0.0.1:8101", "media": "localhost:8000"},
        trusted_proxies=["10.0.0.0/8", "192.168.1.1"],
        cors_allowed_origins=["https://unpuzzle.dev"],
        access_log="/dev/stdout",
        error_log="stderr",
    )
    (tmp_path / "nginx.conf").write_text(render_config(settings, tmp_path))
    command = [*nginx_command(tmp_path), "-t", "-q"]

    result = subprocess.run(command, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr


def test_rendered_config_keeps_everything_inside_the_workdir(tmp_path):
    config = render_config(GatewaySettings(), tmp_path)

    for directive in ("pid", "error_log", "client_body_temp_path", "proxy_temp_path"):
        line = next(line for line in config.splitlines() if line.strip().startswith(directive))
        assert str(tmp_path.resolve()) in line
    assert "svc_payments" in config
    assert "{{" not in config


def test_config_routes_only_configured_services(tmp_path):
    config = render_config(GatewaySettings(upstreams={"auth": "127.0.0.1:8101"}), tmp_path)

    assert "upstream svc_auth" in config
    assert "svc_courses" not in config
    assert "/api/v1/courses(/.*)?" not in config  # no rule for a service not routed


def test_workdir_with_characters_nginx_would_parse_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not usable"):
        render_config(GatewaySettings(), tmp_path / "my gateway")


def test_cli_help():
    result = subprocess.run(
        [sys.executable, "-m", "gateway.render", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert "--workdir" in result.stdout
    assert "--jwks-url" in result.stdout


def test_cli_prepares_a_workdir(tmp_path):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(SigningKey.es256())))
    doc_file = tmp_path / "auth-openapi.json"
    doc_file.write_text(json.dumps(service_doc({"/api/v1/auth/me": {"get": {}}}, {})))
    workdir = tmp_path / "gw"

    subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.render",
            "--workdir",
            str(workdir),
            "--jwks-file",
            str(jwks_file),
            "--openapi",
            f"auth={doc_file}",
        ],
        check=True,
        capture_output=True,
    )

    assert (workdir / "nginx.conf").exists()
    assert json.loads((workdir / "jwt-keys.json").read_text())["keys"][0]["alg"] == "ES256"
    assert list(json.loads((workdir / "openapi.json").read_text())["paths"]) == ["/api/v1/auth/me"]
