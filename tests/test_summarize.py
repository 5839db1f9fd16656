"""Tests of the summarizers: determinism, size bound, extractiveness and the token cost model."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.adapters.summarize import (
    MESSAGE_OVERHEAD_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
    ExtractiveSummarizer,
    LLMSummarizer,
    Summarizer,
    SummaryResult,
    count_tokens,
    input_tokens,
)
from agentrm.kernel.context.types import Entry

MIGRATION = [
    ("user", "Can you help me plan the migration of the billing service to Postgres 16? "
             "The deadline is March 3."),
    ("assistant", "Sure. The billing service currently uses MySQL 5.7. We need to migrate "
                  "42 tables. I suggest we start with the invoices table."),
    ("user", "Sounds good. Also, the invoices table has 12 million rows, so downtime matters."),
    ("assistant", "Then we should use logical replication for the invoices table to keep "
                  "downtime under 5 minutes."),
    ("user", "Great, thanks."),
]


def entries_of(pairs: Sequence[tuple[str, str]]) -> tuple[Entry, ...]:
    return tuple(
        Entry(entry_id=f"e{i}", seq=i, role=role, text=text, tokens=count_tokens(text))
        for i, (role, text) in enumerate(pairs)
    )


def test_count_tokens_is_utf8_bytes_over_four_rounded_up() -> None:
    """count_tokens is ceil(UTF-8 bytes / 4), so non-Latin text costs more per character."""
    cases = ["", "a", "abcd", "abcde", "é", "東京", "🙂🙂", "hello world, this is 29 bytes"]
    assert [count_tokens(t) for t in cases] == [0, 1, 1, 2, 1, 2, 2, 8]


@given(st.text(), st.text())
def test_count_tokens_is_monotone_and_subadditive(a: str, b: str) -> None:
    """Appending text never lowers the count, and a concatenation costs at most its parts."""
    assert count_tokens(a) <= count_tokens(a + b) <= count_tokens(a) + count_tokens(b)


def test_extractive_summary_of_a_conversation() -> None:
    """The example conversation yields the expected sentences, size and bill."""
    entries = entries_of(MIGRATION)
    s = ExtractiveSummarizer(max_tokens=96, ratio_permille=400, min_tokens=16)
    result = s.summarize(entries)
    text = (
        "user: The deadline is March 3.\n"
        "assistant: I suggest we start with the invoices table.\n"
        "user: Also, the invoices table has 12 million rows, so downtime matters."
    )
    assert s.target_tokens(entries) == 42
    assert result == SummaryResult(
        text=text,
        tokens_spent=PROMPT_OVERHEAD_TOKENS
        + sum(e.tokens + MESSAGE_OVERHEAD_TOKENS for e in entries)
        + count_tokens(text),
        tokens=count_tokens(text),
    )


def test_cost_model_and_empty_input() -> None:
    """tokens_spent = prompt overhead + each entry and its wrapper + the output; nothing costs 0."""
    entries = entries_of(MIGRATION)
    result = ExtractiveSummarizer().summarize(entries)
    assert input_tokens(entries) == 49 + sum(e.tokens + 4 for e in entries)
    assert result.tokens_spent == input_tokens(entries) + count_tokens(result.text)
    assert ExtractiveSummarizer().summarize(()) == SummaryResult("", 0, 0)
    assert input_tokens(()) == 0


def test_ties_go_to_the_earlier_sentence() -> None:
    """Equal-scoring sentences are taken in position order when only one fits."""
    entries = entries_of([("user", "alpha beta gamma."), ("user", "alpha beta gamma.")])
    result = ExtractiveSummarizer(max_tokens=6, min_tokens=6).summarize(entries)
    assert result == SummaryResult("user: alpha beta gamma.", result.tokens_spent, 6)


def test_an_oversized_best_sentence_is_truncated_to_the_budget() -> None:
    """When no sentence fits, the best one is cut at a word to fit the target."""
    words = " ".join(f"word{i}" for i in range(60))
    result = ExtractiveSummarizer(max_tokens=10, min_tokens=10).summarize(entries_of([("tool", words)]))
    assert result.text == "tool: word0 word1 word2 word3 word4 ..."
    assert result.tokens == count_tokens(result.text) <= 10


PAIRS = st.lists(
    st.tuples(
        st.sampled_from(["user", "assistant", "tool"]),
        st.text(alphabet=st.sampled_from("ab cd ef 12.!?\nxyzé東"), max_size=120),
    ),
    max_size=8,
)


@given(PAIRS, st.integers(1, 60), st.integers(0, 1000))
def test_summary_fits_its_target_and_is_extractive(
    pairs: list[tuple[str, str]], max_tokens: int, ratio: int
) -> None:
    """The summary never exceeds its target, reports its own size, and quotes only the input."""
    entries = entries_of(pairs)
    s = ExtractiveSummarizer(max_tokens=max_tokens, ratio_permille=ratio, min_tokens=1)
    result = s.summarize(entries)
    assert result.tokens == count_tokens(result.text) <= s.target_tokens(entries)
    assert result.tokens_spent == input_tokens(entries) + result.tokens
    if not result.text.endswith(" ..."):
        for line in result.text.splitlines():
            role, _, sentence = line.partition(": ")
            assert any(e.role == role and sentence in e.text for e in entries)
    assert asyncio.run(s(entries)) == result


DETERMINISM = """
from agentrm.adapters.summarize import ExtractiveSummarizer, count_tokens
from agentrm.kernel.context.types import Entry
texts = ["zeta eta theta. iota kappa zeta.", "kappa lambda eta! mu nu.", "theta iota zeta kappa?"]
es = [Entry(str(i), i, "user", t, count_tokens(t)) for i, t in enumerate(texts)]
print(repr(ExtractiveSummarizer(max_tokens=12, min_tokens=12).summarize(es)))
"""


def test_summaries_are_identical_across_processes_and_hash_seeds() -> None:
    """The same entries summarize to the same text in processes with different hash seeds."""
    outs = {
        subprocess.run(
            [sys.executable, "-c", DETERMINISM],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_bad_configuration_is_refused() -> None:
    """min_tokens must be in [1, max_tokens] and ratio_permille non-negative."""
    for kwargs in ({"min_tokens": 0}, {"max_tokens": 8, "min_tokens": 9}, {"ratio_permille": -1}):
        with pytest.raises(ValueError, match="ExtractiveSummarizer needs"):
            ExtractiveSummarizer(**kwargs)


@attrs.frozen
class FakeReply:
    content: str
    total_tokens: int


def test_llm_summarizer_sends_the_entries_and_bills_reported_usage() -> None:
    """The LLM summarizer sends one prompt with every entry and bills the provider's usage."""
    sent: list[Sequence[Mapping[str, Any]]] = []

    def fake_chat(usage: int) -> Any:
        async def chat(messages: Sequence[Mapping[str, Any]]) -> FakeReply:
            sent.append(messages)
            return FakeReply("summary text", usage)

        return chat

    entries = entries_of(MIGRATION[:2])
    got = asyncio.run(LLMSummarizer(fake_chat(321), max_tokens=50)(entries))
    fallback = asyncio.run(LLMSummarizer(fake_chat(0))(entries))
    assert (got, fallback) == (
        SummaryResult("summary text", 321),
        SummaryResult("summary text", input_tokens(entries) + count_tokens("summary text")),
    )
    assert [m["role"] for m in sent[0]] == ["system", "user"]
    assert "At most 50 tokens" in sent[0][0]["content"]
    assert sent[0][1]["content"] == "\n".join(f"{r}: {t}" for r, t in MIGRATION[:2])
    assert asyncio.run(LLMSummarizer(fake_chat(5))(())) == SummaryResult("", 0)
    assert len(sent) == 2


def test_both_summarizers_satisfy_the_protocol() -> None:
    """The extractive and the LLM summarizer are both usable where a Summarizer is expected."""

    async def chat(messages: Sequence[Mapping[str, Any]]) -> FakeReply:
        return FakeReply("s", 7)

    summarizers: list[Summarizer] = [ExtractiveSummarizer(), LLMSummarizer(chat)]
    entries = entries_of(MIGRATION[:1])
    results = [asyncio.run(_call(s, entries)) for s in summarizers]
    assert results == [ExtractiveSummarizer().summarize(entries), SummaryResult("s", 7)]


async def _call(s: Summarizer, entries: Sequence[Entry]) -> SummaryResult:
    return await s(entries)
