"""The chunked-upload client: progress, and resuming after an interruption."""

from __future__ import annotations

import io

import httpx
import pytest

from media_service.upload import UploadFailed, upload_file


class CountingTransport(httpx.AsyncBaseTransport):
    """The in-process app, counting chunk PUTs; the connection 'breaks' after ``break_after``."""

    def __init__(self, app, *, break_after: int | None = None) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.break_after = break_after
        self.chunks_sent: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            if self.break_after is not None and len(self.chunks_sent) >= self.break_after:
                raise httpx.ConnectError("connection reset", request=request)
            self.chunks_sent.append(int(request.url.path.rsplit("/", 1)[1]))
        return await self._inner.handle_async_request(request)


async def test_an_interrupted_upload_resumes_where_it_stopped(app, instructor, tmp_path, pdf_bytes):
    data = pdf_bytes(4 * 64 * 1024 + 77)
    file = tmp_path / "handout.pdf"
    file.write_bytes(data)
    token = instructor.headers["Authorization"].removeprefix("Bearer ")
    state_dir = tmp_path / "state"

    broken = CountingTransport(app, break_after=2)
    async with httpx.AsyncClient(transport=broken, base_url="http://gw.test") as client:
        with pytest.raises(UploadFailed, match="connection reset"):
            await upload_file(
                file, token=token, client=client, state_dir=state_dir, retries=0, parallel=1,
                progress_stream=io.StringIO(),
            )  # fmt: skip
    assert broken.chunks_sent == [0, 1]
    assert len(list(state_dir.iterdir())) == 1

    progress = io.StringIO()
    healthy = CountingTransport(app)
    async with httpx.AsyncClient(transport=healthy, base_url="http://gw.test") as client:
        media = await upload_file(
            file, token=token, client=client, state_dir=state_dir, progress_stream=progress
        )

    assert sorted(healthy.chunks_sent) == [2, 3, 4]
    assert httpx.get(media["url"]).content == data
    assert "100.0%" in progress.getvalue()
    assert list(state_dir.iterdir()) == []


async def test_a_refused_file_stops_the_upload(app, student, tmp_path):
    file = tmp_path / "notes.pdf"
    file.write_bytes(b"%PDF-1.4 tiny")
    token = student.headers["Authorization"].removeprefix("Bearer ")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw.test"
    ) as client:
        with pytest.raises(UploadFailed, match="403"):
            await upload_file(
                file, token=token, client=client, state_dir=tmp_path / "s", progress_stream=None
            )
