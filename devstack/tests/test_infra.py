"""The "is it up" probes, and the local servers started when nothing answers."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack import infra
from devstack.stack import Options, Stack

ADMIN_URL = os.environ.get(
    "UNPUZZLE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("UNPUZZLE_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("UNPUZZLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fake_server(greeting: bytes, reply: bytes) -> Iterator[int]:
    """A TCP server that sends ``greeting`` on connect and ``reply`` to the first read."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            if greeting:
                conn.sendall(greeting)
            try:
                conn.recv(4096)
                conn.sendall(reply)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


def test_the_running_servers_answer():
    assert infra.probe_postgres(ADMIN_URL), infra.probe_postgres(ADMIN_URL).detail
    assert infra.probe_nats(NATS_URL), infra.probe_nats(NATS_URL).detail
    assert infra.probe_redis(REDIS_URL), infra.probe_redis(REDIS_URL).detail


def test_a_closed_port_is_down():
    port = free_port()
    assert not infra.probe_postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    assert not infra.probe_nats(f"nats://127.0.0.1:{port}")
    assert not infra.probe_redis(f"redis://127.0.0.1:{port}/0")


def test_an_open_port_that_speaks_something_else_is_down():
    with fake_server(b"SSH-2.0-OpenSSH_9.2\r\n", b"") as port:
        probe = infra.probe_nats(f"nats://127.0.0.1:{port}")
        assert not probe and "not a NATS server" in probe.detail
    with fake_server(b"", b"-ERR unknown command\r\n") as port:
        probe = infra.probe_redis(f"redis://127.0.0.1:{port}/0")
        assert not probe and "unexpected answer" in probe.detail


def test_nats_without_jetstream_is_not_enough():
    info = b'INFO {"version":"2.9.0","jetstream":false}\r\n'
    with fake_server(info, b"PONG\r\n") as port:
        probe = infra.probe_nats(f"nats://127.0.0.1:{port}")
    assert not probe and "JetStream" in probe.detail


def test_a_silent_server_times_out():
    with fake_server(b"", b"") as port:
        assert not infra.probe_nats(f"nats://127.0.0.1:{port}", timeout=0.5)


@pytest.mark.skipif(
    not (infra.find_nats_server() and shutil.which("redis-server") and infra.find_postgres_bin()),
    reason="needs nats-server, redis-server and initdb/postgres binaries",
)
def test_missing_servers_are_started_locally_and_stopped():
    # A world-readable dev dir: when run as root, PostgreSQL runs as "postgres".
    dev_dir = Path(tempfile.mkdtemp(prefix="devstack-infra-"))
    dev_dir.chmod(0o755)
    pg, nats, redis = free_port(), free_port(), free_port()
    options = Options(
        dev_dir=dev_dir,
        admin_url=f"postgresql://postgres@127.0.0.1:{pg}/postgres",
        nats_url=f"nats://127.0.0.1:{nats}",
        redis_url=f"redis://127.0.0.1:{redis}/0",
    )
    stack = Stack(options)
    try:
        stack.ensure_infra()
        assert {c.name for c in stack.infra_children} == {"postgres", "nats", "redis"}
        assert infra.probe_postgres(options.admin_url)
        assert infra.probe_nats(options.nats_url)
        assert infra.probe_redis(options.redis_url)
        assert (dev_dir / "postgres" / "PG_VERSION").exists()
        assert (dev_dir / "nats").is_dir()
    finally:
        killed = stack.supervisor.stop_all(timeout=15)
        shutil.rmtree(dev_dir, ignore_errors=True)
    assert killed == []
    assert not infra.probe_nats(options.nats_url)
    assert not infra.probe_redis(options.redis_url)
    assert not infra.probe_postgres(options.admin_url)
