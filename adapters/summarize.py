"""Summarizers for context compaction: a pluggable async protocol and an offline default.

The context kernel asks for a summary of a range of archived entries with a
``RequestSummary`` effect; the shell calls a :class:`Summarizer` and reports the result
back as a ``Summarized`` event. In real use the summarizer is an LLM call
(:class:`LLMSummarizer`); the default, :class:`ExtractiveSummarizer`, is deterministic
and offline so that tests, the simulator and benchmarks run without a network.

Because compaction archives every entry verbatim before it leaves the hot tier, a
summary is a convenience for the agent, not the only copy: a poor summary costs
relevance, never information.

Token accounting
----------------
:func:`count_tokens` estimates tokens as ``ceil(utf8_bytes / 4)``: OpenAI's published
rule of thumb is about 4 characters per token for English, and counting UTF-8 bytes
instead of characters makes non-Latin text (2-4 bytes a character, which real
tokenizers also split finer) cost proportionally more. It is deterministic and needs
no tokenizer download.

The **cost model** mirrors what an LLM summarization call would bill::

    tokens_spent = input_tokens + output_tokens
    input_tokens = PROMPT_OVERHEAD_TOKENS
                   + sum(entry.tokens + MESSAGE_OVERHEAD_TOKENS for each entry)
    output_tokens = count_tokens(summary text)

``entry.tokens`` is the size the caller already charged the entry in the context
window, so the input is billed in the same units as the context budget. Summarizing no
entries makes no call and costs 0.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import attrs

from agentrm.kernel.context.types import Entry

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "PROMPT_OVERHEAD_TOKENS",
    "SUMMARY_PROMPT",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Summarizer",
    "SummaryResult",
    "count_tokens",
    "input_tokens",
]

#: The system message an LLM summarizer sends before the entries.
SUMMARY_PROMPT: Final = (
    "Summarize the conversation excerpt below for the same assistant to read later. "
    "Keep names, numbers, identifiers, decisions and open questions; drop pleasantries. "
    "At most {max_tokens} tokens."
)


def count_tokens(text: str) -> int:
    """Estimate ``text``'s token count as ``ceil(utf8_bytes / 4)`` (see the module docstring).

    >>> count_tokens(""), count_tokens("abcd"), count_tokens("abcde"), count_tokens("東京")
    (0, 1, 2, 2)
    """
    return -(-len(text.encode("utf-8", "surrogatepass")) // 4)


#: Chat formats wrap each message in role markers: about 4 tokens a message in
#: OpenAI's published counting recipe for chat models.
MESSAGE_OVERHEAD_TOKENS: Final = 4
#: The instruction sent before the entries: :data:`SUMMARY_PROMPT` (with a two-digit
#: size) in its message wrapper -- 49 tokens.
PROMPT_OVERHEAD_TOKENS: Final = (
    count_tokens(SUMMARY_PROMPT.format(max_tokens=96)) + MESSAGE_OVERHEAD_TOKENS
)


def input_tokens(entries: Sequence[Entry]) -> int:
    """The input side of the cost model: prompt overhead plus each entry and its wrapper."""
    if not entries:
        return 0
    return PROMPT_OVERHEAD_TOKENS + sum(e.tokens + MESSAGE_OVERHEAD_TOKENS for e in entries)


@attrs.frozen
class SummaryResult:
    """A summary's ``text``, the ``tokens_spent`` producing it (the cost model), and its
    own size ``tokens`` in the context window (``count_tokens(text)`` unless given)."""

    text: str
    tokens_spent: int
    tokens: int = attrs.field(
        default=attrs.Factory(lambda self: count_tokens(self.text), takes_self=True)
    )


class Summarizer(Protocol):
    """Anything that summarizes a range of entries: ``await summarizer(entries)``."""

    def __call__(self, entries: Sequence[Entry]) -> Awaitable[SummaryResult]:
        """Summarize ``entries`` (in seq order) and report the tokens it cost."""
        ...


# Sentence ends: ., ! or ? followed by whitespace, or a line break. Abbreviations split
# too; an extractive summary tolerates that, and the rule stays predictable.
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
_WORD: Final = re.compile(r"\w+")
#: Words too common to say what a passage is about. A short fixed list, not a
#: downloaded one, so scores never change between installs.
_STOPWORDS: Final = frozenset(
    """about above after again all also and any are because been before being below
    between both but can could did does doing down during each few for from further
    had has have having her here hers him his how into its itself just let like more
    most much myself nor not now off once only other our ours out over own same she
    should some such than that the their theirs them then there these they this those
    through too under until very was were what when where which while who whom why
    will with would you your yours yourself okay sure thanks thank please yes""".split()
)


@attrs.frozen
class _Sentence:
    position: int
    role: str
    text: str
    tokens: int
    score: int


def _sentences(entries: Sequence[Entry]) -> list[_Sentence]:
    """Split entries into sentences and score each one (integers only, so exact)."""
    pieces: list[tuple[str, str, list[str]]] = []
    for e in entries:
        for raw in _SENTENCE_END.split(e.text):
            text = raw.strip()
            if text:
                words = [w.lower() for w in _WORD.findall(text)]
                pieces.append((e.role, text, words))
    # Document frequency over sentences: a word the excerpt keeps returning to is what
    # the excerpt is about, so sentences that mention such words summarize it best.
    df: dict[str, int] = {}
    for _, _, words in pieces:
        for w in set(words):
            if len(w) >= 3 and w not in _STOPWORDS:
                df[w] = df.get(w, 0) + 1
    out = []
    for position, (role, text, words) in enumerate(pieces):
        content = {w for w in words if w in df}
        # Digits mark facts (ids, amounts, dates) that a summary should not lose.
        facts = sum(1 for w in content if any(c.isdigit() for c in w))
        # Per-word normalization (+4 damping) keeps long rambling sentences from
        # winning on length alone while not favouring one-word fragments.
        # A word seen in only this sentence says nothing about the excerpt: df - 1.
        score = 1000 * (sum(df[w] - 1 for w in content) + 2 * facts) // (len(words) + 4)
        out.append(_Sentence(position, role, text, count_tokens(f"{role}: {text}\n"), score))
    return out


def _truncate(text: str, max_tokens: int) -> str:
    """Cut ``text`` to at most ``max_tokens`` by :func:`count_tokens`, at a word if possible."""
    if count_tokens(text) <= max_tokens:
        return text
    budget = max_tokens * 4 - len(" ...".encode())
    cut = text.encode("utf-8", "surrogatepass")[: max(budget, 0)].decode("utf-8", "ignore")
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut + " ..."


@attrs.frozen
class ExtractiveSummarizer:
    """The deterministic offline summarizer: the best-scoring sentences, in their order.

    Every sentence of the excerpt is scored by how often its content words recur in
    the other sentences (plus a bonus for words with digits), per word. The
    sentences are taken best first (ties: earlier first) while they fit in
    ``min(max_tokens, max(min_tokens, ratio_permille * input / 1000))`` tokens, then
    emitted in their original order as ``role: sentence`` lines. If not even the best
    sentence fits, it is truncated. The same entries always give the same summary.
    """

    max_tokens: int = 96
    ratio_permille: int = 200
    min_tokens: int = 16

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.min_tokens <= self.max_tokens or self.ratio_permille < 0:
            raise ValueError(
                "ExtractiveSummarizer needs 1 <= min_tokens <= max_tokens and "
                f"ratio_permille >= 0, got {self!r}"
            )

    def target_tokens(self, entries: Sequence[Entry]) -> int:
        """The size budget for a summary of ``entries``."""
        proportional = self.ratio_permille * sum(e.tokens for e in entries) // 1000
        return min(self.max_tokens, max(self.min_tokens, proportional))

    def summarize(self, entries: Sequence[Entry]) -> SummaryResult:
        """Summarize synchronously (the simulator calls this; ``await self(...)`` is the same)."""
        if not entries:
            return SummaryResult("", 0)
        budget = self.target_tokens(entries)
        sentences = _sentences(entries)
        chosen: list[_Sentence] = []
        used = 0
        for s in sorted(sentences, key=lambda s: (-s.score, s.position)):
            if used + s.tokens <= budget:
                chosen.append(s)
                used += s.tokens
        if chosen:
            text = "\n".join(
                f"{s.role}: {s.text}" for s in sorted(chosen, key=lambda s: s.position)
            )
        elif sentences:
            best = min(sentences, key=lambda s: (-s.score, s.position))
            text = _truncate(f"{best.role}: {best.text}", budget)
        else:
            text = ""
        return SummaryResult(text, input_tokens(entries) + count_tokens(text))

    async def __call__(self, entries: Sequence[Entry]) -> SummaryResult:
        """Summarize ``entries``; see :meth:`summarize`."""
        return self.summarize(entries)


#: What :class:`LLMSummarizer` needs from a chat client: ``await chat(messages)``
#: returning an object with ``content`` and ``total_tokens`` (``adapters.llm.ChatClient.chat``).
ChatCall = Callable[[Sequence[Mapping[str, Any]]], Awaitable[Any]]


@attrs.frozen
class LLMSummarizer:
    """A summarizer that asks a chat model, billed by the provider's reported usage.

    ``chat`` is e.g. ``ChatClient(...).chat`` from ``agentrm.adapters.llm``. In the
    runtime this call must go through the provider gate like any other LLM call; a
    rate-limit error propagates to the caller unchanged (no retry here).
    """

    chat: ChatCall
    max_tokens: int = 96

    async def __call__(self, entries: Sequence[Entry]) -> SummaryResult:
        """Send the entries with :data:`SUMMARY_PROMPT`; return the reply and its usage."""
        if not entries:
            return SummaryResult("", 0)
        messages = [
            {"role": "system", "content": SUMMARY_PROMPT.format(max_tokens=self.max_tokens)},
            {"role": "user", "content": "\n".join(f"{e.role}: {e.text}" for e in entries)},
        ]
        reply = await self.chat(messages)
        text = str(reply.content)
        spent = int(reply.total_tokens)
        if spent <= 0:  # the provider reported no usage: fall back to the cost model
            spent = input_tokens(entries) + count_tokens(text)
        return SummaryResult(text, spent)
