"""The gateway's keys file: the auth service's JWKS, converted for njs 0.7.9.

njs 0.7.9 cannot import JWKs (``importKey('jwk', ...)`` came in 0.7.10), but it can
import SPKI DER. So the JWKS is converted here, once per rotation, into

    {"keys": [{"kid": "...", "alg": "ES256", "spki": "<base64 SPKI DER>"}]}

jwt.js reads that file on every request, so rotating keys is rewriting the file —
atomically, so a request never reads half of it — and needs no nginx reload.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

log = logging.getLogger(__name__)

#: The smallest RSA modulus accepted; anything shorter is not a serious signing key.
MIN_RSA_BITS = 2048


class InvalidJWK(ValueError):
    """A key in the JWKS is malformed (bad coordinates, missing kid, duplicate kid)."""


def jwks_to_keyfile(jwks: dict[str, Any]) -> dict[str, Any]:
    """Convert a JWKS into the keys file jwt.js reads.

    Supports EC P-256 keys (ES256) and RSA keys (RS256). Keys meant for encryption
    (``use: enc``) and algorithms njs 0.7.9 cannot verify (EdDSA, ...) are skipped with
    a warning: the gateway will then refuse tokens signed with them, which is the
    safe outcome. A malformed key raises :class:`InvalidJWK`.
    """
    converted: list[dict[str, str]] = []
    seen: set[str] = set()
    for jwk in jwks.get("keys", []):
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidJWK("every key needs a non-empty string 'kid'")
        if kid in seen:
            raise InvalidJWK(f"duplicate kid {kid!r}")
        seen.add(kid)
        if jwk.get("use", "sig") != "sig":
            log.warning("skipping key %s: not a signing key", kid)
            continue
        entry = _convert_key(jwk, kid)
        if entry is not None:
            converted.append(entry)
    return {"keys": converted}


def write_keyfile(path: str | os.PathLike[str], jwks: dict[str, Any]) -> Path:
    """Convert ``jwks`` and write it to ``path`` atomically (temp file + rename).

    The file holds public keys only and must be readable by the nginx workers,
    which may run as another user than the writer: it is made world-readable.
    """
    target = Path(path)
    content = json.dumps(jwks_to_keyfile(jwks), indent=2) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _convert_key(jwk: dict[str, Any], kid: str) -> dict[str, str] | None:
    kty = jwk.get("kty")
    if kty == "EC":
        return _convert_ec(jwk, kid)
    if kty == "RSA":
        return _convert_rsa(jwk, kid)
    log.warning("skipping key %s: key type %r is not supported by the gateway", kid, kty)
    return None


def _convert_ec(jwk: dict[str, Any], kid: str) -> dict[str, str] | None:
    alg = jwk.get("alg", "ES256")
    if jwk.get("crv") != "P-256" or alg != "ES256":
        log.warning("skipping key %s: only EC keys on P-256 with ES256 are supported", kid)
        return None
    try:
        numbers = ec.EllipticCurvePublicNumbers(
            _b64url_int(jwk["x"]), _b64url_int(jwk["y"]), ec.SECP256R1()
        )
        public_key = numbers.public_key()  # checks the point is on the curve
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidJWK(f"key {kid}: invalid EC public key ({exc})") from exc
    return _entry(kid, "ES256", public_key)


def _convert_rsa(jwk: dict[str, Any], kid: str) -> dict[str, str] | None:
    alg = jwk.get("alg", "RS256")
    if alg != "RS256":
        log.warning("skipping key %s: RSA keys are supported with RS256 only, not %s", kid, alg)
        return None
    try:
        public_key = rsa.RSAPublicNumbers(_b64url_int(jwk["e"]), _b64url_int(jwk["n"])).public_key()
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidJWK(f"key {kid}: invalid RSA public key ({exc})") from exc
    if public_key.key_size < MIN_RSA_BITS:
        raise InvalidJWK(f"key {kid}: RSA modulus of {public_key.key_size} bits is too short")
    return _entry(kid, "RS256", public_key)


def _entry(kid: str, alg: str, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> dict:
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {"kid": kid, "alg": alg, "spki": base64.b64encode(der).decode("ascii")}


def _b64url_int(value: str) -> int:
    if not isinstance(value, str):
        raise TypeError("expected a base64url string")
    padded = value + "=" * (-len(value) % 4)
    return int.from_bytes(base64.urlsafe_b64decode(padded), "big")
