"""A local HTTP server that speaks enough of the Slack Web API for the real slack-sdk client.

It answers chat.postMessage, chat.update, conversations.history, conversations.replies,
conversations.list and auth.test like Slack does (form or JSON bodies, `ok`/`error` JSON
answers, 429 with Retry-After, channel ids: a post may name '#channel', the other methods
need the id it answered with; message metadata returned only with include_all_metadata),
keeps the messages it accepted per channel, records every request, and can be told to fail
the next requests, so tests exercise the client's own retry logic. One failure, "500 after
posting", keeps the message and still answers 500, as Slack can.
"""

from __future__ import annotations

import hashlib
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
    # Responses to give before answering normally: ("429", seconds), ("500", None) or
    # ("500 after posting", None) (a post is kept, the answer is 500 all the same).
    failures: list[tuple[str, float | None]] = field(default_factory=list)
    # Accepted messages per channel id: dicts with ts, text, thread_ts, metadata, blocks.
    messages: dict[str, list[dict]] = field(default_factory=dict)
    # Methods answered {"ok": false, "error": "missing_scope"}, as for a bot without the scope.
    missing_scopes: set[str] = field(default_factory=set)
    # The workspace's channels (conversations.list), the bot in each.
    channels: set[str] = field(default_factory=lambda: {"general", "ml-alerts", "toy-alerts", "payments-ml-alerts",
                                                         "logistics-ml-alerts"})

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

    @staticmethod
    def channel_id(channel: str) -> str:
        """The id of a channel named '#name' (or 'name'); an id stands for itself."""
        if channel.startswith("C") and channel[1:].isalnum() and channel.isupper():
            return channel
        return "C" + hashlib.sha1(channel.lstrip("#").encode()).hexdigest()[:9].upper()

    def in_channel(self, channel: str, *, replies: bool = False) -> list[dict]:
        """The messages Slack shows in a channel: top-level ones, or with replies=True only the replies."""
        return [m for m in self.messages.get(self.channel_id(channel), [])
                if bool(m.get("thread_ts")) == replies]

    def _post(self, body: dict) -> dict:
        channel = self.channel_id(body["channel"])
        ts = f"{int(time.time())}.{next(self._ts):06d}"    # Slack's ts is the posting time
        meta = body.get("metadata")
        message = {"ts": ts, "text": body.get("text"), "thread_ts": body.get("thread_ts"),
                   "metadata": json.loads(meta) if isinstance(meta, str) else meta,
                   "blocks": body.get("blocks")}
        self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text"), "ts": ts}}

    def _listing(self, messages: list[dict], body: dict) -> dict:
        oldest = float(body.get("oldest") or 0)
        shown = []
        for message in sorted(messages, key=lambda m: m["ts"], reverse=True):
            if float(message["ts"]) < oldest:
                continue
            item = {"type": "message", "ts": message["ts"], "text": message["text"]}
            if message.get("thread_ts"):
                item["thread_ts"] = message["thread_ts"]
            if message.get("metadata") and str(body.get("include_all_metadata")).lower() in ("1", "true"):
                item["metadata"] = message["metadata"]
            shown.append(item)
        return {"ok": True, "messages": shown, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _answer_method(self, method: str, body: dict) -> dict:
        if method in self.missing_scopes:
            return {"ok": False, "error": "missing_scope"}
        if method == "auth.test":
            return {"ok": True, "team": "test", "user": "mlwatch"}
        if method == "chat.postMessage":
            return self._post(body)
        if method == "conversations.list":
            return {"ok": True, "channels": [{"id": self.channel_id(n), "name": n} for n in sorted(self.channels)],
                    "response_metadata": {"next_cursor": ""}}
        channel = body.get("channel") or ""
        if channel != self.channel_id(channel):
            return {"ok": False, "error": "channel_not_found"}    # these methods need the channel's id
        if method == "chat.update":
            found = [m for m in self.messages.get(channel, []) if m["ts"] == body.get("ts")]
            if not found:
                return {"ok": False, "error": "message_not_found"}
            found[0].update(text=body.get("text"), blocks=body.get("blocks"))
            return {"ok": True, "channel": channel, "ts": body["ts"], "text": body.get("text")}
        if method == "conversations.history":
            return self._listing([m for m in self.messages.get(channel, []) if not m.get("thread_ts")], body)
        if method == "conversations.replies":
            thread = body.get("ts")
            return self._listing([m for m in self.messages.get(channel, [])
                                  if m["ts"] == thread or m.get("thread_ts") == thread], body)
        return {"ok": False, "error": "unknown_method"}

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
                auth = self.headers.get("Authorization", "")
                if failure and failure[0] == "500 after posting" and auth == f"Bearer {fake.token}":
                    with fake._lock:
                        fake._answer_method(method, body)
                    self._answer(500, {"ok": False, "error": "internal_error"})
                    return
                if failure and failure[0] == "500":
                    self._answer(500, {"ok": False, "error": "internal_error"})
                    return
                if auth != f"Bearer {fake.token}":
                    self._answer(200, {"ok": False, "error": "invalid_auth"})
                    return
                with fake._lock:
                    answer = fake._answer_method(method, body)
                self._answer(200, answer)

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
