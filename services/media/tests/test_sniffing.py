"""The magic-number table names formats and spots executables."""

from __future__ import annotations

import pytest

from media_service.sniffing import EXECUTABLE, UNKNOWN, sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "matroska"),
        (b"ID3\x04\x00\x00\x00\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64\x00", "mp3"),
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x24\x08\x00\x00WEBPVP8 ", "webp"),
        (b"OggS\x00\x02", "ogg"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"GIF89a\x01\x00", "gif"),
        (b"%PDF-1.7\n", "pdf"),
        (b"\x7fELF\x02\x01\x01\x00", EXECUTABLE),
        (b"MZ\x90\x00\x03\x00", EXECUTABLE),
        (b"\xcf\xfa\xed\xfe\x07\x00", EXECUTABLE),
        (b"#!/bin/sh\nrm -rf /\n", EXECUTABLE),
        (b"RIFF\x24\x08\x00\x00AVI LIST", UNKNOWN),
        (b"<html><body>", UNKNOWN),
        (b"\xff\xff\xff\xff", UNKNOWN),
        (b"", UNKNOWN),
    ],
)
def test_formats_are_told_from_their_first_bytes(head, expected):
    assert sniff(head) == expected
