"""The dev stack's fake OpenAI, driven by the real ``openai`` SDK, as media drives it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devstack.fake_openai import FALLBACK_TRANSCRIPT
from devstack.registry import REPO
from media_service.probing import extract_audio
from media_service.settings import Settings as MediaSettings
from media_service.transcription import OpenAITranscriber

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("ffprobe")), reason="needs ffmpeg and ffprobe"
)

SAID = "The mitochondria is the powerhouse of the cell. It makes ATP with ATP synthase!"
KEY = "sk-any-key-will-do"


def _ffmpeg(path: Path, *args: str) -> Path:
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(path)]
    subprocess.run(command, check=True, timeout=60, capture_output=True)
    return path


def _tone(seconds: float = 2.0) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fake-openai")
    video = ["-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10"]
    encode = ["-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    return {
        "lecture": _ffmpeg(
            folder / "lecture.mp4",
            *video,
            *_tone(),
            *encode,
            *("-c:a", "aac", "-metadata", f"comment={SAID}", "-metadata", "title=Cells"),
        ),
        "song": _ffmpeg(
            folder / "song.mp3",
            *_tone(),
            *("-metadata", "lyrics=Sung words win.", "-metadata", "comment=Not this."),
        ),
        "untagged": _ffmpeg(folder / "untagged.wav", *_tone(1.0)),
        "silent": _ffmpeg(folder / "silent.mp4", *video, *encode),
        "not-audio": _write(folder / "notes.mp3", b"these bytes are no audio at all"),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m devstack.fake_openai`` as the dev stack runs it (media's sidecar)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("fake-openai-log") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "devstack.fake_openai", "--port", str(port)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/models", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0) as sdk:
        yield sdk


def _transcribe(client: openai.OpenAI, path: Path, **options):
    with path.open("rb") as file:
        return client.audio.transcriptions.create(model="whisper-1", file=file, **options)


def test_the_comment_tag_is_the_transcript_in_every_format(client, media):
    lecture = media["lecture"]
    assert _transcribe(client, lecture).text == SAID  # json, the default
    assert _transcribe(client, lecture, response_format="text") == SAID + "\n"

    verbose = _transcribe(client, lecture, response_format="verbose_json")
    assert (verbose.text, verbose.language) == (SAID, "english")
    assert verbose.duration == pytest.approx(2.0, abs=0.1)
    first, second = verbose.segments
    assert (first.text, second.text) == (
        " The mitochondria is the powerhouse of the cell.",
        " It makes ATP with ATP synthase!",
    )
    assert first.start == 0.0 < first.end == second.start < second.end == verbose.duration
    assert verbose.words is None

    srt = _transcribe(client, lecture, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:0")
    assert "\n\n2\n" in srt and srt.rstrip().endswith("It makes ATP with ATP synthase!")
    vtt = _transcribe(client, lecture, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_words_come_only_when_asked_for(client, media):
    verbose = _transcribe(
        client,
        media["lecture"],
        response_format="verbose_json",
        timestamp_granularities=["word"],
        language="en",
    )
    assert verbose.language == "en"
    assert verbose.segments is None
    assert [w.word for w in verbose.words] == SAID.split()
    assert verbose.words[-1].end == pytest.approx(verbose.duration)


def test_lyrics_win_over_a_comment_and_untagged_audio_gets_the_fallback(client, media):
    assert _transcribe(client, media["song"]).text == "Sung words win."
    assert _transcribe(client, media["untagged"]).text == FALLBACK_TRANSCRIPT


def test_what_is_not_audio_is_refused_as_openai_refuses_it(client, media, base_url):
    for path in (media["not-audio"], media["silent"]):
        with pytest.raises(openai.BadRequestError) as refused:
            _transcribe(client, path)
        assert refused.value.body["param"] == "file"
    for wrong in ({"response_format": "markdown"}, {"timestamp_granularities": ["word"]}):
        with pytest.raises(openai.BadRequestError) as refused:
            _transcribe(client, media["lecture"], **wrong)
        assert refused.value.body["param"] == next(iter(wrong))
    # No key: 401 in OpenAI's error shape (the SDK will not even send a request without one).
    unsigned = httpx.post(
        f"{base_url}/audio/transcriptions",
        files={"file": ("a.mp3", media["song"].read_bytes())},
        data={"model": "whisper-1"},
    )
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["type"] == "invalid_request_error"


async def test_media_transcribes_the_audio_it_extracts_from_a_tagged_video(
    base_url, media, tmp_path
):
    # What the media worker does with an upload: a mono MP3 of its audio track (ffmpeg
    # keeps the global tags), sent by media's own transcriber.
    audio = tmp_path / "audio.mp3"
    await extract_audio(media["lecture"], audio, ffmpeg="ffmpeg", time_limit=60)
    settings = MediaSettings(openai_api_key=KEY, openai_base_url=base_url)
    transcriber = OpenAITranscriber(settings)
    try:
        transcript = await transcriber.transcribe(audio)
    finally:
        await transcriber.aclose()
    assert transcript.text == SAID
    # Timed segments (verbose_json): one per sentence, in order, within the audio.
    assert [s["text"] for s in transcript.segments or []] == [
        "The mitochondria is the powerhouse of the cell.",
        "It makes ATP with ATP synthase!",
    ]
    first, second = transcript.segments
    assert first["start"] == 0.0 < first["end"] <= second["start"] < second["end"]
