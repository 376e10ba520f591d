"""The whole suite on one machine: infrastructure, databases, services, gateway."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import make_url

from devstack import gatewayctl, infra
from devstack.procs import Child, Supervisor, tail
from devstack.registry import (
    AUTH,
    JWKS_PATH,
    REPO,
    Service,
    StackContext,
    present_services,
    unregistered_service_folders,
)
from devstack.secrets import db_password_name, ensure_secrets, read_env_file
from unpuzzle_common.db import libpq_url, provision_service, service_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "unpuzzle"
DEFAULT_PREFIX = "unpuzzle"
DEFAULT_GATEWAY_PORT = 8080

_PREFIX = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_DATABASE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: At most this many API processes per service (--replicas).
MAX_REPLICAS = 8

#: Secrets never handed to long-running children.
_PRIVATE_ENV = ("ADMIN_PASSWORD",)


class StackError(RuntimeError):
    """Something the developer must fix; printed without a traceback."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


@dataclass
class Options:
    port: int = DEFAULT_GATEWAY_PORT
    database: str = DEFAULT_DATABASE
    prefix: str = DEFAULT_PREFIX
    dev_dir: Path = REPO / ".dev"
    admin_url: str = DEFAULT_ADMIN_URL
    nats_url: str = DEFAULT_NATS_URL
    redis_url: str = DEFAULT_REDIS_URL
    #: Run the services on free ports instead of the registry's (a second stack).
    free_ports: bool = False
    #: Drop the database first (its data was encrypted with another dev dir's secrets).
    fresh: bool = False
    keys_every: float = 5.0
    #: Service name -> API processes to run (default 1); the gateway balances them.
    replicas: dict[str, int] = field(default_factory=dict)
    ready_timeout: float = 90.0
    stop_timeout: float = 10.0

    def validate(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise StackError(f"--prefix must match {_PREFIX.pattern}, got {self.prefix!r}")
        if not _DATABASE.match(self.database):
            raise StackError(f"--database must match {_DATABASE.pattern}, got {self.database!r}")
        if not 1 <= self.port <= 65535:
            raise StackError(f"--port out of range: {self.port}")
        for name, count in self.replicas.items():
            if not 1 <= count <= MAX_REPLICAS:
                raise StackError(f"--replicas {name}={count}: choose 1 to {MAX_REPLICAS}")

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.dev_dir / "logs"


def say(message: str) -> None:
    print(f"devstack: {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


@dataclass
class Stack:
    options: Options
    services: list[Service] = field(default_factory=present_services)
    supervisor: Supervisor = field(init=False)
    stop_requested: int = 0
    stop_signal: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    sidecar_ports: dict[str, int] = field(default_factory=dict)
    #: Ports of a service's extra API processes (--replicas), beside ports[name].
    replica_ports: dict[str, list[int]] = field(default_factory=dict)
    db_urls: dict[str, str] = field(default_factory=dict)
    infra_children: list[Child] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.options.validate()
        self.supervisor = Supervisor(self.options.log_dir)
        missing = [s for s in self.services if not s.installed()]
        if missing:
            say(
                f"!! skipped, not installed in this environment: "
                f"{', '.join(s.module for s in missing)} (add `-e services/<name>` to "
                "requirements-dev.txt and run `make install`)"
            )
            self.services = [s for s in self.services if s.installed()]
        if not self.services:
            raise StackError("no installed service found under services/")
        unknown = sorted(set(self.options.replicas) - {s.name for s in self.services})
        if unknown:
            raise StackError(f"--replicas names no service here: {', '.join(unknown)}")

    # ------------------------------------------------------------------ signals

    def _on_signal(self, signum: int, _frame: object) -> None:
        # No printing here: the main thread may be inside print() (reentrant call).
        self.stop_requested += 1
        self.stop_signal = signal.Signals(signum).name
        if self.stop_requested > 1:  # a second Ctrl-C: no more waiting
            for child in self.supervisor.children:
                if child.alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop_requested:
                raise Interrupted
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------------- infra

    def ensure_infra(self, *, postgres: bool = True, nats: bool = True, redis: bool = True) -> None:
        """Use what answers on the configured URLs; start a local server for what does not."""
        o = self.options
        wanted: list[tuple[str, Callable[[], infra.Probe], Callable[[], infra.LocalServer], str]]
        wanted = []
        if postgres:
            wanted.append(
                (
                    "PostgreSQL",
                    lambda: infra.probe_postgres(o.admin_url),
                    lambda: infra.postgres_server(o.admin_url, o.dev_dir),
                    make_url(libpq_url(o.admin_url)).host or "127.0.0.1",
                )
            )
        if nats:
            wanted.append(
                (
                    "NATS",
                    lambda: infra.probe_nats(o.nats_url),
                    lambda: infra.nats_server(o.nats_url, o.dev_dir),
                    infra.host_port(o.nats_url, 4222)[0],
                )
            )
        if redis:
            wanted.append(
                (
                    "Redis",
                    lambda: infra.probe_redis(o.redis_url),
                    lambda: infra.redis_server(o.redis_url, o.dev_dir),
                    infra.host_port(o.redis_url, 6379)[0],
                )
            )
        for label, probe, local_server, host in wanted:
            result = probe()
            if result:
                say(f"{label}: using the running server ({result.detail})")
                continue
            if host not in infra.LOCAL_HOSTS:
                raise StackError(f"{label} at {host} does not answer: {result.detail}")
            server = local_server()
            say(f"{label}: not answering ({result.detail}); starting a local one")
            infra.run_prepare(server, self.options.log_dir / f"{server.name}.log")
            child = self.supervisor.start(
                server.name,
                server.args,
                stop_signal=server.stop_signal,
                user=server.user,
                append_log=True,
            )
            self.infra_children.append(child)
            self._wait_for(f"{label} (local)", lambda p=probe: bool(p()), [child], timeout=60)

    # ------------------------------------------------------------------ database

    def load_secrets(self) -> list[str]:
        """Load (and on first run generate) the dev secrets; returns the new names."""
        path = self.options.dev_dir / "secrets.env"
        self.secrets, new = ensure_secrets(path, self.services)
        if new:
            say(f"generated dev secrets {', '.join(new)} into {_rel(path)}")
        return new

    def check_keys_readable(self) -> None:
        """Refuse to make a new key-encryption secret beside a database holding signing keys.

        Those keys were encrypted with the secret of a dev dir that is gone: auth would
        start, then fail every sign-in. ``--fresh`` starts the database over.
        """
        known = read_env_file(self.options.dev_dir / "secrets.env")
        if "AUTH_KEY_ENCRYPTION_SECRET" in known or self.options.fresh:
            return
        url = make_url(libpq_url(self.options.admin_url)).set(database=self.options.database)
        try:
            conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        except psycopg.OperationalError:
            return  # no such database yet
        with conn:
            table = conn.execute("SELECT to_regclass('auth.signing_keys')").fetchone()
            keys = (
                table
                and table[0]
                and conn.execute("SELECT count(*) FROM auth.signing_keys").fetchone()
            )
        if keys and keys[0]:
            raise StackError(
                f"database {self.options.database} holds auth signing keys encrypted with a "
                f"secret that {_rel(self.options.dev_dir / 'secrets.env')} does not hold. "
                "Restore the old secrets.env, or start over with --fresh (drops the database)."
            )

    def drop_database(self) -> None:
        database = self.options.database
        with psycopg.connect(libpq_url(self.options.admin_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        say(f"dropped database {database} (--fresh)")

    def provision(self) -> None:
        """Create each service's role and schema (idempotent)."""
        for service in self.services:
            for attempt in range(1, 4):
                try:
                    self.db_urls[service.name] = provision_service(
                        self.options.admin_url,
                        service=service.name,
                        password=self.secrets[db_password_name(service.name)],
                        database=self.options.database,
                    )
                    break
                except (psycopg.InternalError, psycopg.IntegrityError):
                    # Roles are cluster-wide: another stack or test run provisioning the
                    # same role at this moment ("tuple concurrently updated"). Try again.
                    if attempt == 3:
                        raise
                    self._sleep(0.5 * attempt)

    def migrate(self) -> None:
        """Run every service's migrations, in parallel (each owns its own schema)."""
        runs = [
            (
                f"{service.name}-migrate",
                [sys.executable, "-m", service.module, "migrate"],
                self.service_env(service),
            )
            for service in self.services
        ]
        self.run_oneoffs(runs, timeout=180)
        say(f"migrated database {self.options.database}: {', '.join(self.names())}")

    def create_admin(self) -> str | None:
        email, password = os.environ.get("ADMIN_EMAIL"), os.environ.get("ADMIN_PASSWORD")
        if not (email and password):
            if email or password:
                say("set both ADMIN_EMAIL and ADMIN_PASSWORD to create an admin")
            return None
        auth = self.service(AUTH)
        if auth is None:
            say("no auth service: ADMIN_EMAIL ignored")
            return None
        env = self.service_env(auth, private=True)
        env["ADMIN_PASSWORD"] = password
        self.run_oneoffs(
            [
                (
                    "auth-create-admin",
                    [sys.executable, "-m", auth.module, "create-admin", "--email", email],
                    env,
                )
            ],
            timeout=120,
        )
        return email

    def run_oneoffs(
        self, runs: list[tuple[str, list[str], dict[str, str]]], timeout: float
    ) -> None:
        children = [self.supervisor.start(name, args, env=env) for name, args, env in runs]
        for child in children:
            child.reported = True  # their exit is expected; checked here
        deadline = time.monotonic() + timeout
        while any(c.alive() for c in children):
            if time.monotonic() > deadline:
                self.supervisor.stop(children)
                raise StackError(f"timed out: {', '.join(c.name for c in children)}")
            self._sleep(0.1)
        failed = [c for c in children if c.poll() != 0]
        if failed:
            details = "\n".join(
                f"--- {c.name} exited with {c.poll()} ({_rel(c.log_path)}):\n{tail(c.log_path)}"
                for c in failed
            )
            raise StackError(f"{', '.join(c.name for c in failed)} failed\n{details}")

    # ------------------------------------------------------------------ services

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def assign_ports(self) -> None:
        free = self.options.free_ports
        for service in self.services:
            self.ports[service.name] = free_port() if free else service.port
            for sidecar in service.sidecars:
                self.sidecar_ports[sidecar.name] = free_port() if free else sidecar.port
            extra = self.options.replicas.get(service.name, 1) - 1
            if extra > 0:
                self.replica_ports[service.name] = [free_port() for _ in range(extra)]
        busy = [
            f"{n}:{p}" for n, p in {**self.ports, **self.sidecar_ports}.items() if port_in_use(p)
        ]
        if port_in_use(self.options.port):
            busy.append(f"gateway:{self.options.port}")
        if busy:
            raise StackError(
                f"ports already in use: {', '.join(busy)} (another stack running? "
                "use --port and --free-ports for a second one)"
            )

    @property
    def ports_file(self) -> Path:
        return self.options.dev_dir / "ports.json"

    def save_ports(self) -> None:
        """Record the ports of this run, so ``env`` prints the ones really in use."""
        self.options.dev_dir.mkdir(parents=True, exist_ok=True)
        self.ports_file.write_text(
            json.dumps(
                {
                    "gateway": self.options.port,
                    "services": self.ports,
                    "sidecars": self.sidecar_ports,
                    "replicas": self.replica_ports,
                },
                indent=2,
            )
        )

    def load_ports(self) -> None:
        """The ports of the last ``up`` with this dev dir (registry defaults without one)."""
        if not self.ports_file.exists():
            return
        saved = json.loads(self.ports_file.read_text())
        self.options.port = int(saved["gateway"])
        self.ports.update({k: int(v) for k, v in saved["services"].items()})
        self.sidecar_ports.update({k: int(v) for k, v in saved["sidecars"].items()})
        self.replica_ports.update(
            {k: [int(p) for p in v] for k, v in saved.get("replicas", {}).items()}
        )

    def api_ports(self) -> dict[str, list[int]]:
        """Every service's API ports: its own, then its replicas'."""
        return {
            name: [port, *self.replica_ports.get(name, [])] for name, port in self.ports.items()
        }

    def jwks_url(self) -> str:
        port = self.ports.get(AUTH, 8101)
        return f"http://127.0.0.1:{port}{JWKS_PATH}"

    def service_env(self, service: Service, *, private: bool = False) -> dict[str, str]:
        """The environment of one service's processes (its settings, ``<NAME>_*``)."""
        o = self.options
        p = service.env_prefix
        env = {k: v for k, v in os.environ.items() if private or k not in _PRIVATE_ENV}
        db_url = self.db_urls.get(service.name) or service_url(
            o.admin_url,
            service=service.name,
            password=self.secrets[db_password_name(service.name)],
            database=o.database,
        )
        env.update(
            {
                "ENV": "development",
                "PYTHONUNBUFFERED": "1",
                f"{p}DATABASE_URL": db_url,
                f"{p}NATS_URL": o.nats_url,
                f"{p}REDIS_URL": o.redis_url,
                f"{p}EVENTS_PREFIX": o.prefix,
                f"{p}HOST": "127.0.0.1",
                f"{p}PORT": str(self.ports.get(service.name, service.port)),
                f"{p}JWKS_URL": self.jwks_url(),
            }
        )
        if service.extra_env is not None:
            sidecar_ports = {
                sidecar.name: self.sidecar_ports.get(sidecar.name, sidecar.port)
                for s in self.services
                for sidecar in s.sidecars
            }
            ctx = StackContext(
                self.secrets, o.dev_dir.resolve(), o.gateway_url, os.environ, sidecar_ports
            )
            env.update(service.extra_env(ctx))
        return env

    def start_sidecars(self) -> None:
        """Start the services' helper processes; wait until each accepts connections."""
        started: list[tuple[Child, int]] = []
        for service in self.services:
            env = self.service_env(service)
            for sidecar in service.sidecars:
                port = self.sidecar_ports[sidecar.name]
                fill = {"port": str(port), "dev_dir": str(self.options.dev_dir.resolve())}
                args = [arg.format(**fill) for arg in sidecar.args]
                child = self.supervisor.start(sidecar.name, [sys.executable, "-m", *args], env=env)
                started.append((child, port))
        if started:
            self._wait_for(
                "sidecars (" + ", ".join(c.name for c, _ in started) + ")",
                lambda: all(port_in_use(port) for _, port in started),
                [c for c, _ in started],
                timeout=60,
            )

    def start_services(self) -> list[Child]:
        children = []
        for service in self.services:
            env = self.service_env(service)
            args = [sys.executable, "-m", service.module]
            children.append(self.supervisor.start(f"{service.name}-api", [*args, "serve"], env=env))
            for number, port in enumerate(self.replica_ports.get(service.name, []), start=2):
                replica_env = {**env, f"{service.env_prefix}PORT": str(port)}
                children.append(
                    self.supervisor.start(
                        f"{service.name}-api-{number}", [*args, "serve"], env=replica_env
                    )
                )
            if service.worker:
                children.append(
                    self.supervisor.start(f"{service.name}-worker", [*args, "worker"], env=env)
                )
        return children

    def _wait_for(
        self, what: str, ready: Callable[[], bool], watch: list[Child], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = [c for c in watch if c.poll() is not None]
            if dead:
                details = "\n".join(
                    f"--- {c.name} exited with {c.poll()} ({_rel(c.log_path)}):\n{tail(c.log_path)}"
                    for c in dead
                )
                raise StackError(f"{what}: a process died while starting\n{details}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{what} not ready after {timeout:.0f}s; see {_rel(self.options.log_dir)}"
                )
            self._sleep(0.2)

    def wait_ready(self, children: list[Child], client: httpx.Client) -> None:
        pending = {
            f"{name}:{port}": port for name, ports in self.api_ports().items() for port in ports
        }

        def all_ready() -> bool:
            for name, port in list(pending.items()):
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            return not pending

        self._wait_for(
            "services (" + ", ".join(self.names()) + ")",
            all_ready,
            children,
            self.options.ready_timeout,
        )

    def fetch_openapi(self, client: httpx.Client) -> dict[str, dict[str, Any]]:
        docs = {}
        for name, port in self.ports.items():
            response = client.get(f"http://127.0.0.1:{port}/openapi.json")
            response.raise_for_status()
            docs[name] = response.json()
        return docs

    def fetch_jwks(self, client: httpx.Client) -> dict[str, Any]:
        if AUTH not in self.ports:
            return {"keys": []}
        response = client.get(self.jwks_url())
        response.raise_for_status()
        return response.json()

    # ------------------------------------------------------------------ commands

    def prepare_database(self) -> None:
        if self.service(AUTH) is not None:
            self.check_keys_readable()
        self.load_secrets()
        if self.options.fresh:
            self.drop_database()
        self.provision()
        self.migrate()

    def run_migrate(self) -> int:
        with self.signals():
            try:
                self.ensure_infra(nats=False, redis=False)
                self.prepare_database()
            except Interrupted:
                return 130
            finally:
                self.supervisor.stop_all(self.options.stop_timeout)
        return 0

    def run_auth_command(self, *args: str) -> int:
        auth = self.service(AUTH)
        if auth is None:
            raise StackError("no auth service in this checkout")
        with self.signals():
            try:
                self.ensure_infra(nats=False, redis=False)
                self.check_keys_readable()
                self.load_secrets()
                self.provision()
                name = "auth-" + args[0]
                command = [sys.executable, "-m", auth.module, *args]
                self.run_oneoffs([(name, command, self.service_env(auth))], timeout=120)
                print(tail(self.options.log_dir / f"{name}.log", lines=5), flush=True)
            except Interrupted:
                return 130
            finally:
                self.supervisor.stop_all(self.options.stop_timeout)
        return 0

    def up(self) -> int:
        """Start everything, keep the gateway's keys fresh, stop everything on a signal."""
        unknown = unregistered_service_folders()
        if unknown:
            say(f"not in devstack/registry.py, so not started: {', '.join(unknown)}")
        with self.signals():
            try:
                return self._up()
            except Interrupted:
                say(f"{self.stop_signal} received while starting: stopping")
                self.supervisor.stop_all(self.options.stop_timeout)
                return 130
            except BaseException:
                self.supervisor.stop_all(self.options.stop_timeout)
                raise

    def _up(self) -> int:
        o = self.options
        started = time.monotonic()
        self.assign_ports()
        self.save_ports()
        self.ensure_infra()
        self.prepare_database()
        admin = self.create_admin()
        with httpx.Client(timeout=5.0) as client:
            self.start_sidecars()
            service_children = self.start_services()
            self.wait_ready(service_children, client)
            gateway = gatewayctl.Gateway(
                workdir=o.dev_dir / "gateway",
                port=o.port,
                upstreams=dict(self.api_ports()),
            )
            gateway.prepare(jwks=self.fetch_jwks(client), openapi=self.fetch_openapi(client))
            nginx = self.supervisor.start("gateway", gateway.command())
            self._wait_for(
                "gateway",
                lambda: gateway.healthy(client),
                [nginx],
                timeout=30,
            )
            self.summary(admin, time.monotonic() - started)
            self.watch(client, gateway)
        return self.shutdown()

    def summary(self, admin: str | None, seconds: float) -> None:
        o = self.options
        procs = [c.name for c in self.supervisor.children if c.alive()]
        lines = [
            f"Unpuzzle is up in {seconds:.1f}s: {o.gateway_url}  (docs {o.gateway_url}/api/docs)",
            "  services: "
            + ", ".join(
                [f"{n} :{' :'.join(map(str, ports))}" for n, ports in self.api_ports().items()]
                + [f"{n} :{p}" for n, p in self.sidecar_ports.items()]
            ),
            f"  admin: {admin} (ADMIN_EMAIL)"
            if admin
            else "  admin: none (set ADMIN_EMAIL and ADMIN_PASSWORD to create one)",
            f"  database: {o.database} · events prefix: {o.prefix} · secrets: "
            f"{_rel(o.dev_dir / 'secrets.env')}",
            f"  logs: {_rel(o.log_dir)}/<proc>.log for {', '.join(procs)};"
            f" gateway access log {_rel(o.dev_dir / 'gateway' / 'access.log')}",
            "  Ctrl-C stops everything.",
        ]
        say("\n".join(lines))

    def watch(self, client: httpx.Client, gateway: gatewayctl.Gateway) -> None:
        """Until a signal: refresh the keys file, run periodic jobs, report deaths."""
        o = self.options
        next_keys = time.monotonic() + o.keys_every
        jobs = {
            (service, job): time.monotonic() + job.every_seconds
            for service in self.services
            for job in service.jobs
        }
        running_jobs: dict[tuple[Service, Any], Child] = {}
        keys_failing = False
        while not self.stop_requested:
            time.sleep(0.2)
            now = time.monotonic()
            for child in self.supervisor.newly_dead():
                self.unexpected_exits.append(child.name)
                say(
                    f"!! {child.name} exited with {child.poll()}; last lines of "
                    f"{_rel(child.log_path)}:\n{tail(child.log_path)}"
                )
            if now >= next_keys:
                next_keys = now + o.keys_every
                try:
                    if gateway.update_keys(self.fetch_jwks(client)):
                        say("signing keys changed: gateway keys file rewritten")
                    keys_failing = False
                except (httpx.HTTPError, ValueError) as exc:
                    if not keys_failing:
                        say(f"cannot refresh the gateway keys (keeping the old ones): {exc}")
                    keys_failing = True
            for key, due in jobs.items():
                service, job = key
                previous = running_jobs.get(key)
                if now < due or (previous is not None and previous.alive()):
                    continue
                jobs[key] = now + job.every_seconds
                child = self.supervisor.start(
                    f"{service.name}-{job.name}",
                    [sys.executable, "-m", service.module, *job.args],
                    env=self.service_env(service),
                    append_log=True,
                )
                child.reported = True  # a job ends by itself
                running_jobs[key] = child

    def shutdown(self) -> int:
        say(f"{self.stop_signal or 'signal'} received: stopping ...")
        killed = self.supervisor.stop_all(self.options.stop_timeout)
        if killed:
            names = ", ".join(c.name for c in killed)
            say(f"killed after {self.options.stop_timeout:.0f}s: {names}")
            return 4
        if self.unexpected_exits:
            say(f"stopped; these had died on their own: {', '.join(self.unexpected_exits)}")
            return 3
        say("stopped")
        return 0


def dump_env(stack: Stack, service_name: str) -> str:
    """``export`` lines to run one service by hand against the dev stack's database."""
    service = stack.service(service_name)
    if service is None:
        raise StackError(f"unknown or absent service {service_name!r}: {', '.join(stack.names())}")
    stack.load_secrets()
    stack.load_ports()
    env = stack.service_env(service)
    names = sorted(k for k in env if k.startswith(service.env_prefix) or k == "ENV")
    return "\n".join(f"export {k}={json.dumps(env[k])}" for k in names)
