"""Upload a file through the gateway in chunks, with progress, resuming after interruptions.

    python -m media_service.upload FILE --token TOKEN [--url http://localhost:8080]
                                   [--content-type video/mp4] [--state-dir DIR]

The token may also come from ``$UNPUZZLE_TOKEN``. The upload's id is kept in a small
state file (under ``$XDG_CACHE_HOME/unpuzzle-upload`` by default, keyed by the file's
path, size and modification time); run the same command again after a broken
connection or Ctrl-C and it asks the service which chunks arrived
(``GET /uploads/{id}``) and sends only the others. Each chunk carries its
``Content-MD5``; ``--parallel`` chunks (default 4) are in flight at once; transient
failures (network, 429, 5xx) are retried with backoff. Prints the media file as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import mimetypes
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

API = "/api/v1/media/uploads"
#: Answers worth retrying the same request for.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class UploadFailed(RuntimeError):
    """The upload cannot go on (the message says why); a retry later may resume it."""


@dataclass
class Progress:
    """A one-line progress display on a stream (stderr)."""

    name: str
    total: int
    stream: IO[str] | None = sys.stderr
    done: int = 0
    _started: float = 0.0
    _sent: int = 0

    def start(self, already: int) -> None:
        self.done = already
        self._started = time.monotonic()
        self._sent = 0
        self._show()

    def advance(self, size: int) -> None:
        self.done += size
        self._sent += size
        self._show()

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self) -> None:
        if self.stream is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        percent = 100 * self.done / self.total if self.total else 100
        mib = 1024 * 1024
        self.stream.write(
            f"\r{self.name}: {percent:5.1f}%  {self.done / mib:.1f}/{self.total / mib:.1f} MiB"
            f"  {self._sent / mib / elapsed:.1f} MiB/s "
        )
        self.stream.flush()


def default_state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unpuzzle-upload"


@dataclass(frozen=True)
class UploadState:
    """The id of an unfinished upload of one file (as it is now) to one server."""

    path: Path

    @classmethod
    def of(cls, state_dir: Path, file: Path, base_url: str) -> UploadState:
        stat = file.stat()
        identity = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{base_url}"
        return cls(state_dir / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json")

    def load(self) -> str | None:
        """The upload id recorded, if any."""
        try:
            return str(json.loads(self.path.read_text())["upload_id"])
        except (OSError, ValueError, KeyError):
            return None

    def save(self, upload_id: str, file: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"upload_id": upload_id, "file": str(file)}))

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


async def upload_file(
    path: Path,
    *,
    token: str,
    base_url: str = "http://localhost:8080",
    content_type: str | None = None,
    state_dir: Path | None = None,
    client: httpx.AsyncClient | None = None,
    retries: int = 5,
    parallel: int = 4,
    progress_stream: IO[str] | None = sys.stderr,
) -> dict[str, Any]:
    """Upload ``path`` (resuming an earlier attempt if there was one); the media file."""
    kind = content_type or mimetypes.guess_type(path.name)[0]
    if not kind:
        raise UploadFailed("cannot tell the content type of the file: pass --content-type")
    state = UploadState.of(state_dir or default_state_dir(), path, base_url)
    own_client = client is None
    http = client or httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60.0, connect=10.0))
    http.headers["Authorization"] = f"Bearer {token}"
    try:
        session = await _resume(http, state, retries)
        if session is None:
            session = await _start(http, path.name, _size_of(path), kind, retries)
            state.save(session["upload_id"], path)
        progress = Progress(path.name, session["file_size"], progress_stream)
        await _send_missing(
            http, path, session, retries=retries, parallel=parallel, progress=progress
        )
        media = await _request(http, "POST", f"{API}/{session['upload_id']}/complete", retries)
        state.forget()
        return media.json()
    finally:
        if own_client:
            await http.aclose()


def _size_of(path: Path) -> int:
    return path.stat().st_size


async def _resume(
    http: httpx.AsyncClient, state: UploadState, retries: int
) -> dict[str, Any] | None:
    upload_id = state.load()
    if upload_id is None:
        return None
    try:
        session = (await _request(http, "GET", f"{API}/{upload_id}", retries)).json()
    except UploadFailed:
        session = None
    if session is None or session.get("status") != "open":
        state.forget()  # expired, aborted or unknown: start over
        return None
    return session


async def _start(
    http: httpx.AsyncClient, name: str, size: int, content_type: str, retries: int
) -> dict[str, Any]:
    body = {"filename": name, "file_size": size, "content_type": content_type}
    return (await _request(http, "POST", API, retries, json=body)).json()


async def _send_missing(
    http: httpx.AsyncClient,
    path: Path,
    session: dict[str, Any],
    *,
    retries: int,
    parallel: int,
    progress: Progress,
) -> None:
    """Send the chunks the service lacks, ``parallel`` at a time."""
    chunk_size, total = session["chunk_size"], session["total_chunks"]
    received = set(session.get("received_chunks", []))
    size = session["file_size"]
    progress.start(sum(min(chunk_size, size - n * chunk_size) for n in received))
    pending = iter([n for n in range(total) if n not in received])
    failures: list[UploadFailed] = []
    url = f"{API}/{session['upload_id']}/chunks"

    async def sender(fd: int) -> None:
        for number in pending:  # shared: each chunk is taken by one sender
            if failures:
                return
            data = await asyncio.to_thread(os.pread, fd, chunk_size, number * chunk_size)
            md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
            try:
                await _request(
                    http,
                    "PUT",
                    f"{url}/{number}",
                    retries,
                    content=data,
                    headers={"Content-MD5": md5, "Content-Type": "application/octet-stream"},
                )
            except UploadFailed as exc:
                failures.append(exc)
                return
            progress.advance(len(data))

    fd = os.open(path, os.O_RDONLY)
    try:
        await asyncio.gather(*(sender(fd) for _ in range(max(1, parallel))))
    finally:
        os.close(fd)
        progress.finish()
    if failures:
        raise failures[0]


async def _request(
    http: httpx.AsyncClient, method: str, url: str, retries: int, **kwargs: Any
) -> httpx.Response:
    """Send with retries on transient failures; UploadFailed on a final failure."""
    for attempt in range(retries + 1):
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise UploadFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(_backoff(attempt, None))
            continue
        if response.status_code < 400:
            return response
        if response.status_code not in _TRANSIENT or attempt == retries:
            raise UploadFailed(f"{method} {url}: {response.status_code} {_detail(response)}")
        await asyncio.sleep(_backoff(attempt, response.headers.get("Retry-After")))
    raise AssertionError("unreachable")


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after and retry_after.isdigit():
        return min(float(retry_after), 60.0)
    return min(0.5 * 2**attempt, 30.0)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:200]))
    except ValueError:
        return response.text[:200]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="media_service.upload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--token", default=os.environ.get("UNPUZZLE_TOKEN"))
    parser.add_argument("--url", default="http://localhost:8080", help="the gateway")
    parser.add_argument("--content-type", help="default: guessed from the file name")
    parser.add_argument("--state-dir", type=Path, help=f"default: {default_state_dir()}")
    parser.add_argument("--retries", type=int, default=5, help="per request (default 5)")
    parser.add_argument("--parallel", type=int, default=4, help="chunks in flight (default 4)")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("an access token is needed: --token or $UNPUZZLE_TOKEN")
    if not args.file.is_file():
        parser.error(f"not a file: {args.file}")
    try:
        media = asyncio.run(
            upload_file(
                args.file,
                token=args.token,
                base_url=args.url.rstrip("/"),
                content_type=args.content_type,
                state_dir=args.state_dir,
                retries=args.retries,
                parallel=args.parallel,
            )
        )
    except UploadFailed as exc:
        print(f"upload failed: {exc}\n(run the same command again to resume)", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\ninterrupted (run the same command again to resume)", file=sys.stderr)
        raise SystemExit(130) from None
    print(json.dumps(media, indent=2))


if __name__ == "__main__":
    main()
