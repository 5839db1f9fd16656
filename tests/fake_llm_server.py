"""A real OpenAI-compatible chat server on 127.0.0.1 for adapter tests.

Standard library only (``http.server`` in a background thread). It enforces a
requests-per-window limit with HTTP 429 + Retry-After, counts accepted and rejected
requests per window, and can stall requests (any request whose messages contain
``STALL`` hangs until released, the stall bound, or shutdown). It is bounded: it stops
by itself after ``lifetime_s`` and every stall ends by ``stall_max_s``.
"""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STALL_MARKER = "STALL"
"""A message containing this text makes the server hang instead of answering."""


class FakeLLMServer:
    """The server; use as a context manager. ``base_url`` ends in ``/v1``.

    ``limit_per_window`` requests are answered per ``window_s`` window (windows are
    aligned to the server's start); later ones get 429 with a Retry-After naming the
    end of the window, formatted per ``retry_after`` ("seconds": integer, rounded up;
    "decimal"; "date": an HTTP date; "none": no header). ``limit_per_window=0`` means
    unlimited.
    """

    def __init__(
        self,
        *,
        limit_per_window: int = 0,
        window_s: float = 1.0,
        retry_after: str = "decimal",
        completion_tokens: int = 5,
        latency_s: float = 0.0,
        stall_max_s: float = 30.0,
        lifetime_s: float = 120.0,
    ) -> None:
        if retry_after not in ("seconds", "decimal", "date", "none"):
            raise ValueError(f"retry_after: unknown format {retry_after!r}")
        self.limit_per_window = limit_per_window
        self.window_s = window_s
        self.retry_after = retry_after
        self.completion_tokens = completion_tokens
        self.latency_s = latency_s
        self.stall_max_s = stall_max_s
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._accepted: dict[int, int] = {}
        self._rejected: dict[int, int] = {}
        self.first_429_window: int | None = None
        self.stalled = 0
        self._t0 = time.monotonic()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-llm", daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def base_url(self) -> str:
        """The ``/v1`` base URL to give a :class:`~agentrm.adapters.llm.ChatClient`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeLLMServer:
        """Start serving in a background thread."""
        self._t0 = time.monotonic()
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Release stalled requests and stop the server (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._release.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def release_stalls(self) -> None:
        """Let every stalled request (and any later one) answer normally."""
        self._release.set()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counts(self) -> list[tuple[int, int]]:
        """(accepted, rejected) per window, from window 0 to the last one seen."""
        with self._lock:
            last = max([*self._accepted, *self._rejected, -1])
            return [(self._accepted.get(i, 0), self._rejected.get(i, 0)) for i in range(last + 1)]

    def _admit(self) -> tuple[bool, float]:
        """Count one request; return whether it is admitted and the seconds left in its window."""
        elapsed = time.monotonic() - self._t0
        window = int(elapsed // self.window_s)
        left = (window + 1) * self.window_s - elapsed
        with self._lock:
            used = self._accepted.get(window, 0)
            if self.limit_per_window and used >= self.limit_per_window:
                self._rejected[window] = self._rejected.get(window, 0) + 1
                if self.first_429_window is None:
                    self.first_429_window = window
                return False, left
            self._accepted[window] = used + 1
            return True, left

    def _retry_after_header(self, left_s: float) -> str | None:
        if self.retry_after == "seconds":
            return str(max(1, math.ceil(left_s)))
        if self.retry_after == "decimal":
            return f"{left_s:.3f}"
        if self.retry_after == "date":
            return email.utils.formatdate(time.time() + left_s, usegmt=True)
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass  # keep test output clean

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    request = json.loads(raw)
                    messages = request["messages"]
                    text = " ".join(str(m.get("content", "")) for m in messages)
                except (ValueError, KeyError, TypeError, AttributeError):
                    self._send(400, {"error": {"message": "body: expected {messages: [...]}"}})
                    return
                admitted, left = server._admit()
                if not admitted:
                    header = server._retry_after_header(left)
                    self._send(429, {"error": {"message": "rate limited"}},
                               {"Retry-After": header} if header is not None else None)
                    return
                if STALL_MARKER in text:
                    with server._lock:
                        server.stalled += 1
                    server._release.wait(server.stall_max_s)
                if server.latency_s:
                    time.sleep(server.latency_s)
                prompt_tokens = len(text.split())
                self._send(200, {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": str(request.get("model", "fake")),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"echo: {text[:40]}"}}],
                    "usage": {"prompt_tokens": prompt_tokens,
                              "completion_tokens": server.completion_tokens,
                              "total_tokens": prompt_tokens + server.completion_tokens},
                })

        return Handler
