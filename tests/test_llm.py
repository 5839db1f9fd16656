"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

import pytest

from agentrm.adapters.llm import (
    ChatClient,
    ChatResult,
    LLMHTTPError,
    LLMResponseError,
    RateLimitedError,
    parse_chat_response,
    parse_retry_after_ms,
)

sys.path.insert(0, str(Path(__file__).parent))
from fake_llm_server import FakeLLMServer  # noqa: E402


def test_chat_reports_reply_and_usage() -> None:
    """A successful call returns the reply text, the provider's token usage and a latency."""

    async def main() -> ChatResult:
        with FakeLLMServer(completion_tokens=7) as server:
            async with ChatClient(server.base_url, model="m1") as client:
                return await client.chat([{"role": "user", "content": "one two three"}])

    result = asyncio.run(main())
    assert result.latency_ms >= 0
    assert result == ChatResult(content="echo: one two three", prompt_tokens=3, completion_tokens=7,
                                total_tokens=10, latency_ms=result.latency_ms, model="m1",
                                finish_reason="stop")


@pytest.mark.parametrize("fmt", ["seconds", "decimal", "date"])
def test_429_becomes_rate_limited_error_without_retry(fmt: str) -> None:
    """HTTP 429 raises RateLimitedError carrying Retry-After in ms, and the client sends exactly one request."""

    async def main() -> tuple[RateLimitedError, list[tuple[int, int]]]:
        with FakeLLMServer(limit_per_window=1, window_s=30.0, retry_after=fmt) as server:
            async with ChatClient(server.base_url) as client:
                await client.chat([{"role": "user", "content": "first"}])
                with pytest.raises(RateLimitedError) as info:
                    await client.chat([{"role": "user", "content": "second"}])
                return info.value, server.counts()

    error, counts = asyncio.run(main())
    assert counts == [(1, 1)]
    assert error.retry_after_ms is not None
    # The window is 30 s long and the test runs well inside it; an HTTP date has 1 s resolution.
    assert 25_000 <= error.retry_after_ms <= 31_000


def test_429_without_retry_after_has_none() -> None:
    """A 429 without a Retry-After header leaves the delay to the kernel's default (None)."""

    async def main() -> RateLimitedError:
        with FakeLLMServer(limit_per_window=1, window_s=30.0, retry_after="none") as server:
            async with ChatClient(server.base_url) as client:
                await client.chat([{"role": "user", "content": "first"}])
                with pytest.raises(RateLimitedError) as info:
                    await client.chat([{"role": "user", "content": "second"}])
                return info.value

    assert asyncio.run(main()).retry_after_ms is None


def test_http_error_status_is_typed() -> None:
    """A non-429 error status raises LLMHTTPError with the status code."""

    async def main() -> LLMHTTPError:
        with FakeLLMServer() as server:
            async with ChatClient(server.base_url + "/wrong") as client:
                with pytest.raises(LLMHTTPError) as info:
                    await client.chat([{"role": "user", "content": "x"}])
                return info.value

    assert asyncio.run(main()).status_code == 404


def test_stalled_request_answers_when_released() -> None:
    """A stalled request hangs until the server releases it, then completes normally."""

    async def main() -> tuple[bool, ChatResult, int]:
        with FakeLLMServer() as server:
            async with ChatClient(server.base_url) as client:
                call = asyncio.ensure_future(client.chat([{"role": "user", "content": "STALL now"}]))
                done, _ = await asyncio.wait([call], timeout=0.3)
                hung = not done
                server.release_stalls()
                return hung, await call, server.stalled

    hung, result, stalled = asyncio.run(main())
    assert (hung, result.content, stalled) == (True, "echo: STALL now", 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3000), (" 0 ", 0), ("1.5", 1500), ("-2", 0), ("", None), (None, None), ("nan", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0), ("Thu, 01 Jan 2026 12:00:10 GMT", 10_000), ("later", None)],
)
def test_parse_retry_after(value: str | None, expected: int | None) -> None:
    """Retry-After parses as seconds or an HTTP date relative to now; past dates give 0, junk gives None."""
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after_ms(value, now) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [("not json", "response body"), ("[]", "response body"), ('{"choices": []}', "choices"),
     ('{"choices": [{"message": {"content": 3}}]}', "choices[0].message.content"),
     ('{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": -1}}', "usage.prompt_tokens")],
)
def test_malformed_reply_names_the_field(body: str, field: str) -> None:
    """A malformed 2xx body raises LLMResponseError whose message starts with the bad field."""
    with pytest.raises(LLMResponseError) as info:
        parse_chat_response(body, 0)
    assert str(info.value).startswith(field + ":")


def test_missing_usage_counts_zero_tokens() -> None:
    """A reply without usage reports zero tokens rather than failing."""
    assert parse_chat_response('{"choices": [{"message": {"content": "hi"}}]}', 4) == ChatResult(
        content="hi", prompt_tokens=0, completion_tokens=0, total_tokens=0, latency_ms=4)
