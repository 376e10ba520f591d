"""What a file really is, judged from its first bytes (a small magic-number table).

Declared content types and file names are the uploader's word; the first bytes are
the file's. :func:`sniff` names the container format, or says it is an executable
(or something unknown). Only formats the allow-list accepts are recognised.
"""

from __future__ import annotations

#: How many leading bytes :func:`sniff` needs to look at.
SNIFF_BYTES = 4096

EXECUTABLE = "executable"
UNKNOWN = "unknown"

_EXECUTABLE_MAGIC = (
    b"\x7fELF",  # Linux/Unix ELF
    b"MZ",  # Windows PE / DOS
    b"\xfe\xed\xfa\xce",  # Mach-O 32-bit
    b"\xfe\xed\xfa\xcf",  # Mach-O 64-bit
    b"\xce\xfa\xed\xfe",  # Mach-O 32-bit, little-endian
    b"\xcf\xfa\xed\xfe",  # Mach-O 64-bit, little-endian
    b"\xca\xfe\xba\xbe",  # Mach-O universal (and Java class files)
    b"#!",  # scripts
)

#: Fixed prefixes → format.
_PREFIXES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"%PDF-", "pdf"),
    (b"\x1a\x45\xdf\xa3", "matroska"),  # EBML: Matroska and WebM
    (b"OggS", "ogg"),
    (b"fLaC", "flac"),
    (b"ID3", "mp3"),
)

#: ISO base media boxes that may open an MP4/QuickTime file before (or instead of) ftyp.
_QUICKTIME_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def sniff(head: bytes) -> str:
    """The format of a file from its first bytes: "mp4", "matroska", "mp3", "wav",
    "ogg", "flac", "png", "jpeg", "gif", "webp", "pdf", :data:`EXECUTABLE` or
    :data:`UNKNOWN`."""
    if head.startswith(_EXECUTABLE_MAGIC):
        return EXECUTABLE
    for magic, kind in _PREFIXES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WAVE": "wav", b"WEBP": "webp"}.get(head[8:12], UNKNOWN)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_BOXES:
        return "mp4"
    if _is_mpeg_audio_frame(head):
        return "mp3"
    return UNKNOWN


def _is_mpeg_audio_frame(head: bytes) -> bool:
    # An MP3 without an ID3 tag starts with a frame header: 11 sync bits, then a
    # version other than "reserved" (01), a layer other than "reserved" (00), and a
    # bitrate index other than 1111 ("bad").
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111
