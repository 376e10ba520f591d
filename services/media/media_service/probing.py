"""ffprobe and ffmpeg, run as subprocesses with timeouts (never in the event loop).

:func:`probe` reads duration, container, codecs, resolution; :func:`make_thumbnail`
grabs one frame as a JPEG; :func:`extract_audio` makes the small mono MP3 that is sent
for transcription. A file ffprobe cannot read raises :class:`UnreadableMedia` (retrying
does not help); a timeout or a missing binary raises :class:`ProbeFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ProbeFailed(RuntimeError):
    """ffprobe/ffmpeg could not run to the end (timeout, missing binary): may be retried."""


class UnreadableMedia(ValueError):
    """The file is not a media file ffprobe understands: retrying will not help."""


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe says about a file."""

    duration: float | None
    metadata: dict[str, Any] = field(default_factory=dict)
    has_video: bool = False
    has_audio: bool = False


async def run_tool(argv: list[str], time_limit: float) -> tuple[int, bytes, bytes]:
    """Run a program; (exit code, stdout, stderr). Killed and :class:`ProbeFailed` on timeout."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ProbeFailed(f"cannot run {argv[0]}: {exc}") from exc
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), time_limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise ProbeFailed(f"{Path(argv[0]).name} took longer than {time_limit:.0f}s") from None
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    return process.returncode or 0, stdout, stderr


async def probe(path: Path, *, ffprobe: str, time_limit: float) -> ProbeResult:
    """Duration, container and stream facts of a media file."""
    code, out, err = await run_tool(
        [
            ffprobe,
            "-v", "error",
            "-print_format", "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        time_limit,
    )  # fmt: skip
    if code != 0:
        raise UnreadableMedia(_last_line(err) or f"ffprobe exited with {code}")
    try:
        doc = json.loads(out or b"{}")
    except ValueError as exc:
        raise UnreadableMedia("ffprobe answered something that is not JSON") from exc
    streams = doc.get("streams") or []
    fmt = doc.get("format") or {}
    if not streams:
        raise UnreadableMedia("no audio or video streams found")
    return _result(fmt, streams)


def _result(fmt: dict[str, Any], streams: list[dict[str, Any]]) -> ProbeResult:
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    metadata: dict[str, Any] = {"container": fmt.get("format_name")}
    duration = _number(fmt.get("duration"))
    if duration is None and video is not None:
        duration = _number(video.get("duration"))
    if duration is None and audio is not None:
        duration = _number(audio.get("duration"))
    if bit_rate := _number(fmt.get("bit_rate")):
        metadata["bit_rate"] = int(bit_rate)
    if video is not None:
        metadata.update(
            video_codec=video.get("codec_name"),
            width=video.get("width"),
            height=video.get("height"),
        )
        if fps := _frame_rate(video.get("avg_frame_rate")):
            metadata["frame_rate"] = fps
    if audio is not None:
        metadata.update(
            audio_codec=audio.get("codec_name"),
            sample_rate=int(_number(audio.get("sample_rate")) or 0) or None,
            channels=audio.get("channels"),
        )
    if duration is not None:
        metadata["duration"] = round(duration, 3)
    return ProbeResult(
        duration=round(duration, 3) if duration is not None else None,
        metadata={k: v for k, v in metadata.items() if v is not None},
        has_video=video is not None,
        has_audio=audio is not None,
    )


async def make_thumbnail(
    source: Path, target: Path, *, ffmpeg: str, at: float, width: int, time_limit: float
) -> None:
    """A JPEG of the frame at ``at`` seconds, ``width`` pixels wide (never upscaled)."""
    code, _, err = await run_tool(
        [
            ffmpeg, "-nostdin", "-v", "error", "-y",
            "-ss", f"{max(at, 0.0):.3f}",
            "-i", str(source),
            "-frames:v", "1",
            "-vf", f"scale='min({width},iw)':-2",
            "-q:v", "4",
            str(target),
        ],
        time_limit,
    )  # fmt: skip
    if code != 0 or not _non_empty(target):
        raise UnreadableMedia(_last_line(err) or "ffmpeg made no thumbnail")


async def extract_audio(source: Path, target: Path, *, ffmpeg: str, time_limit: float) -> None:
    """Mono 16 kHz 32 kb/s MP3 of the audio track: small enough for the audio API."""
    code, _, err = await run_tool(
        [
            ffmpeg, "-nostdin", "-v", "error", "-y",
            "-i", str(source),
            "-vn", "-ac", "1", "-ar", "16000",
            "-c:a", "libmp3lame", "-b:a", "32k",
            str(target),
        ],
        time_limit,
    )  # fmt: skip
    if code != 0 or not _non_empty(target):
        raise UnreadableMedia(_last_line(err) or "ffmpeg could not extract the audio")


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _frame_rate(value: Any) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    num, _, den = value.partition("/")
    try:
        return round(int(num) / int(den), 3) if int(den) else None
    except ValueError:
        return None


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
