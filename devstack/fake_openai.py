"""A stand-in for OpenAI's transcription API, for the dev stack and the tests.

The media worker makes transcripts through ``POST /v1/audio/transcriptions``
(media_service.transcription, ``MEDIA_OPENAI_API_KEY`` / ``MEDIA_OPENAI_BASE_URL``).
Offline there is no speech recognition, so this server does not listen to the audio:
it reads what the audio *says it says*. The transcript is the first of these metadata
tags that the file carries (found with ffprobe, names compared case-insensitively):

    lyrics, comment, description

and, without any, :data:`FALLBACK_TRANSCRIPT`. ffmpeg copies a file's global tags
into the audio track it extracts (media sends a mono MP3 made from the upload), so a
video made with ``ffmpeg ... -metadata comment="what the lecturer says" lesson.mp4``
gets that sentence as its transcript. A file that is no audio is refused as OpenAI
refuses it (400).

It speaks the wire protocol the official ``openai`` SDK uses: multipart form
(``file``, ``model``, ``response_format``, ``language``, ``timestamp_granularities[]``),
``Authorization: Bearer <any key>``, OpenAI's error shape, and every non-streamed
``response_format``: ``json`` (default), ``text``, ``srt``, ``vtt``, ``verbose_json``
(sentences as segments, spread over the audio's duration in proportion to their
length; words too when asked for). ``GET /v1/models`` lists the transcription models.

Dev and tests only: it never recognises speech. Run it with
``python -m devstack.fake_openai --port 8190`` (the dev stack runs it as media's
``media-openai`` sidecar).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import json
import logging
import math
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("devstack.fake_openai")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8190
#: What the fake "hears" in audio whose metadata holds no transcript.
FALLBACK_TRANSCRIPT = (
    "This is the development transcript of an Unpuzzle lesson. "
    "No speech recognition runs in the dev stack."
)
#: Tags read as the transcript, the first present wins (ID3 lyrics read as "lyrics-eng").
TRANSCRIPT_TAGS = ("lyrics", "comment", "description")
MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
#: OpenAI refuses larger files (413).
MAX_FILE_BYTES = 25 * 1024 * 1024
#: Speaking pace assumed when ffprobe does not know the audio's duration.
WORDS_PER_SECOND = 2.5
PROBE_TIMEOUT = 30.0

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class ApiError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


# -- what the audio "says" ---------------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """The transcript found in a file, where it came from, and how long the audio is."""

    text: str
    source: str  # a tag name, or "fallback"
    duration: float | None


async def _ffprobe(path: Path, ffprobe: str) -> dict[str, Any]:
    try:
        process = await asyncio.create_subprocess_exec(
            ffprobe,
            *("-v", "error", "-print_format", "json", "-show_format", "-show_streams"),
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ApiError(500, f"cannot run {ffprobe}: {exc}", kind="server_error") from exc
    try:
        out, _ = await asyncio.wait_for(process.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise ApiError(500, "ffprobe took too long", kind="server_error") from None
    if process.returncode != 0:
        return {}
    try:
        return json.loads(out or b"{}")
    except ValueError:
        return {}


def transcript_tag(probed: dict[str, Any]) -> tuple[str, str] | None:
    """(tag, text) of the first transcript tag in ffprobe's output (format, then streams)."""
    tag_sets = [probed.get("format", {}).get("tags") or {}]
    tag_sets += [stream.get("tags") or {} for stream in probed.get("streams") or []]
    for wanted in TRANSCRIPT_TAGS:
        for tags in tag_sets:
            for name, value in tags.items():
                key = name.lower()
                if (key == wanted or key.startswith(wanted + "-")) and str(value).strip():
                    return wanted, " ".join(str(value).split())
    return None


async def listen(audio: bytes, filename: str, *, ffprobe: str = "ffprobe") -> Heard:
    """What a file "says": its transcript tag (or the fallback) and its duration."""
    suffix = Path(filename).suffix[:10]
    with tempfile.TemporaryDirectory(prefix="fake-openai-") as folder:
        path = Path(folder) / f"audio{suffix}"
        await asyncio.to_thread(path.write_bytes, audio)
        probed = await _ffprobe(path, ffprobe)
    streams = probed.get("streams") or []
    if not any(stream.get("codec_type") == "audio" for stream in streams):
        raise ApiError(
            400,
            "The audio file could not be decoded or its format is not supported.",
            param="file",
            code="invalid_value",
        )
    try:
        duration: float | None = float(probed["format"]["duration"])
    except (KeyError, TypeError, ValueError):
        duration = None
    found = transcript_tag(probed)
    text, source = (found[1], found[0]) if found else (FALLBACK_TRANSCRIPT, "fallback")
    return Heard(text, source, duration)


# -- the answer's shapes -------------------------------------------------------------------


def _spoken_for(text: str, duration: float | None) -> float:
    if duration and duration > 0:
        return duration
    return max(1.0, len(text.split()) / WORDS_PER_SECOND)


def segments(text: str, duration: float | None) -> list[dict[str, Any]]:
    """The sentences as Whisper segments, timed in proportion to their length."""
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()] or [text]
    total = _spoken_for(text, duration)
    chars = sum(len(s) for s in sentences) or 1
    out, start = [], 0.0
    for number, sentence in enumerate(sentences):
        end = total if number == len(sentences) - 1 else start + total * len(sentence) / chars
        out.append(
            {
                "id": number,
                "seek": 0,
                "start": round(start, 3),
                "end": round(end, 3),
                "text": " " + sentence,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.1,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
        )
        start = end
    return out


def words(text: str, duration: float | None) -> list[dict[str, Any]]:
    """Each word, the audio's time shared out evenly."""
    spoken = text.split()
    step = _spoken_for(text, duration) / max(1, len(spoken))
    return [
        {"word": word, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
        for i, word in enumerate(spoken)
    ]


def _clock(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


def subtitles(text: str, duration: float | None, kind: str) -> str:
    """The segments as SubRip (``srt``) or WebVTT (``vtt``) cues."""
    cues = []
    for segment in segments(text, duration):
        if kind == "srt":
            times = f"{_clock(segment['start'], ',')} --> {_clock(segment['end'], ',')}"
            cues.append(f"{segment['id'] + 1}\n{times}\n{segment['text'].strip()}\n")
        else:
            times = f"{_clock(segment['start'], '.')} --> {_clock(segment['end'], '.')}"
            cues.append(f"{times}\n{segment['text'].strip()}\n")
    header = "WEBVTT\n\n" if kind == "vtt" else ""
    return header + "\n".join(cues) + "\n"


# -- the request --------------------------------------------------------------------------


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    #: Field name -> (filename, content).
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def value(self, name: str, default: str | None = None) -> str | None:
        values = self.fields.get(name) or self.fields.get(f"{name}[]")
        return values[-1] if values else default

    def values(self, name: str) -> list[str]:
        return self.fields.get(f"{name}[]", []) + self.fields.get(name, [])


def parse_form(content_type: str, body: bytes) -> Form:
    """A ``multipart/form-data`` body (the stdlib's MIME parser: no extra dependency)."""
    head = EmailMessage()
    head["content-type"] = content_type
    if head.get_content_type() != "multipart/form-data" or not head.get_boundary():
        raise ApiError(400, "Send the request as multipart/form-data with a boundary.")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            form.files[name] = (filename, content)
        else:
            form.fields.setdefault(name, []).append(content.decode("utf-8", errors="replace"))
    return form


def _authorized(request: Request) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )


async def transcriptions(request: Request) -> Response:
    try:
        _authorized(request)
        body = await request.body()
        if len(body) > MAX_FILE_BYTES:
            raise ApiError(413, f"Maximum content size limit ({MAX_FILE_BYTES}) exceeded.")
        form = await asyncio.to_thread(parse_form, request.headers.get("content-type", ""), body)
        return await _transcribe(form, request.app.state.ffprobe)
    except ApiError as error:
        return error.response()


async def _transcribe(form: Form, ffprobe: str) -> Response:
    if "file" not in form.files:
        raise ApiError(400, "Missing required parameter: 'file'.", param="file")
    model = form.value("model")
    if not model:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model")
    response_format = form.value("response_format", "json")
    if response_format not in FORMATS:
        raise ApiError(
            400,
            f"Invalid value: '{response_format}'. Supported values are: {', '.join(FORMATS)}.",
            param="response_format",
        )
    granularities = set(form.values("timestamp_granularities"))
    if granularities - {"segment", "word"}:
        raise ApiError(400, "Invalid timestamp granularity.", param="timestamp_granularities")
    if granularities and response_format != "verbose_json":
        raise ApiError(
            400,
            "timestamp_granularities requires response_format=verbose_json.",
            param="timestamp_granularities",
        )
    if form.value("stream") == "true":
        raise ApiError(400, "This stand-in does not stream transcriptions.", param="stream")

    filename, audio = form.files["file"]
    heard = await listen(audio, filename, ffprobe=ffprobe)
    log.info(
        "transcribed %s (%d bytes, %s s) from its %s tag as %s",
        filename,
        len(audio),
        heard.duration,
        heard.source,
        response_format,
    )
    headers = {"X-Transcript-Source": heard.source}
    usage = {"type": "duration", "seconds": math.ceil(_spoken_for(heard.text, heard.duration))}
    if response_format == "text":
        return PlainTextResponse(heard.text + "\n", headers=headers)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(
            subtitles(heard.text, heard.duration, response_format), headers=headers
        )
    if response_format == "json":
        return JSONResponse({"text": heard.text, "usage": usage}, headers=headers)
    verbose: dict[str, Any] = {
        "task": "transcribe",
        "language": form.value("language") or "english",
        "duration": round(_spoken_for(heard.text, heard.duration), 3),
        "text": heard.text,
        "usage": usage,
    }
    if not granularities or "segment" in granularities:
        verbose["segments"] = segments(heard.text, heard.duration)
    if "word" in granularities:
        verbose["words"] = words(heard.text, heard.duration)
    return JSONResponse(verbose, headers=headers)


async def models(request: Request) -> Response:
    try:
        _authorized(request)
    except ApiError as error:
        return error.response()
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "unpuzzle-dev"} for m in MODELS]
    return JSONResponse({"object": "list", "data": data})


def create_app(*, ffprobe: str = "ffprobe") -> Starlette:
    """The ASGI app; ``ffprobe`` is the program that reads the tags."""
    app = Starlette(
        routes=[
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.ffprobe = ffprobe
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="devstack.fake_openai", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--ffprobe", default="ffprobe", help="ffprobe program (default: PATH)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(ffprobe=args.ffprobe),
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":
    main()
