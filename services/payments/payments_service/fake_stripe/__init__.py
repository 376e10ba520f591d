"""A small Stripe-compatible server for development and tests (no internet needed).

Why not PyPI's ``localstripe``: with the pinned ``stripe`` SDK it cannot confirm a
PaymentIntent (500 "Not implemented"), has no Prices, and ignores idempotency keys —
three things this service relies on. This fake speaks just enough of Stripe's API
for the official SDK to run its real code path against it: form-encoded requests
(``metadata[k]=v``, ``items[0][price]=…``), JSON answers, Stripe's error shape, the
secret key as ``Authorization: Bearer sk_…`` (or Basic, as ``curl -u sk_…:`` sends it),
and ``Idempotency-Key`` (the same key and parameters replay the first answer; the same
key with other parameters is a 400 ``idempotency_error``).

Endpoints: customers (create, retrieve); payment_intents (create, retrieve, update,
confirm, cancel); charges (retrieve); refunds (create, retrieve); subscriptions
(create, retrieve, update, cancel). Objects live in memory.

Behaviour worth knowing:

- confirming with ``pm_card_chargeDeclined`` declines (402 ``card_error``, the intent
  goes back to ``requires_payment_method`` with ``last_payment_error``); any other
  payment method succeeds and makes a charge;
- a subscription is ``active`` at once (every customer has a working card; tests may
  set ``state.new_subscription_status = "incomplete"``), for a period of 30 days
  unless the price id ends in ``_yearly``, ``_weekly`` or ``_daily``;
- the fake sends no webhooks: ``python -m payments_service confirm`` does.

Run it: ``python -m payments_service.fake_stripe --port 12111`` (or
``python -m payments_service fake-stripe``); tests start :class:`FakeStripe` in a thread.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from payments_service.fake_stripe.resources import (
    FakeStripeState,
    Operation,
    StripeFailure,
    cancel_payment_intent,
    cancel_subscription,
    confirm_payment_intent,
    create_customer,
    create_payment_intent,
    create_refund,
    create_subscription,
    new_id,
    retrieve_charge,
    retrieve_customer,
    retrieve_payment_intent,
    retrieve_refund,
    retrieve_subscription,
    update_payment_intent,
    update_subscription,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 12111


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding to nested values: ``a[b][0][c]=v`` → ``{"a": {"b": [{"c": v}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "[]":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return value


def _api_key(header: str) -> str:
    """The secret key of ``Authorization: Bearer sk_…`` or ``Basic base64(sk_…:)`` (curl -u)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


# -- the app ------------------------------------------------------------------------------


class FakeStripe:
    """The fake server's ASGI app and its state; :meth:`start` runs it in a thread."""

    def __init__(self) -> None:
        self.state = FakeStripeState()
        self._lock = threading.Lock()
        routes = [
            ("POST", "/v1/customers", create_customer),
            ("GET", "/v1/customers/{id}", retrieve_customer),
            ("POST", "/v1/payment_intents", create_payment_intent),
            ("GET", "/v1/payment_intents/{id}", retrieve_payment_intent),
            ("POST", "/v1/payment_intents/{id}", update_payment_intent),
            ("POST", "/v1/payment_intents/{id}/confirm", confirm_payment_intent),
            ("POST", "/v1/payment_intents/{id}/cancel", cancel_payment_intent),
            ("GET", "/v1/charges/{id}", retrieve_charge),
            ("POST", "/v1/refunds", create_refund),
            ("GET", "/v1/refunds/{id}", retrieve_refund),
            ("POST", "/v1/subscriptions", create_subscription),
            ("GET", "/v1/subscriptions/{id}", retrieve_subscription),
            ("POST", "/v1/subscriptions/{id}", update_subscription),
            ("DELETE", "/v1/subscriptions/{id}", cancel_subscription),
        ]
        self.app = Starlette(
            routes=[
                Route(path, self._endpoint(operation), methods=[method])
                for method, path, operation in routes
            ]
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def _endpoint(self, operation: Operation) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            raw = await request.body()
            pairs = parse_qsl(request.url.query, keep_blank_values=True)
            if request.method == "POST":
                pairs += parse_qsl(raw.decode(), keep_blank_values=True)
            with self._lock:
                return self._serve(request, operation, pairs)

        return endpoint

    def _serve(
        self, request: Request, operation: Operation, pairs: list[tuple[str, str]]
    ) -> JSONResponse:
        state = self.state
        state.requests.append((request.method, request.url.path))
        auth = _api_key(request.headers.get("authorization", ""))
        if not auth.startswith("sk_"):
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key."}},
                status_code=401,
            )
        params = decode_form(pairs)
        params.pop("expand", None)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = hashlib.sha256(
            json.dumps([request.url.path, params], sort_keys=True).encode()
        ).hexdigest()
        if key is not None:
            stored = state.idempotent.get((auth, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    return JSONResponse(
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used "
                                "with the same parameters they were first used with.",
                            }
                        },
                        status_code=400,
                    )
                return JSONResponse(
                    stored[2], status_code=stored[1], headers={"Idempotent-Replayed": "true"}
                )
        try:
            status, body = 200, copy.deepcopy(operation(state, params, request.path_params))
        except StripeFailure as failure:
            status, body = failure.status, {"error": failure.body}
        if key is not None and status < 500:
            state.idempotent[(auth, key)] = (fingerprint, status, body)
        return JSONResponse(body, status_code=status, headers={"Request-Id": new_id("req")})

    # -- running in a thread (tests) --------------------------------------------------

    def start(self, host: str = DEFAULT_HOST, port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (``port=0``: a free one)."""
        import socket

        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-stripe"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Stripe server did not start")
            time.sleep(0.02)
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the fake in the foreground (what ``make up`` supervises)."""
    import uvicorn

    uvicorn.run(FakeStripe().app, host=host, port=port, log_level="info", access_log=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="payments_service.fake_stripe", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
