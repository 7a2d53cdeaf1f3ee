"""A local HTTP server that speaks enough of the Slack Web API for the real slack-sdk client.

It answers chat.postMessage, chat.update and auth.test like Slack does (form or JSON
bodies, `ok`/`error` JSON answers, 429 with Retry-After), records every request, and
can be told to fail the next requests, so tests exercise the client's own retry logic.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    body: dict
    headers: dict
    at: float


@dataclass
class FakeSlack:
    token: str = "xoxb-test-token-not-secret"
    requests: list[Request] = field(default_factory=list)
    # Responses to give before answering normally: ("429", seconds) or ("500", None).
    failures: list[tuple[str, float | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def posts(self, method: str = "chat.postMessage") -> list[dict]:
        return [r.body for r in self.requests if r.method == method]

    def start(self) -> "FakeSlack":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                method = self.path.rsplit("/", 1)[-1]
                with fake._lock:
                    fake.requests.append(Request(method, body, dict(self.headers), time.monotonic()))
                    failure = fake.failures.pop(0) if fake.failures else None
                if failure and failure[0] == "429":
                    self._answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(int(failure[1]))})
                    return
                if failure and failure[0] == "500":
                    self._answer(500, {"ok": False, "error": "internal_error"})
                    return
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {fake.token}":
                    self._answer(200, {"ok": False, "error": "invalid_auth"})
                    return
                if method == "auth.test":
                    self._answer(200, {"ok": True, "team": "test", "user": "mlwatch"})
                elif method in ("chat.postMessage", "chat.update"):
                    ts = body.get("ts") or f"1700000000.{next(fake._ts):06d}"
                    self._answer(200, {"ok": True, "channel": body.get("channel"), "ts": ts,
                                       "message": {"text": body.get("text"), "ts": ts}})
                else:
                    self._answer(200, {"ok": False, "error": "unknown_method"})

            def _answer(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
