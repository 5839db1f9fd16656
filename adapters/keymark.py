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

__all__ = ["SIGNALS", "HeuristicMarker", "Marker"]


class Marker(Protocol):
    """Anything that marks key information: ``marker(text, role) -> bool``."""

    def __call__(self, text: str, role: str) -> bool:
        """Return whether the entry with this text and role is key information."""
        ...


def _words(*phrases: str) -> str:
    """An alternation of phrases matched as whole words, case-insensitively."""
    return r"\b(?:" + "|".join(p.replace(" ", r"\s+") for p in phrases) + r")\b"


#: The signals, in the order :meth:`HeuristicMarker.reasons` reports them: a name and
#: the pattern that detects it. Each pattern carries its reason in the comment above it.
SIGNALS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    # Links are almost always something the agent must quote back exactly.
    ("url", re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.[\w-]+\.\w+", re.I)),
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    # Unix or Windows paths with at least two components, or a file name with a
    # common extension (config.yaml, main.py).
    (
        "path",
        re.compile(
            r"(?:~|\.{1,2})?(?:/[\w.@-]+){2,}/?"
            r"|\b[A-Za-z]:\\[\w .\\-]+"
            r"|\b[\w-]+\.(?:py|js|ts|tsx|json|ya?ml|toml|ini|cfg|conf|md|rst|txt|csv|tsv|sql"
            r"|sh|go|rs|java|kt|c|h|cc|cpp|hpp|rb|php|html|css|db|sqlite|log|lock|env"
            r"|xml|pdf|docx?|xlsx?|png|jpe?g|zip|tar|gz)\b"
        ),
    ),
    # Code identifiers: snake_case, camelCase, SCREAMING_CASE, ticket keys (ABC-123),
    # and mixed letter-digit tokens (v2, A100, gpt4o, INV0042, commit hashes, UUIDs).
    (
        "identifier",
        re.compile(
            r"\b[A-Za-z][a-z0-9]*_[A-Za-z0-9_]+\b"
            r"|\b[a-z]+[A-Z][A-Za-z0-9]*\b"
            r"|\b[A-Z]{2,}[0-9]*-\d+\b"
            r"|\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z\d]{2,}\b"
        ),
    ),
    # Numbers with two or more digits, decimals, amounts, percentages, times: a lone
    # small digit ("step 2") is too common to mean anything.
    (
        "number",
        re.compile(r"\d[\d,]*\.\d+|\b\d{2,}\b|[$€£¥]\s?\d|\d\s?%|\b\d{1,2}:\d{2}\b|\b\d+(?:st|nd|rd|th)\b"),
    ),
    (
        "decision",
        re.compile(
            _words(
                "decided", "decide", "decision", "we will go with", "we'll go with",
                "let's go with", "go with", "agreed", "agree on", "settled on", "chose",
                "chosen", "choose", "opted for", "approved", "confirmed", "final answer",
                "the plan is", "going forward", "from now on", "selected", "switch to",
                "instead of",
            ),
            re.I,
        ),
    ),
    (
        "constraint",
        re.compile(
            _words(
                "must", "must not", "mustn't", "never", "always", "cannot", "can't",
                "shall not", "required", "requires", "requirement",
                "mandatory", "deadline", "due by", "due on", "budget", "limit", "at most",
                "at least", "no more than", "no later than", "no earlier than", "maximum",
                "minimum", "forbidden", "not allowed", "only if", "make sure", "ensure",
            ),
            re.I,
        ),
    ),
    # "Don't" alone is mostly chit-chat ("don't worry"); followed by an action it is a rule.
    (
        "constraint",
        re.compile(
            r"\b(?:do\s+not|don't|dont)\s+(?:ever\s+)?(?:use|change|modify|touch|edit|delete"
            r"|remove|drop|push|commit|deploy|merge|share|send|include|add|call|run|exceed"
            r"|mention|contact|email|book|schedule|install|upgrade|store|log)\b",
            re.I,
        ),
    ),
    (
        "preference",
        re.compile(
            r"\b(?:i|we)(?:'d|\s+would|\s+really|\s+do)?\s+(?:prefer|like|love|hate|want"
            r"|need|dislike|enjoy)\b"
            r"|\bi'm\s+(?:allergic|vegetarian|vegan|based|located|using)\b"
            r"|\bi\s+am\s+(?:allergic|vegetarian|vegan|based|located|using)\b"
            r"|\bmy\s+(?:name|favou?rite|preference|preferred|email|phone|address|birthday"
            r"|timezone|time\s+zone|username|account)\b"
            r"|\bcall\s+me\b|\bplease\s+(?:always|never|use|avoid|don't|do\s+not|keep|reply)\b",
            re.I,
        ),
    ),
)

#: Roles whose every message is key: system messages are the standing instructions.
ALWAYS_KEY_ROLES: Final = frozenset({"system", "developer"})


@attrs.frozen
class HeuristicMarker:
    """The default marker: key if the role is always key or any :data:`SIGNALS` matches.

    ``signals`` selects which signals count (all by default), so a deployment can turn
    off, say, ``number`` for number-heavy tool output. Pure and deterministic.
    """

    signals: frozenset[str] = frozenset(name for name, _ in SIGNALS)
    always_key_roles: frozenset[str] = ALWAYS_KEY_ROLES

    def __attrs_post_init__(self) -> None:
        unknown = sorted(self.signals - {name for name, _ in SIGNALS})
        if unknown:
            raise ValueError(
                f"HeuristicMarker: unknown signals {unknown}; known: {[n for n, _ in SIGNALS]}"
            )

    def reasons(self, text: str, role: str) -> tuple[str, ...]:
        """Name every reason the entry is key (``"role"`` first, then signals in order)."""
        found = ["role"] if role in self.always_key_roles else []
        found += [n for n, pattern in SIGNALS if n in self.signals and pattern.search(text)]
        return tuple(found)

    def __call__(self, text: str, role: str) -> bool:
        """Return whether the entry is key information."""
        return bool(self.reasons(text, role))
