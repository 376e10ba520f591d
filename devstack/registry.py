"""The services of the suite, in one place.

Adding a service to the dev stack is one line in :data:`SERVICES`; it is started only
once its folder exists under ``services/``. Each service follows DESIGN.md §2: the
import package ``<name>_service`` with a CLI (``python -m <package> serve | worker |
migrate``), settings read from ``<NAME>_*`` environment variables, ``/readyz`` and
``/openapi.json``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """A command of a service run now and then (``python -m <package> <args>``)."""

    name: str
    args: tuple[str, ...]
    every_seconds: float


@dataclass(frozen=True)
class Sidecar:
    """A helper process a service needs in development (a local S3, a fake Stripe or OpenAI).

    Started before the service as ``python -m <args>`` with ``{port}`` and ``{dev_dir}``
    filled in; the stack waits until ``port`` accepts connections. ``port`` is moved to
    a free one for a second stack (``--free-ports``).
    """

    name: str
    args: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class StackContext:
    """What a service's extra environment may depend on."""

    secrets: Mapping[str, str]
    dev_dir: Path
    gateway_url: str
    environ: Mapping[str, str]
    #: Sidecar name -> the port it listens on in this stack.
    sidecar_ports: Mapping[str, int] = field(default_factory=dict)


EnvHook = Callable[[StackContext], dict[str, str]]


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    #: Whether ``python -m <package> worker`` runs beside the API.
    worker: bool = True
    #: Periodic commands (cleanups and the like).
    jobs: tuple[Job, ...] = ()
    #: Helper processes started before the service.
    sidecars: tuple[Sidecar, ...] = ()
    #: Names of extra secrets to generate into ``.dev/secrets.env`` on first run.
    secrets: tuple[str, ...] = ()
    #: Service-specific environment (beyond database, NATS, Redis, prefix, host, port).
    extra_env: EnvHook | None = field(default=None, compare=False)
    #: Import package; by convention ``<name>_service``.
    package: str = ""

    @property
    def module(self) -> str:
        return self.package or f"{self.name}_service"

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    @property
    def folder(self) -> Path:
        return REPO / "services" / self.name

    def present(self) -> bool:
        """Its code is in this checkout: an app (main.py) and a CLI (__main__.py)."""
        package = self.folder / self.module
        return (package / "main.py").is_file() and (package / "__main__.py").is_file()

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _auth_env(ctx: StackContext) -> dict[str, str]:
    return {
        "AUTH_KEY_ENCRYPTION_SECRET": ctx.secrets["AUTH_KEY_ENCRYPTION_SECRET"],
        "AUTH_MAIL_DIR": str(ctx.dev_dir / "mail"),
        "AUTH_PUBLIC_BASE_URL": ctx.gateway_url,
    }


#: The key media sends to the dev stack's fake OpenAI (which takes any key).
DEV_OPENAI_API_KEY = "sk-unpuzzle-dev-only"


def _media_env(ctx: StackContext) -> dict[str, str]:
    # media_service.local_s3: moto in server mode, objects in memory.
    env = {"MEDIA_S3_ENDPOINT_URL": f"http://127.0.0.1:{ctx.sidecar_ports['media-s3']}"}
    # devstack.fake_openai: transcripts read from the media's tags, no speech recognition.
    # A key given in the environment wins: media then talks to the real API (or to
    # MEDIA_OPENAI_BASE_URL, when that is given too).
    if not ctx.environ.get("MEDIA_OPENAI_API_KEY"):
        env["MEDIA_OPENAI_API_KEY"] = DEV_OPENAI_API_KEY
        env["MEDIA_OPENAI_BASE_URL"] = f"http://127.0.0.1:{ctx.sidecar_ports['media-openai']}/v1"
    return env


def _payments_env(ctx: StackContext) -> dict[str, str]:
    # A webhook secret given in the environment wins over the generated dev one.
    secret = ctx.environ.get("STRIPE_WEBHOOK_SECRET") or ctx.secrets["STRIPE_WEBHOOK_SECRET"]
    return {
        "PAYMENTS_STRIPE_WEBHOOK_SECRET": secret,
        # payments_service.fake_stripe: a local Stripe-compatible server, objects in memory.
        "PAYMENTS_STRIPE_API_BASE": f"http://127.0.0.1:{ctx.sidecar_ports['payments-stripe']}",
        # Where `python -m payments_service confirm` delivers its signed webhook.
        "PAYMENTS_WEBHOOK_URL": f"{ctx.gateway_url}/api/v1/payments/webhooks/stripe",
    }


SERVICES: tuple[Service, ...] = (
    Service(
        "auth",
        8101,
        jobs=(Job("cleanup-sessions", ("cleanup-sessions",), every_seconds=3600),),
        secrets=("AUTH_KEY_ENCRYPTION_SECRET",),
        extra_env=_auth_env,
    ),
    Service("courses", 8102),
    Service(
        "media",
        8103,
        sidecars=(
            Sidecar(
                "media-s3",
                ("media_service.local_s3", "--port", "{port}"),
                port=9000,
            ),
            Sidecar(
                "media-openai",
                ("devstack.fake_openai", "--port", "{port}"),
                port=8190,
            ),
        ),
        extra_env=_media_env,
        jobs=(Job("cleanup-uploads", ("cleanup-uploads",), every_seconds=3600),),
    ),
    Service("ai", 8104),
    Service(
        "payments",
        8105,
        sidecars=(
            Sidecar(
                "payments-stripe",
                ("payments_service.fake_stripe", "--port", "{port}"),
                port=12111,
            ),
        ),
        secrets=("STRIPE_WEBHOOK_SECRET",),
        extra_env=_payments_env,
        jobs=(Job("expire-subscriptions", ("expire-subscriptions",), every_seconds=3600),),
    ),
    Service(
        "analytics",
        8106,
        jobs=(Job("daily-report", ("daily-report",), every_seconds=3600),),
    ),
)

#: The service whose JWKS the gateway and the other services trust.
AUTH = "auth"
JWKS_PATH = "/api/v1/auth/.well-known/jwks.json"


def present_services() -> list[Service]:
    """The registered services whose code exists in this checkout."""
    return [s for s in SERVICES if s.present()]


def unregistered_service_folders() -> list[str]:
    """Folders under services/ that the registry does not know (a forgotten line)."""
    known = {s.name for s in SERVICES}
    root = REPO / "services"
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "pyproject.toml").exists() and p.name not in known
    )
