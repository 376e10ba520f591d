/*
 * Access-token verification for the Unpuzzle gateway (njs 0.7.9).
 *
 * `identity` is a js_set handler. nginx evaluates it once per request and caches the
 * value (checked on njs 0.7.9: maps, add_header, r.variables and the log all reuse
 * it), so a token is verified once however many variables derive from it:
 *
 *   "skip"                       public route: the token is not looked at
 *   "none"                       no Authorization header
 *   "invalid|<reason>"           a token was sent and is not acceptable
 *   "ok|<sub>|<roles>|<email>"   verified; roles comma-separated
 *
 * nginx.conf splits this with `map`s into $jwt_sub, $jwt_roles, $jwt_email and
 * $jwt_error. The encoding is safe because sub and roles are checked against
 * separator-free character sets and email, the only free-form field, comes last.
 *
 * njs 0.7.9 constraints: no `jwk` key import (hence SPKI keys in a file), no classes,
 * no destructuring; a js_set handler may await crypto.subtle only if it hands its
 * value back with r.setReturnValue (a plain return would yield a Promise).
 */
import fs from 'fs';

const ALGORITHMS = {
    ES256: {
        importParams: { name: 'ECDSA', namedCurve: 'P-256' },
        verifyParams: { name: 'ECDSA', hash: 'SHA-256' },
        // JWS carries raw r||s, which is what WebCrypto expects; 32 bytes each.
        signatureLength: 64,
    },
    RS256: {
        importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        verifyParams: { name: 'RSASSA-PKCS1-v1_5' },
        signatureLength: 0,
    },
};

const MAX_TOKEN_LENGTH = 8192;
const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i;
const SUBJECT = /^[A-Za-z0-9_-]{1,64}$/;
const ROLE = /^[A-Za-z0-9_.:-]{1,64}$/;
// Email ends up in an upstream header: no control characters, bounded length.
const EMAIL = /^[^\x00-\x1f\x7f]{0,320}$/;

/* A token problem the client is told about (as opposed to a gateway fault).
 * A plain object, not an Error: creating an Error in njs 0.7.9 walks the request
 * object and logs deprecation warnings for r.requestBody/r.responseBody. */
function rejected(reason) {
    return { rejected: true, message: reason };
}

async function identity(r) {
    let value;
    try {
        value = await resolveIdentity(r);
    } catch (e) {
        if (!e.rejected) {
            r.error('jwt: cannot verify token: ' + e);
        }
        value = 'invalid|' + (e.rejected ? e.message : 'token could not be verified');
    }
    r.setReturnValue(value);
}

async function resolveIdentity(r) {
    const routeClass = r.variables.route_class;
    if (routeClass !== 'protected' && routeClass !== 'optional') {
        return 'skip';
    }
    const header = r.headersIn.Authorization;
    if (header === undefined || header === '') {
        return 'none';
    }
    if (header.length > MAX_TOKEN_LENGTH) {
        throw rejected('token too large');
    }
    const match = BEARER.exec(header);
    if (!match) {
        throw rejected('malformed bearer token');
    }
    const claims = await verifiedClaims(r, match[1]);
    return encodeIdentity(claims);
}

async function verifiedClaims(r, token) {
    const parts = token.split('.');
    const header = decodeSegment(parts[0]);
    if (header.crit !== undefined) {
        throw rejected('unsupported critical header');
    }
    if (typeof header.kid !== 'string' || typeof header.alg !== 'string') {
        throw rejected('token header lacks kid or alg');
    }
    const key = findKey(r, header.kid);
    // The algorithm is pinned to the key: a token cannot choose "none", HS256 or
    // anything else than what the key was published for.
    if (header.alg !== key.alg) {
        throw rejected('algorithm does not match the signing key');
    }
    const algorithm = ALGORITHMS[key.alg];
    const signature = Buffer.from(parts[2], 'base64url');
    if (algorithm.signatureLength && signature.length !== algorithm.signatureLength) {
        throw rejected('invalid signature');
    }
    const publicKey = await crypto.subtle.importKey(
        'spki', Buffer.from(key.spki, 'base64'), algorithm.importParams, false, ['verify']);
    const signedPart = Buffer.from(parts[0] + '.' + parts[1]);
    const valid = await crypto.subtle.verify(algorithm.verifyParams, publicKey, signature, signedPart);
    if (!valid) {
        throw rejected('invalid signature');
    }
    const claims = decodeSegment(parts[1]);
    checkClaims(r, claims);
    return claims;
}

/* The key for `kid` from the keys file, read on every request so that rewriting the
 * file (key rotation) takes effect without a reload. The file is small; reading it
 * costs far less than the signature check. */
function findKey(r, kid) {
    const keys = JSON.parse(fs.readFileSync(r.variables.jwt_keys_file, 'utf8')).keys;
    for (let i = 0; i < keys.length; i++) {
        if (keys[i].kid === kid && ALGORITHMS[keys[i].alg] !== undefined) {
            return keys[i];
        }
    }
    throw rejected('unknown signing key');
}

function checkClaims(r, claims) {
    const now = Date.now() / 1000;
    const leeway = Number(r.variables.jwt_leeway);
    if (!Number.isFinite(claims.exp)) {
        throw rejected('token has no expiry');
    }
    if (now > claims.exp + leeway) {
        throw rejected('token expired');
    }
    if (claims.nbf !== undefined && !(Number.isFinite(claims.nbf) && claims.nbf <= now + leeway)) {
        throw rejected('token not valid yet');
    }
    if (claims.iat !== undefined && !(Number.isFinite(claims.iat) && claims.iat <= now + leeway)) {
        throw rejected('token issued in the future');
    }
    if (claims.iss !== r.variables.jwt_issuer) {
        throw rejected('wrong issuer');
    }
    if (!hasAudience(claims.aud, r.variables.jwt_audience)) {
        throw rejected('wrong audience');
    }
}

function hasAudience(aud, expected) {
    if (typeof aud === 'string') {
        return aud === expected;
    }
    return Array.isArray(aud) && aud.indexOf(expected) !== -1;
}

function encodeIdentity(claims) {
    if (typeof claims.sub !== 'string' || !SUBJECT.test(claims.sub)) {
        throw rejected('invalid subject');
    }
    const roles = claims.roles === undefined ? [] : claims.roles;
    if (!Array.isArray(roles) || !roles.every(role => typeof role === 'string' && ROLE.test(role))) {
        throw rejected('invalid roles');
    }
    const email = claims.email === undefined ? '' : claims.email;
    if (typeof email !== 'string' || !EMAIL.test(email)) {
        throw rejected('invalid email');
    }
    return 'ok|' + claims.sub + '|' + roles.join(',') + '|' + email;
}

function decodeSegment(segment) {
    let value;
    try {
        value = JSON.parse(Buffer.from(segment, 'base64url').toString());
    } catch (e) {
        throw rejected('malformed token');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw rejected('malformed token');
    }
    return value;
}

export default { identity };
