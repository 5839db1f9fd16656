"""Context-lifecycle value types shared by the kernel, the store and the adapters."""

from __future__ import annotations

import attrs


@attrs.frozen
class Entry:
    """One message or observation in an agent's context.

    ``seq`` is the entry's position in the agent's history (0, 1, 2, ... gapless, in
    append order); ``entry_id`` is the caller's id, unique per agent; ``tokens`` is its
    cost in the context window; ``key`` marks key information, which is never replaced
    by a summary.
    """

    entry_id: str
    seq: int
    role: str
    text: str
    tokens: int
    key: bool = False


@attrs.frozen
class Summary:
    """A summary standing for the archived entries with ``first_seq <= seq <= last_seq``."""

    summary_id: str
    first_seq: int
    last_seq: int
    text: str
    tokens: int
