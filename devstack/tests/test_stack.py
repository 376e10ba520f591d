"""Secrets, the registry, child processes and the CLI's plain commands."""

from __future__ import annotations

import signal
import sys
import time

from devstack import cli
from devstack.procs import Supervisor
from devstack.registry import SERVICES, present_services, unregistered_service_folders
from devstack.secrets import ensure_secrets, read_env_file


def test_every_service_folder_is_registered_once_with_its_own_port():
    assert unregistered_service_folders() == []
    assert len({s.name for s in SERVICES}) == len(SERVICES)
    assert len({s.port for s in SERVICES}) == len(SERVICES)
    assert "auth" in [s.name for s in present_services()]


def test_secrets_are_generated_once_and_kept(tmp_path):
    path = tmp_path / "secrets.env"
    auth = [s for s in SERVICES if s.name == "auth"]
    first, new = ensure_secrets(path, auth)
    assert set(new) == {"AUTH_DB_PASSWORD", "AUTH_KEY_ENCRYPTION_SECRET"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again, new_again = ensure_secrets(path, auth)
    assert again == first and new_again == []
    # A service added later gets its secrets appended; the others do not change.
    payments = [s for s in SERVICES if s.name == "payments"]
    more, added = ensure_secrets(path, auth + payments)
    assert set(added) == {"PAYMENTS_DB_PASSWORD", "STRIPE_WEBHOOK_SECRET"}
    assert more["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    assert {k: more[k] for k in first} == first
    assert read_env_file(path) == more


def test_children_are_stopped_and_stragglers_killed(tmp_path):
    supervisor = Supervisor(tmp_path)
    polite = supervisor.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = supervisor.start(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)",
        ],
    )
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "stubborn.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed = supervisor.stop_all(timeout=1)
    assert [c.name for c in killed] == ["stubborn"]
    assert polite.poll() == -signal.SIGTERM
    assert stubborn.poll() == -signal.SIGKILL


def test_a_child_that_dies_is_reported_once(tmp_path):
    supervisor = Supervisor(tmp_path)
    crash = "print('boom'); raise SystemExit(3)"
    child = supervisor.start("crasher", [sys.executable, "-c", crash])
    deadline = time.monotonic() + 10
    while child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [c.name for c in supervisor.newly_dead()] == ["crasher"]
    assert supervisor.newly_dead() == []
    assert "boom" in (tmp_path / "crasher.log").read_text()


def test_env_prints_a_services_settings(tmp_path, capsys):
    code = cli.main(["env", "auth", "--dev-dir", str(tmp_path), "--database", "devdb"])
    assert code == 0
    out = capsys.readouterr().out
    assert "export AUTH_DATABASE_URL=" in out and "/devdb" in out
    assert 'export AUTH_PORT="8101"' in out
    assert "export AUTH_KEY_ENCRYPTION_SECRET=" in out
    assert (tmp_path / "secrets.env").exists()


def test_bad_options_are_refused(tmp_path, capsys):
    assert cli.main(["env", "auth", "--dev-dir", str(tmp_path), "--prefix", "Bad Prefix"]) == 1
    assert "--prefix" in capsys.readouterr().err


def test_sidecars_start_on_their_own_port_before_the_service(tmp_path):
    from devstack.registry import Service, Sidecar
    from devstack.stack import Options, Stack, port_in_use

    def sidecar_env(ctx):
        return {"FAKE_HELPER_URL": f"http://127.0.0.1:{ctx.sidecar_ports['fake-http']}"}

    fake = Service(
        "fake",
        1,
        package="json",  # any importable module: only the sidecar runs here
        sidecars=(Sidecar("fake-http", ("http.server", "{port}", "--bind", "127.0.0.1"), 1),),
        extra_env=sidecar_env,
    )
    stack = Stack(Options(dev_dir=tmp_path, free_ports=True), services=[fake])
    stack.load_secrets()
    stack.assign_ports()
    port = stack.sidecar_ports["fake-http"]
    assert port != 1
    try:
        stack.start_sidecars()
        assert port_in_use(port)
        assert stack.service_env(fake)["FAKE_HELPER_URL"] == f"http://127.0.0.1:{port}"
    finally:
        assert stack.supervisor.stop_all(timeout=5) == []
    assert not port_in_use(port)


def test_a_new_secret_beside_existing_signing_keys_is_refused(tmp_path):
    import uuid

    import psycopg
    import pytest
    from psycopg import sql

    from devstack.registry import SERVICES
    from devstack.stack import Options, Stack, StackError
    from unpuzzle_common.testing import ADMIN_URL

    auth = [s for s in SERVICES if s.name == "auth"]
    database = f"devstack_test_{uuid.uuid4().hex[:8]}"
    first = Options(dev_dir=tmp_path / "first", database=database, admin_url=ADMIN_URL)
    try:
        assert Stack(first, services=auth).run_migrate() == 0
        with psycopg.connect(ADMIN_URL.rsplit("/", 1)[0] + f"/{database}") as conn:
            conn.execute(
                "INSERT INTO auth.signing_keys (kid, alg, private_key, public_jwk, active_from)"
                " VALUES ('k1', 'ES256', 'x', '{}', now())"
            )
        other = Options(dev_dir=tmp_path / "other", database=database, admin_url=ADMIN_URL)
        with pytest.raises(StackError, match="--fresh"):
            Stack(other, services=auth).prepare_database()
        assert not (tmp_path / "other" / "secrets.env").exists()
        # The dev dir that made the keys is fine, and --fresh starts over.
        Stack(first, services=auth).prepare_database()
        other.fresh = True
        Stack(other, services=auth).prepare_database()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def test_media_transcribes_through_the_fake_openai_sidecar_unless_given_a_key(
    tmp_path, monkeypatch
):
    from devstack.registry import DEV_OPENAI_API_KEY, SERVICES
    from devstack.stack import Options, Stack

    (media,) = [s for s in SERVICES if s.name == "media"]
    assert [s.name for s in media.sidecars] == ["media-s3", "media-openai"]
    monkeypatch.delenv("MEDIA_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MEDIA_OPENAI_BASE_URL", raising=False)
    stack = Stack(Options(dev_dir=tmp_path, free_ports=True), services=[media])
    stack.load_secrets()
    stack.sidecar_ports["media-openai"] = 18190  # as --free-ports would move it
    env = stack.service_env(media)
    assert env["MEDIA_OPENAI_API_KEY"] == DEV_OPENAI_API_KEY
    assert env["MEDIA_OPENAI_BASE_URL"] == "http://127.0.0.1:18190/v1"

    # A developer's own key reaches media untouched (the real API, or their base URL).
    monkeypatch.setenv("MEDIA_OPENAI_API_KEY", "sk-a-real-key")
    env = stack.service_env(media)
    assert env["MEDIA_OPENAI_API_KEY"] == "sk-a-real-key"
    assert "MEDIA_OPENAI_BASE_URL" not in env


def test_replicas_run_on_their_own_ports_and_the_gateway_gets_them_all(tmp_path):
    import httpx

    from devstack.gatewayctl import Gateway
    from devstack.registry import Service
    from devstack.stack import Options, Stack

    fake = Service("fake", 1, worker=False, package="devstack.tests.replica_service")
    options = Options(dev_dir=tmp_path, free_ports=True, replicas={"fake": 3})
    stack = Stack(options, services=[fake])
    stack.load_secrets()
    stack.db_urls["fake"] = "postgresql+psycopg://unused@127.0.0.1/unused"
    stack.assign_ports()
    ports = stack.api_ports()["fake"]
    assert len(set(ports)) == 3
    try:
        children = stack.start_services()
        assert [c.name for c in children] == ["fake-api", "fake-api-2", "fake-api-3"]
        with httpx.Client(timeout=2) as client:
            stack.wait_ready(children, client)
            answered = {client.get(f"http://127.0.0.1:{p}/readyz").json()["port"] for p in ports}
        assert answered == set(ports)
    finally:
        assert stack.supervisor.stop_all(timeout=5) == []
    # The gateway knows only the real services' routes: hand it these ports as courses'.
    gateway = Gateway(workdir=tmp_path / "gw", port=9, upstreams={"courses": ports, "auth": 8101})
    assert gateway.settings.upstreams["courses"].split() == [f"127.0.0.1:{p}" for p in ports]
    assert gateway.settings.upstreams["auth"] == "127.0.0.1:8101"


def test_replicas_are_parsed_and_checked(tmp_path, capsys):
    assert cli._replicas("courses=2, ai=3") == {"courses": 2, "ai": 3}
    assert cli._replicas("") == {}
    args = ["up", "--dev-dir", str(tmp_path), "--replicas", "courses=0"]
    assert cli.main(args) == 1
    assert "--replicas" in capsys.readouterr().err
    assert cli.main(["up", "--dev-dir", str(tmp_path), "--replicas", "billing=2"]) == 1
    assert "billing" in capsys.readouterr().err
