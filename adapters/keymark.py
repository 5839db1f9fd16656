"""Key-information markers: decide which context entries are kept verbatim in warm.

A :class:`Marker` is any callable ``(text, role) -> bool``. The shell calls it when an
entry is appended and passes the answer as the ``key`` flag; the context kernel never
replaces a key entry by a summary.

:class:`HeuristicMarker` is the default: regular expressions and keyword lists for
identifiers, numbers, paths, URLs, e-mail addresses, decisions, constraints and user
preferences, plus every ``system`` message (instructions are constraints). It sees only
the entry's text and role -- never a benchmark's labels or probes -- so its measured
precision and recall are honest.

Retention does not depend on the marker being perfect. Compaction archives every entry
verbatim (SQLite, full-text indexed) before it leaves the hot tier, so an unmarked fact
is still recoverable by a recall query; the marker only decides what stays in the
agent's window without a query. A false positive costs warm-tier tokens; a false
negative costs a recall round trip, never the fact.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

import attrs

__all__ = ["ALWAYS_KEY_ROLES", "SIGNALS", "SIGNAL_NAMES", "HeuristicMarker", "Marker", "Signal"]


class Marker(Protocol):
    """Anything that marks key information: ``marker(text, role) -> bool``."""

    def __call__(self, text: str, role: str) -> bool:
        """Return whether the entry with this text and role is key information."""
        ...


def _phrases(*phrases: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive alternation of phrases (any run of spaces between words)."""
    return re.compile(
        r"\b(?:" + "|".join(p.replace(" ", r"\s+") for p in phrases) + r")\b", re.I | re.A
    )


@attrs.frozen
class Signal:
    """One kind of key information: its ``name`` and the ``pattern`` that detects it.

    ``hints`` is a cheap pre-check: unless it is empty, the pattern only runs when one
    of these substrings occurs in the text (lower-cased first if ``fold``). Every match
    of the pattern contains a hint, so hints never change the answer -- they only make
    a miss fast (Python's regex engine tries a long alternation at every position).
    """

    name: str
    pattern: re.Pattern[str]
    hints: tuple[str, ...] = ()
    fold: bool = False

    def search(self, text: str, lower: str) -> bool:
        """Return whether the signal fires on ``text`` (``lower`` is ``text.lower()``)."""
        if self.hints:
            haystack = lower if self.fold else text
            if not any(h in haystack for h in self.hints):
                return False
        return self.pattern.search(text) is not None


_DIGITS: Final = tuple("0123456789")

_DECISIONS: Final = (
    "decided", "decide", "decision", "go with", "agreed", "agree on", "settled on", "chose", "chosen", "choose", "opted for",
    "approved", "confirmed", "final answer", "the plan is", "going forward",
    "from now on", "selected", "switch to", "instead of",
)
# Bare topic nouns ("budget", "limit", "rate limit") are left out: they name a subject
# more often than they state a rule, and a stated budget carries a number anyway.
_CONSTRAINTS: Final = (
    "must", "must not", "mustn't", "never", "always", "cannot", "can't", "shall not",
    "required", "requires", "requirement", "mandatory", "deadline", "due by", "due on",
    "at most", "at least", "no more than", "no later than",
    "no earlier than", "maximum", "minimum", "forbidden", "not allowed", "ensure",
)

def _hints(phrases: tuple[str, ...], common: frozenset[str]) -> tuple[str, ...]:
    """Each phrase's longest word that is not too common to be a useful pre-check,
    dropping any hint that contains another (finding "decide" finds "decided" too)."""
    words = dict.fromkeys(
        max((w for w in p.split() if w not in common), key=len) for p in phrases
    )
    return tuple(w for w in words if not any(h != w and h in w for h in words))


# Words that occur in most messages: as hints they would run the pattern every time.
_COMMON: Final = frozenset("with from the answer of on to is not no at".split())


#: The signals, in the order :meth:`HeuristicMarker.reasons` reports their names (a
#: name may have several patterns). Each carries its reason in the comment above it.
SIGNALS: Final[tuple[Signal, ...]] = (
    # Links are almost always something the agent must quote back exactly.
    Signal(
        "url",
        re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.[\w-]+\.\w+", re.I),
        hints=("://", "www."),
        fold=True,
    ),
    Signal("email", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), hints=("@",)),
    # Paths: Unix ones with two or more components, Windows ones, and file names with a
    # common extension (config.yaml, main.py).
    Signal("path", re.compile(r"(?:~|\.{1,2})?(?:/[\w.@-]+){2,}/?"), hints=("/",)),
    Signal("path", re.compile(r"\b[A-Za-z]:\\[\w .\\-]+"), hints=(":\\",)),
    # (Starts with the literal "." so the regex engine can skip to each dot.)
    Signal(
        "path",
        re.compile(
            r"\.(?<=[\w-]\.)(?:py|js|ts|tsx|json|ya?ml|toml|ini|cfg|conf|md|rst|txt|csv|tsv|sql"
            r"|sh|go|rs|java|kt|c|h|cc|cpp|hpp|rb|php|html|css|db|sqlite|log|lock|env"
            r"|xml|pdf|docx?|xlsx?|png|jpe?g|zip|tar|gz)\b",
            re.I,
        ),
        hints=(".",),
    ),
    # Code identifiers: snake_case, camelCase (below), ticket keys (ABC-123), and mixed
    # letter-digit tokens (v2, A100, gpt4o, INV0042, commit hashes, UUIDs).
    Signal("identifier", re.compile(r"\b[A-Za-z][a-z0-9]*_[A-Za-z0-9_]+\b"), hints=("_",)),
    # camelCase: a word starting lower-case with an upper-case letter inside (getUser,
    # iPhone; not MySQL). Possessive ++: no backtracking into the lower-case run.
    Signal("identifier", re.compile(r"\b[a-z]++[A-Z]")),
    Signal("identifier", re.compile(r"\b[A-Z]{2,}[0-9]*-\d+\b"), hints=("-",)),
    Signal(
        "identifier",
        re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z\d]{2,}\b"),
        hints=_DIGITS,
    ),
    # Numbers with two or more digits, decimals, amounts, percentages, times: a lone
    # small digit ("step 2") is too common to mean anything.
    Signal(
        "number",
        re.compile(
            r"\d[\d,]*\.\d+|\b\d{2,}\b|[$€£¥]\s?\d|\d\s?%|\b\d{1,2}:\d{2}\b"
            r"|\b\d+(?:st|nd|rd|th)\b"
        ),
        hints=_DIGITS,
    ),
    Signal("decision", _phrases(*_DECISIONS), hints=_hints(_DECISIONS, _COMMON), fold=True),
    Signal("constraint", _phrases(*_CONSTRAINTS), hints=_hints(_CONSTRAINTS, _COMMON), fold=True),
    # "Don't" alone is mostly chit-chat ("don't worry"); before an action it is a rule.
    Signal(
        "constraint",
        re.compile(
            r"\b(?:do\s+not|don't|dont)\s+(?:ever\s+)?(?:use|change|modify|touch|edit|delete"
            r"|remove|drop|push|commit|deploy|merge|share|send|include|add|call|run|exceed"
            r"|mention|contact|email|book|schedule|install|upgrade|store|log)\b",
            re.I | re.A,
        ),
        hints=("do",),
        fold=True,
    ),
    Signal(
        "preference",
        re.compile(
            r"\b(?:i|we)(?:'d|\s+would|\s+really|\s+do)?\s+(?:prefer|like|love|hate|want"
            r"|need|dislike|enjoy)\b"
            r"|\bi'm\s+(?:allergic|vegetarian|vegan|based|located|using)\b"
            r"|\bi\s+am\s+(?:allergic|vegetarian|vegan|based|located|using)\b"
            r"|\bmy\s+(?:name|favou?rite|preference|preferred|email|phone|address|birthday"
            r"|timezone|time\s+zone|username|account)\b"
            r"|\bcall\s+me\b|\bplease\s+(?:always|never|use|avoid|don't|do\s+not|keep|reply)\b",
            re.I | re.A,
        ),
        hints=(
            "prefer", "like", "love", "hate", "want", "need", "enjoy", "allergic", "vegetarian",
            "vegan", "based", "located", "using", "my", "call", "please",
        ),
        fold=True,
    ),
)

#: Every signal name, in reporting order.
SIGNAL_NAMES: Final = tuple(dict.fromkeys(s.name for s in SIGNALS))

#: Roles whose every message is key: system messages are the standing instructions.
ALWAYS_KEY_ROLES: Final = frozenset({"system", "developer"})


@attrs.frozen
class HeuristicMarker:
    """The default marker: key if the role is always key or any :data:`SIGNALS` matches.

    ``signals`` selects which signals count (all by default), so a deployment can turn
    off, say, ``number`` for number-heavy tool output. Pure and deterministic.
    """

    signals: frozenset[str] = frozenset(SIGNAL_NAMES)
    always_key_roles: frozenset[str] = ALWAYS_KEY_ROLES

    def __attrs_post_init__(self) -> None:
        unknown = sorted(self.signals - set(SIGNAL_NAMES))
        if unknown:
            raise ValueError(
                f"HeuristicMarker: unknown signals {unknown}; known: {list(SIGNAL_NAMES)}"
            )

    def reasons(self, text: str, role: str) -> tuple[str, ...]:
        """Name every reason the entry is key (``"role"`` first, then signals in order)."""
        found = ["role"] if role in self.always_key_roles else []
        # Typographic apostrophes ("don’t") count as plain ones.
        text = text.replace("\u2019", "'")
        lower = text.lower()
        for s in SIGNALS:
            if s.name in self.signals and s.name not in found and s.search(text, lower):
                found.append(s.name)
        return tuple(found)

    def __call__(self, text: str, role: str) -> bool:
        """Return whether the entry is key information (stops at the first reason)."""
        if role in self.always_key_roles:
            return True
        text = text.replace("\u2019", "'")
        lower = text.lower()
        return any(s.name in self.signals and s.search(text, lower) for s in SIGNALS)
