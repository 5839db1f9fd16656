"""Context-lifecycle configuration, validated once at construction.

Every quantity is an integer with its unit in its name. A bad value raises
:class:`~agentrm.kernel.scheduler.config.ConfigError` naming the field, so a
misconfiguration fails at start-up rather than as a strange context later.
"""

from __future__ import annotations

import attrs

from ..scheduler.config import ConfigError


def _check(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{field}: {message}")


@attrs.frozen
class ContextConfig:
    """The whole context policy (one instance for every agent).

    * ``hot_budget_tokens`` -- the hot tier (recent entries, verbatim) may hold this
      many tokens once no compaction is in flight; exceeding it starts a compaction.
    * ``hot_target_tokens`` -- a compaction moves the oldest hot entries out until the
      hot tier holds at most this many (<= the budget). The gap is hysteresis: one
      compaction, and one summary, per ``budget - target`` tokens appended instead of
      one per entry.
    * ``warm_budget_tokens`` -- key entries plus summaries. Summaries beyond it are
      dropped oldest first (the entries they stand for stay in the archive); key
      entries are never dropped: if they alone exceed it, the agent is in overflow.
    * ``window_tokens`` -- the most the visible context may hold (the model's window).
    * ``idle_ms_hibernate`` -- an agent with no activity for this long is hibernated by
      the next tick (0 = never by idleness).
    * ``max_resident_agents`` -- memory pressure: above this many resident agents a tick
      hibernates the least recently active ones (0 = no limit).
    * ``recall_limit`` -- the most archived entries one query recall brings back.
    """

    hot_budget_tokens: int = 8_000
    hot_target_tokens: int = 4_000
    warm_budget_tokens: int = 4_000
    window_tokens: int = 16_000
    idle_ms_hibernate: int = 600_000
    max_resident_agents: int = 0
    recall_limit: int = 8

    def __attrs_post_init__(self) -> None:
        validate(self)


def validate(config: ContextConfig) -> None:
    """Raise :class:`ConfigError` naming the first invalid field of ``config``."""
    _check(config.hot_budget_tokens >= 1, "hot_budget_tokens", f"must be >= 1, got {config.hot_budget_tokens}")
    _check(0 <= config.hot_target_tokens <= config.hot_budget_tokens, "hot_target_tokens",
           f"must be in [0, hot_budget_tokens={config.hot_budget_tokens}], got {config.hot_target_tokens}")
    _check(config.warm_budget_tokens >= 0, "warm_budget_tokens", f"must be >= 0, got {config.warm_budget_tokens}")
    _check(config.window_tokens >= 1, "window_tokens", f"must be >= 1, got {config.window_tokens}")
    _check(config.idle_ms_hibernate >= 0, "idle_ms_hibernate",
           f"must be >= 0 (0 = never), got {config.idle_ms_hibernate}")
    _check(config.max_resident_agents >= 0, "max_resident_agents",
           f"must be >= 0 (0 = no limit), got {config.max_resident_agents}")
    _check(config.recall_limit >= 1, "recall_limit", f"must be >= 1, got {config.recall_limit}")
