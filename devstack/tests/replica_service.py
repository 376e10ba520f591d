"""``python -m devstack.tests.replica_service serve``: answers /readyz on ``FAKE_PORT``.

A stand-in API process for the replica test; it says which port answered.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"port": self.server.server_address[1]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    assert sys.argv[1:] == ["serve"], sys.argv
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["FAKE_PORT"])), Handler).serve_forever()
