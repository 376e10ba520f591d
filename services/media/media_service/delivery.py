"""Signed, expiring download URLs: presigned store URLs, or CDN URLs when one is configured.

CDN URLs are ``{cdn_base_url}/{key}?expires={unix time}&signature={sig}`` where ``sig``
is the unpadded base64url HMAC-SHA256, keyed with ``MEDIA_CDN_SIGNING_KEY``, of
``"/{key}\\n{expires}"``. The CDN's edge (a worker, a token-auth rule) checks it the
way :func:`verify_cdn_signature` does and then fetches the object from the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from media_service.settings import Settings
from media_service.storage import ObjectStore


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime


class UrlSigner:
    """Makes the signed URLs of objects (no network call: signing is local)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self._store = store
        self._ttl = settings.url_ttl
        self._cdn_base = settings.cdn_base_url.rstrip("/") if settings.cdn_base_url else None
        self._cdn_key = settings.cdn_signing_key.get_secret_value().encode()

    def sign(
        self, key: str, *, filename: str | None = None, content_type: str | None = None
    ) -> SignedUrl:
        # Whole seconds, so expires_at is exactly what the URL says.
        expires = int(time.time()) + self._ttl
        expires_at = datetime.fromtimestamp(expires, UTC)
        if self._cdn_base is not None:
            path = "/" + quote(key)
            query = urlencode(
                {"expires": expires, "signature": cdn_signature(self._cdn_key, path, expires)}
            )
            return SignedUrl(f"{self._cdn_base}{path}?{query}", expires_at)
        url = self._store.presigned_get(
            key, expires_in=self._ttl, filename=filename, content_type=content_type
        )
        return SignedUrl(url, expires_at)


def cdn_signature(secret: bytes, path: str, expires: int) -> str:
    """The signature of a CDN path valid until ``expires`` (unix seconds)."""
    mac = hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_cdn_signature(
    secret: bytes, path: str, expires: int, signature: str, *, now: float | None = None
) -> bool:
    """What a CDN edge checks: the signature fits and the URL has not expired."""
    if (now if now is not None else time.time()) > expires:
        return False
    return hmac.compare_digest(cdn_signature(secret, path, expires), signature)
