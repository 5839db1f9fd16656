"""An OpenAI-compatible chat client that reports usage and latency and never retries.

The client sends one ``POST {base_url}/chat/completions`` per call and returns a
:class:`ChatResult` carrying the reply, the token usage the provider reported and the
measured latency. It deliberately has no retry loop: a 429 becomes a typed
:class:`RateLimitedError` carrying the provider's Retry-After in milliseconds, so the
caller (the runtime) can hand it to the kernel's provider gate, which pauses the
provider for every agent at once. Retrying here, behind the gate's back, is exactly
what makes 429s cascade.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import httpx

__all__ = [
    "ChatClient",
    "ChatResult",
    "LLMError",
    "LLMHTTPError",
    "LLMResponseError",
    "RateLimitedError",
    "parse_retry_after_ms",
]


class LLMError(Exception):
    """Base class of every error the client raises."""


class RateLimitedError(LLMError):
    """The provider answered HTTP 429.

    ``retry_after_ms`` is its Retry-After header converted to milliseconds, or None when
    it sent none (or an unreadable one); the kernel then uses its configured default.
    """

    def __init__(self, retry_after_ms: int | None, body: str = "") -> None:
        super().__init__(f"rate limited (HTTP 429), retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms
        self.body = body


class LLMHTTPError(LLMError):
    """The provider answered with an HTTP error status other than 429."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"HTTP {status_code} from the chat endpoint: {body[:200]}")
        self.status_code = status_code
        self.body = body


class LLMResponseError(LLMError):
    """The provider answered 2xx with a body that is not a chat completion; names the field."""


@attrs.frozen
class ChatResult:
    """One completed chat call.

    ``content`` is the first choice's message text; token counts come from the
    response's ``usage`` (0 when the provider omits them); ``latency_ms`` is the wall
    time from sending the request to reading the whole response.
    """

    content: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_ms: int
    model: str = ""
    finish_reason: str = ""


def parse_retry_after_ms(value: str | None, now: _dt.datetime | None = None) -> int | None:
    """Convert a Retry-After header (RFC 9110 10.2.3) to milliseconds from ``now``.

    Accepts delay-seconds (also a decimal, which some providers send) or an HTTP date;
    a date in the past gives 0. Returns None for a missing or unreadable value.

    >>> parse_retry_after_ms("2")
    2000
    >>> parse_retry_after_ms("0.25")
    250
    >>> now = _dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=_dt.timezone.utc)
    >>> parse_retry_after_ms("Thu, 01 Jan 2026 12:00:03 GMT", now)
    3000
    >>> parse_retry_after_ms("soon") is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        # Round up: waiting a fraction of a millisecond too long is harmless, too short is a 429.
        return max(0, math.ceil(seconds * 1000))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are always GMT
        when = when.replace(tzinfo=_dt.timezone.utc)
    current = now if now is not None else _dt.datetime.now(_dt.timezone.utc)
    return max(0, math.ceil((when - current).total_seconds() * 1000))


def _int_field(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LLMResponseError(f"usage.{name}: expected a non-negative integer, got {value!r}")
    return value


def parse_chat_response(body: str, latency_ms: int) -> ChatResult:
    """Read an OpenAI-style chat completion body; raise :class:`LLMResponseError` naming a bad field."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise LLMResponseError(f"response body: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise LLMResponseError("response body: expected a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise LLMResponseError("choices: expected a non-empty list")
    first = choices[0]
    if not isinstance(first, dict):
        raise LLMResponseError("choices[0]: expected an object")
    message = first.get("message")
    if not isinstance(message, dict):
        raise LLMResponseError("choices[0].message: expected an object")
    content = message.get("content")
    if content is None:
        content = ""  # tool-call replies carry no text
    if not isinstance(content, str):
        raise LLMResponseError(f"choices[0].message.content: expected a string, got {type(content).__name__}")
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        raise LLMResponseError("usage: expected an object")
    prompt = _int_field(usage, "prompt_tokens")
    completion = _int_field(usage, "completion_tokens")
    total = _int_field(usage, "total_tokens") or prompt + completion
    model = data.get("model", "")
    finish = first.get("finish_reason", "")
    return ChatResult(
        content=content,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        latency_ms=latency_ms,
        model=model if isinstance(model, str) else "",
        finish_reason=finish if isinstance(finish, str) else "",
    )


class ChatClient:
    """An async client for an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``base_url`` ends before ``/chat/completions`` (e.g. ``https://api.openai.com/v1``).
    Pass ``client`` to share an ``httpx.AsyncClient`` (its lifetime is then yours);
    otherwise the client owns one, closed by :meth:`aclose` or ``async with``.
    Each call is exactly one HTTP request: no retries, ever.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        timeout_s: float = 120.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url:
            raise ValueError("base_url: must be non-empty")
        self._url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        # retries=0 on the transport too: httpx's connect retries would also be a hidden retry.
        self._client = client if client is not None else httpx.AsyncClient(
            timeout=timeout_s,
            transport=httpx.AsyncHTTPTransport(retries=0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._clock = clock

    async def chat(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> ChatResult:
        """Send one chat completion request; return its reply, usage and latency.

        Raises :class:`RateLimitedError` on 429, :class:`LLMHTTPError` on any other
        error status, :class:`LLMResponseError` on a malformed reply; network errors
        propagate as ``httpx`` exceptions.
        """
        payload: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        payload.update(params)
        started = self._clock()
        response = await self._client.post(self._url, json=payload, headers=self._headers)
        latency_ms = max(0, round((self._clock() - started) * 1000))
        if response.status_code == 429:
            raise RateLimitedError(parse_retry_after_ms(response.headers.get("retry-after")), response.text)
        if response.status_code >= 400:
            raise LLMHTTPError(response.status_code, response.text)
        return parse_chat_response(response.text, latency_ms)

    async def aclose(self) -> None:
        """Close the underlying HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
