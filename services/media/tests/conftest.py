"""Fixtures of the media service tests: a migrated ``media`` schema, a local S3 server
(moto, over HTTP), tokens signed with a key of our own, and the app in-process."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from media_service import local_s3
from media_service.main import create_app
from media_service.models import outbox
from media_service.settings import Settings
from media_service.storage import S3ObjectStore
from unpuzzle_common.auth import TokenVerifier, VerificationKey
from unpuzzle_common.testing import (
    NATS_URL,
    REDIS_URL,
    fresh_service_database,
    truncate_schema,
    unique_prefix,
)

SERVICE_DIR = Path(__file__).resolve().parents[1]
#: Small parts keep the suite fast; the local server is told to accept them.
CHUNK = 64 * 1024
ISSUER, AUDIENCE = "unpuzzle-auth", "unpuzzle-api"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[local_s3.LocalS3]:
    server = local_s3.start(_free_port(), min_part_size=CHUNK)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def media_database_url() -> str:
    return fresh_service_database("media", SERVICE_DIR)


@pytest.fixture
def settings(media_database_url: str, s3_server: local_s3.LocalS3, tmp_path: Path) -> Settings:
    return Settings(
        database_url=media_database_url,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        events_prefix=unique_prefix(),
        s3_endpoint_url=s3_server.url,
        s3_bucket=f"media-test-{uuid.uuid4().hex[:12]}",
        chunk_size=CHUNK,
        s3_min_part_size=CHUNK,
        processing_backoff=[0.0],
        processing_poll_interval=0.2,
        work_dir=tmp_path,
    )


class Minter:
    """Access tokens signed with a test key, and the verifier that trusts it."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.kid = "media-test-key"

    def verifier(self) -> TokenVerifier:
        key = VerificationKey(self.kid, "ES256", self.private.public_key())

        async def lookup(kid: str) -> VerificationKey | None:
            return key if kid == self.kid else None

        return TokenVerifier(lookup, issuer=ISSUER, audience=AUDIENCE)

    def token(self, user_id: uuid.UUID, *roles: str) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "email": f"{user_id.hex[:8]}@example.com",
            "roles": list(roles),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})


@pytest.fixture(scope="session")
def minter() -> Minter:
    return Minter()


class User:
    """Somebody with an id and the headers that authenticate them."""

    def __init__(self, minter: Minter, *roles: str) -> None:
        self.id = uuid.uuid4()
        self.headers = {"Authorization": f"Bearer {minter.token(self.id, *roles)}"}


@pytest.fixture
def instructor(minter: Minter) -> User:
    return User(minter, "instructor")


@pytest.fixture
def student(minter: Minter) -> User:
    return User(minter, "student")


@pytest.fixture
def admin(minter: Minter) -> User:
    return User(minter, "admin")


@pytest.fixture
def stranger(minter: Minter) -> User:
    return User(minter, "instructor")


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[S3ObjectStore]:
    object_store = S3ObjectStore(settings)
    await object_store.ensure_bucket()
    yield object_store
    object_store.close()


@pytest.fixture
async def app(settings: Settings, minter: Minter, store: S3ObjectStore) -> AsyncIterator[object]:
    truncate_schema("media")
    application = create_app(settings, token_verifier=minter.verifier(), store=store)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://media.test") as c:
        yield c


@pytest.fixture
def sessions(app):
    return app.state.media.sessions


def _pdf_bytes(size: int) -> bytes:
    head = b"%PDF-1.7\n"
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(size // 32 + 1))
    return head + noise[: size - len(head)]


@pytest.fixture
def pdf_bytes():
    """``pdf_bytes(size)``: a file that sniffs as a PDF (the rest is deterministic noise)."""
    return _pdf_bytes


class Uploader:
    """Drives the upload API the way a client does."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def start(
        self,
        user: User,
        data: bytes,
        filename: str = "notes.pdf",
        content_type: str = "application/pdf",
    ) -> dict:
        body = {"filename": filename, "file_size": len(data), "content_type": content_type}
        response = await self.client.post("/api/v1/media/uploads", json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        return response.json()

    async def put_chunk(
        self, user: User, upload: dict, number: int, data: bytes, **headers: str
    ) -> httpx.Response:
        size = upload["chunk_size"]
        return await self.client.put(
            f"/api/v1/media/uploads/{upload['upload_id']}/chunks/{number}",
            content=data[number * size : (number + 1) * size],
            headers={**user.headers, **headers},
        )

    async def complete(self, user: User, upload: dict) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/media/uploads/{upload['upload_id']}/complete", headers=user.headers
        )

    async def upload(
        self,
        user: User,
        data: bytes,
        filename: str = "notes.pdf",
        content_type: str = "application/pdf",
    ) -> dict:
        """The whole upload; returns the media file."""
        upload = await self.start(user, data, filename, content_type)
        for number in range(upload["total_chunks"]):
            response = await self.put_chunk(user, upload, number, data)
            assert response.status_code == 200, response.text
        response = await self.complete(user, upload)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def uploader(client: httpx.AsyncClient) -> Uploader:
    return Uploader(client)


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 2-second 320x240 H.264 video with a sine tone, made by ffmpeg."""
    target = tmp_path_factory.mktemp("video") / "sample.mp4"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=10",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(target),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return target.read_bytes()


@pytest.fixture
def outbox_events(sessions):
    """``await outbox_events(type)``: the envelopes of that type in the outbox, in order."""

    async def read(event_type: str) -> list[dict]:
        async with sessions() as session:
            rows = await session.scalars(
                select(outbox.c.payload).where(outbox.c.type == event_type).order_by(outbox.c.id)
            )
            return list(rows)

    return read


@pytest.fixture
def eventually():
    """``await eventually(check)``: await ``check()`` until truthy (its last value after 10 s)."""

    async def wait(check, *, timeout: float = 10.0, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            value = await check()
            if value or time.monotonic() > deadline:
                return value
            await asyncio.sleep(interval)

    return wait


@pytest.fixture
def make_user(minter: Minter):
    """``make_user(*roles)``: a new user with a token holding those roles."""
    return lambda *roles: User(minter, *roles)
