"""A local S3-compatible server for development and tests: moto in server mode.

Why moto and not a filesystem backend: the service then runs the very same boto3
code path (multipart uploads, presigned URLs, range reads) it runs against AWS,
Backblaze B2 or MinIO, so `make up` and the tests exercise what production uses.
Objects live in the server's memory: they are gone when it stops (fine for a dev
stack; point ``MEDIA_S3_*`` at MinIO or a bucket to keep them).

- ``python -m media_service.local_s3 [--host 127.0.0.1] [--port 9000]`` runs it in the
  foreground (what the dev stack supervises);
- :func:`start` starts it as a child process and waits until it answers (the tests).

Needs the ``moto[server]`` package (the ``local-s3`` extra of this distribution).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

import httpx

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000


def command(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> list[str]:
    """The command line that runs the server in the foreground."""
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


def environment(*, min_part_size: int | None = None) -> dict[str, str]:
    """The server's environment; ``min_part_size`` lowers S3's 5 MiB minimum part (tests)."""
    env = dict(os.environ)
    if min_part_size is not None:
        env["S3_UPLOAD_PART_MIN_SIZE"] = str(min_part_size)
    return env


@dataclass
class LocalS3:
    """A running server started by :func:`start`."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until_ready(
    url: str, *, timeout: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    """Return once the server answers HTTP at ``url``; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the local S3 server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the local S3 server at {url} did not answer within {timeout:.0f}s")


def start(
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    min_part_size: int | None = None,
    output: IO[bytes] | int | None = subprocess.DEVNULL,
    timeout: float = 20.0,
) -> LocalS3:
    """Start the server as a child process and wait until it answers."""
    process = subprocess.Popen(  # noqa: S603 (a fixed command: this Python running moto)
        command(port, host),
        env=environment(min_part_size=min_part_size),
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    server = LocalS3(process, f"http://{host}:{port}")
    try:
        wait_until_ready(server.url, timeout=timeout, process=process)
    except BaseException:
        server.stop()
        raise
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="media_service.local_s3", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--min-part-size", type=int, default=None, help="bytes (default: S3's 5 MiB)"
    )
    args = parser.parse_args(argv)
    argv_ = command(args.port, args.host)
    # Replace this process, so the supervisor's signals reach the server itself.
    os.execve(argv_[0], argv_, environment(min_part_size=args.min_part_size))  # noqa: S606


if __name__ == "__main__":
    main()
