"""What may be uploaded: the allow-list of content types, their kinds and file extensions,
and the check of a declared file name against them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

VIDEO = "video"
AUDIO = "audio"
IMAGE = "image"
DOCUMENT = "document"


@dataclass(frozen=True)
class AllowedType:
    """One content type the service accepts."""

    content_type: str
    kind: str
    #: File name extensions (lower case, with the dot) that go with the type.
    extensions: tuple[str, ...]
    #: Container formats (see :mod:`media_service.sniffing`) its bytes may really be in.
    formats: tuple[str, ...]


ALLOWED_TYPES: dict[str, AllowedType] = {
    t.content_type: t
    for t in (
        AllowedType("video/mp4", VIDEO, (".mp4", ".m4v"), ("mp4",)),
        AllowedType("video/quicktime", VIDEO, (".mov",), ("mp4",)),
        AllowedType("video/webm", VIDEO, (".webm",), ("matroska",)),
        AllowedType("video/x-matroska", VIDEO, (".mkv",), ("matroska",)),
        AllowedType("video/ogg", VIDEO, (".ogv",), ("ogg",)),
        AllowedType("audio/mpeg", AUDIO, (".mp3",), ("mp3",)),
        AllowedType("audio/mp4", AUDIO, (".m4a", ".mp4"), ("mp4",)),
        AllowedType("audio/x-m4a", AUDIO, (".m4a",), ("mp4",)),
        AllowedType("audio/wav", AUDIO, (".wav",), ("wav",)),
        AllowedType("audio/x-wav", AUDIO, (".wav",), ("wav",)),
        AllowedType("audio/ogg", AUDIO, (".ogg", ".oga", ".opus"), ("ogg",)),
        AllowedType("audio/webm", AUDIO, (".webm",), ("matroska",)),
        AllowedType("audio/flac", AUDIO, (".flac",), ("flac",)),
        AllowedType("image/png", IMAGE, (".png",), ("png",)),
        AllowedType("image/jpeg", IMAGE, (".jpg", ".jpeg"), ("jpeg",)),
        AllowedType("image/gif", IMAGE, (".gif",), ("gif",)),
        AllowedType("image/webp", IMAGE, (".webp",), ("webp",)),
        AllowedType("application/pdf", DOCUMENT, (".pdf",), ("pdf",)),
    )
}

MAX_FILENAME_LENGTH = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FilenameError(ValueError):
    """A declared file name that cannot be accepted (the message says why)."""


def allowed_type(content_type: str) -> AllowedType | None:
    """The allow-list entry of a content type (parameters such as ``; codecs=`` ignored)."""
    return ALLOWED_TYPES.get(content_type.split(";", 1)[0].strip().lower())


def clean_filename(filename: str, allowed: AllowedType) -> str:
    """The declared name, NFC-normalised and checked: a plain name with a fitting extension.

    Names are kept for display and downloads only (storage keys never contain them),
    but path separators, control characters and dot-names are refused all the same.
    """
    name = unicodedata.normalize("NFC", filename).strip()
    if not name:
        raise FilenameError("must not be empty")
    if len(name) > MAX_FILENAME_LENGTH:
        raise FilenameError(f"must be at most {MAX_FILENAME_LENGTH} characters")
    if "/" in name or "\\" in name or _CONTROL.search(name):
        raise FilenameError("must be a plain file name (no paths or control characters)")
    if name.strip(".") == "" or name.startswith("."):
        raise FilenameError("must not be a hidden or dot name")
    extension = extension_of(name)
    if extension not in allowed.extensions:
        expected = ", ".join(allowed.extensions)
        raise FilenameError(f"extension must be one of {expected} for {allowed.content_type}")
    return name


def extension_of(filename: str) -> str:
    """The lower-case extension of a file name, with its dot ("" when there is none)."""
    _, dot, ext = filename.rpartition(".")
    return f".{ext.lower()}" if dot else ""
