/*
 * Responses the gateway writes itself (njs 0.7.9, js_content handlers).
 *
 * They run in the content phase, after limit_req, so every request is counted by
 * the rate limits — a `return` directive would answer in the rewrite phase, before
 * any limit is checked. Errors are RFC 9457 problem documents, like the services'.
 */

function problem(r, status, title, detail) {
    r.headersOut['Content-Type'] = 'application/problem+json';
    r.return(status, JSON.stringify({
        type: 'about:blank',
        title: title,
        status: status,
        detail: detail,
    }));
}

/* 401 for a missing or unacceptable bearer token (RFC 6750 challenge). */
function unauthorized(r) {
    const reason = r.variables.jwt_error;
    if (reason) {
        // Reasons are fixed strings from jwt.js: safe inside the quoted parameter.
        r.headersOut['WWW-Authenticate'] =
            'Bearer realm="unpuzzle", error="invalid_token", error_description="' + reason + '"';
        problem(r, 401, 'Unauthorized', reason);
    } else {
        r.headersOut['WWW-Authenticate'] = 'Bearer realm="unpuzzle"';
        problem(r, 401, 'Unauthorized', 'a bearer token is required');
    }
}

function notFound(r) {
    problem(r, 404, 'Not Found', 'no such route');
}

/* CORS preflight: the Access-Control-* headers come from add_header in nginx.conf,
 * present only when the Origin is allowed. */
function preflight(r) {
    r.return(204);
}

function health(r) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, JSON.stringify({ status: 'ok', service: 'gateway' }));
}

export default { unauthorized, notFound, preflight, health };
