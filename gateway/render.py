"""Render the gateway's nginx.conf and prepare an instance directory.

    python -m gateway.render --workdir .dev/gateway --jwks-url http://127.0.0.1:8101/api/v1/auth/.well-known/jwks.json
    nginx -p .dev/gateway -c .dev/gateway/nginx.conf -e .dev/gateway/error.log

The route table (which routes need no token) is :data:`ROUTE_RULES`, here and only here.
Keys (:mod:`gateway.keys`) and the merged OpenAPI document (:mod:`gateway.openapi`)
are re-exported, so ``gateway.render`` is the one module callers need.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.keys import InvalidJWK, jwks_to_keyfile, write_keyfile
from gateway.openapi import merge_openapi
from gateway.settings import SERVICE_PREFIXES, GatewaySettings, retry_after_seconds

__all__ = [
    "ROUTE_RULES",
    "GatewaySettings",
    "InvalidJWK",
    "RouteRule",
    "jwks_to_keyfile",
    "main",
    "merge_openapi",
    "nginx_command",
    "prepare_workdir",
    "render_config",
    "write_keyfile",
]

log = logging.getLogger("gateway.render")

GATEWAY_DIR = Path(__file__).resolve().parent
TEMPLATE = GATEWAY_DIR / "nginx.conf.template"
STATIC_DIR = GATEWAY_DIR / "static"

PUBLIC = "public"  # no token needed; a token sent along is not looked at
STRICT = "strict"  # public, and under the strict per-address rate limit
OPTIONAL = "optional"  # no token needed; a token sent along must be valid


@dataclass(frozen=True)
class RouteRule:
    """A route that does not require a token. Everything else a service serves does."""

    methods: tuple[str, ...]
    path: str
    access: str
    #: Also match everything below ``path`` (``/api/v1/courses/...``).
    subpaths: bool = False


GET = ("GET", "HEAD")

#: The routes that need no token — the one place they are listed.
ROUTE_RULES: tuple[RouteRule, ...] = (
    RouteRule(("POST",), "/api/v1/auth/signup", STRICT),
    RouteRule(("POST",), "/api/v1/auth/signin", STRICT),
    RouteRule(("POST",), "/api/v1/auth/password/forgot", STRICT),
    RouteRule(("POST",), "/api/v1/auth/refresh", PUBLIC),
    RouteRule(("POST",), "/api/v1/auth/signout", PUBLIC),
    RouteRule(("POST",), "/api/v1/auth/password/reset", PUBLIC),
    RouteRule(GET, "/api/v1/auth/.well-known/jwks.json", PUBLIC),
    # The catalog: anonymous visitors browse it; a signed-in caller also sees drafts
    # and enrollments, so a token that is sent must be valid.
    RouteRule(GET, "/api/v1/categories", OPTIONAL, subpaths=True),
    RouteRule(GET, "/api/v1/courses", OPTIONAL, subpaths=True),
    # Stripe signs its webhooks; payments verifies the signature.
    RouteRule(("POST",), "/api/v1/payments/webhooks/stripe", PUBLIC),
    RouteRule(GET, "/api/v1/payments/plans", PUBLIC),
    # The gateway's own routes.
    RouteRule(GET, "/healthz", PUBLIC),
    RouteRule(GET, "/api/v1/openapi.json", PUBLIC),
    RouteRule(GET, "/api/docs", PUBLIC, subpaths=True),
)

#: Client headers that could pass for an identity. X-User-Id/-Email/-Roles are
#: replaced by the verified identity; the others are removed.
FORWARDED_IDENTITY_HEADERS = ("X-User-Id", "X-User-Email", "X-User-Roles")
STRIPPED_IDENTITY_HEADERS = (
    "X-User",
    "X-User-Name",
    "X-User-Role",
    "X-User-Groups",
    "X-Email",
    "X-Roles",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Access-Token",
    "X-Authenticated-User",
    "X-Authenticated-Userid",
    "X-Remote-User",
    "Remote-User",
    "X-Principal",
)

#: Regex location (nested in /api/v1/media/) that takes the larger chunk body limit.
MEDIA_CHUNK_ROUTE = r"^/api/v1/media/uploads/[^/]+/chunks/[^/]+$"

DOCS_CSP = (
    "default-src 'none'; script-src 'self' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://cdn.jsdelivr.net; "
    "font-src 'self' data: https://cdn.jsdelivr.net; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

# Paths are written into nginx.conf unquoted: refuse anything nginx would parse.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@:,=~-]+$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


# ---------------------------------------------------------------------------- render


def render_config(settings: GatewaySettings, workdir: str | os.PathLike[str]) -> str:
    """Render a complete nginx.conf for an instance living in ``workdir``.

    The result runs unprivileged with ``nginx -p WORKDIR -c WORKDIR/nginx.conf``:
    pid, logs and temp files are all inside ``workdir``.
    """
    root = _absolute_safe_path(workdir)
    keys_file = _absolute_safe_path(settings.keys_file or root / "jwt-keys.json")
    values = {
        "njs_module": str(_absolute_safe_path(settings.njs_module)),
        "user_directive": _user_directive(settings),
        "worker_processes": settings.worker_processes,
        "error_log_level": settings.error_log_level,
        "error_log": settings.error_log or f"{root}/error.log",
        "access_log": settings.access_log or f"{root}/access.log",
        "workdir": str(root),
        "js_dir": str(_absolute_safe_path(GATEWAY_DIR)),
        "static_dir": str(_absolute_safe_path(STATIC_DIR)),
        "keys_file": str(keys_file),
        "jwt_issuer": settings.jwt_issuer,
        "jwt_audience": settings.jwt_audience,
        "jwt_leeway": str(settings.jwt_leeway_seconds),
        "route_map": _route_map(settings),
        "strict_retry_after": str(retry_after_seconds(settings.rate_limit_strict)),
        "default_retry_after": str(
            max(
                retry_after_seconds(settings.rate_limit_address),
                retry_after_seconds(settings.rate_limit_user),
            )
        ),
        "rate_address": settings.rate_limit_address,
        "rate_user": settings.rate_limit_user,
        "rate_strict": settings.rate_limit_strict,
        "burst_address": str(settings.rate_limit_address_burst),
        "burst_user": str(settings.rate_limit_user_burst),
        "burst_strict": str(settings.rate_limit_strict_burst),
        "cors_origin_map": _cors_origin_map(settings),
        "docs_csp": DOCS_CSP,
        "upstreams": _upstreams(settings),
        "listen": f"{settings.listen_host}:{settings.listen_port}",
        "real_ip": _real_ip(settings),
        "body_limit": settings.body_limit,
        "strip_identity_headers": _lines(
            8, (f'proxy_set_header {name} "";' for name in STRIPPED_IDENTITY_HEADERS)
        ),
        "connect_timeout": settings.upstream_connect_timeout,
        "read_timeout": settings.upstream_read_timeout,
        "service_locations": _service_locations(settings),
    }
    return _fill(TEMPLATE.read_text(), values)


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{{ name }}`` placeholders; an unknown or unused name is a bug."""
    used: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        used.add(name)
        return values[name]

    rendered = _PLACEHOLDER.sub(substitute, template)
    unused = set(values) - used
    if unused:
        raise KeyError(f"values not used by the template: {sorted(unused)}")
    return rendered


def _lines(indent: int, lines: Any) -> str:
    return "\n".join(" " * indent + line for line in lines)


def _absolute_safe_path(path: str | os.PathLike[str]) -> Path:
    resolved = Path(path).resolve()
    if not _SAFE_PATH.match(str(resolved)):
        raise ValueError(f"path not usable in nginx.conf (spaces, quotes, $...): {resolved}")
    return resolved


def _user_directive(settings: GatewaySettings) -> str:
    if settings.worker_user is None:
        return "# user: nginx's default (the directive only matters when started as root)"
    return f"user {settings.worker_user};"


def _route_map(settings: GatewaySettings) -> str:
    """The ``$route_class`` map entries. nginx tries regexes in order: first match wins."""
    entries = [
        "# CORS preflights are answered by the gateway before any token check.",
        '"~^OPTIONS " public;',
    ]
    for rule in ROUTE_RULES:
        owner = _owning_service(rule.path)
        if owner is not None and owner not in settings.upstreams:
            continue
        methods = "|".join(rule.methods)
        below = "(/.*)?" if rule.subpaths else ""
        entries.append(f'"~^({methods}) {re.escape(rule.path)}{below}$" {rule.access};')
    routed = [
        re.escape(prefix.removeprefix("/api/v1/"))
        for service in settings.upstreams
        for prefix in SERVICE_PREFIXES[service]
    ]
    if routed:
        entries.append("# Everything else a configured service serves needs a valid token.")
        entries.append(f'"~^[A-Z]+ /api/v1/({"|".join(routed)})(/|$)" protected;')
    return _lines(8, entries)


def _owning_service(path: str) -> str | None:
    for service, prefixes in SERVICE_PREFIXES.items():
        if any(path == p or path.startswith(p + "/") for p in prefixes):
            return service
    return None


def _cors_origin_map(settings: GatewaySettings) -> str:
    # Echo the caller's Origin only when it is listed (map matching ignores case).
    return _lines(8, (f'"{origin}" $http_origin;' for origin in settings.cors_allowed_origins))


def _upstreams(settings: GatewaySettings) -> str:
    blocks = []
    for service, addresses in settings.upstreams.items():
        servers = "".join(f"        server {address};\n" for address in addresses.split())
        blocks.append(f"    upstream svc_{service} {{\n{servers}        keepalive 16;\n    }}")
    return "\n".join(blocks)


def _real_ip(settings: GatewaySettings) -> str:
    if not settings.trusted_proxies:
        return "        # No trusted proxies: the TCP peer is the client address."
    lines = [f"set_real_ip_from {cidr};" for cidr in settings.trusted_proxies]
    lines += ["real_ip_header X-Forwarded-For;", "real_ip_recursive on;"]
    return _lines(8, lines)


def _service_locations(settings: GatewaySettings) -> str:
    blocks = []
    for service in settings.upstreams:
        for prefix in SERVICE_PREFIXES[service]:
            # "= /prefix" for the collection itself, "/prefix/" for what is below it:
            # a bare "/prefix" would also match "/prefixes".
            blocks.append(_location(f"= {prefix}", service, settings))
            blocks.append(_location(f"{prefix}/", service, settings))
    return "\n".join(blocks)


def _location(match: str, service: str, settings: GatewaySettings) -> str:
    body = [f"proxy_pass http://svc_{service};"]
    if service == "ai":
        # Tutor answers stream (text/event-stream) and the LLM may think for a while.
        body += ["proxy_buffering off;", f"proxy_read_timeout {settings.ai_read_timeout};"]
    if service == "media" and match.endswith("/"):
        body += [
            "# Upload chunks get the larger limit and are streamed, not buffered to disk.",
            f"location ~ {MEDIA_CHUNK_ROUTE} {{",
            f"    client_max_body_size {settings.body_limit_media_chunk};",
            "    proxy_request_buffering off;",
            f"    proxy_pass http://svc_{service};",
            "}",
        ]
    return f"        location {match} {{\n{_lines(12, body)}\n        }}"


# ------------------------------------------------------------------------- instance


def prepare_workdir(
    settings: GatewaySettings,
    workdir: str | os.PathLike[str],
    *,
    jwks: dict[str, Any] | None = None,
    openapi: dict[str, Any] | None = None,
) -> Path:
    """Create ``workdir`` with nginx.conf (and the keys file and openapi.json when given).

    Returns the path of nginx.conf; start the instance with :func:`nginx_command`.
    """
    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "nginx.conf"
    config.write_text(render_config(settings, root))
    if jwks is not None:
        write_keyfile(settings.keys_file or root / "jwt-keys.json", jwks)
    if openapi is not None:
        _write_json_atomically(root / "openapi.json", openapi)
    return config


def nginx_command(workdir: str | os.PathLike[str], nginx: str | None = None) -> list[str]:
    """The command that runs the instance in ``workdir`` in the foreground."""
    root = Path(workdir).resolve()
    binary = nginx or shutil.which("nginx") or "/usr/sbin/nginx"
    # -e: nginx opens its built-in error log before reading the config; keep it inside.
    return [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]


def _write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ CLI


def _load_json(source: str) -> dict[str, Any]:
    """Read a JSON document from an http(s) URL or a file."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 (scheme checked)
            return json.load(response)
    return json.loads(Path(source).read_text())


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.render",
        description=(
            "Render the Unpuzzle gateway's nginx.conf into WORKDIR (settings from GATEWAY_* "
            "env vars), optionally writing the keys file and the merged OpenAPI document."
        ),
    )
    parser.add_argument("--workdir", type=Path, help="instance directory (env GATEWAY_WORKDIR)")
    parser.add_argument("--port", type=int, help="listen port (env GATEWAY_LISTEN_PORT)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--jwks-url", help="fetch the auth service's JWKS and write the keys file")
    keys.add_argument("--jwks-file", help="read a JWKS from a file and write the keys file")
    parser.add_argument(
        "--openapi",
        action="append",
        default=[],
        metavar="SERVICE=URL_OR_FILE",
        help="a service's OpenAPI document; repeat per service; merged into openapi.json",
    )
    parser.add_argument(
        "--watch-keys",
        type=float,
        metavar="SECONDS",
        help="after rendering, keep refreshing the keys file from --jwks-url every SECONDS",
    )
    parser.add_argument("--print", action="store_true", help="print nginx.conf to stdout only")
    return parser.parse_args(argv)


def _settings_from(args: argparse.Namespace) -> GatewaySettings:
    overrides: dict[str, Any] = {}
    if args.workdir is not None:
        overrides["workdir"] = args.workdir
    if args.port is not None:
        overrides["listen_port"] = args.port
    return GatewaySettings(**overrides)


def _watch_keys(url: str, keys_file: Path, interval: float) -> None:
    """Refresh the keys file forever; a failed fetch keeps the previous keys."""
    while True:
        time.sleep(interval)
        try:
            write_keyfile(keys_file, _load_json(url))
        except (OSError, ValueError) as exc:
            log.warning("keeping the previous keys: cannot refresh from %s: %s", url, exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m gateway.render``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parse_args(argv)
    if args.watch_keys and not args.jwks_url:
        log.error("--watch-keys needs --jwks-url")
        return 2
    settings = _settings_from(args)
    if args.print:
        sys.stdout.write(render_config(settings, settings.workdir))
        return 0
    jwks_source = args.jwks_url or args.jwks_file
    jwks = _load_json(jwks_source) if jwks_source else None
    openapi = None
    if args.openapi:
        sources = dict(item.split("=", 1) for item in args.openapi)
        openapi = merge_openapi({name: _load_json(src) for name, src in sources.items()})
    config = prepare_workdir(settings, settings.workdir, jwks=jwks, openapi=openapi)
    log.info("wrote %s; run: %s", config, " ".join(nginx_command(settings.workdir)))
    if args.watch_keys:
        keys_file = settings.keys_file or config.parent / "jwt-keys.json"
        _watch_keys(args.jwks_url, keys_file, args.watch_keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
