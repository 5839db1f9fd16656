"""Scheduler configuration, validated once at construction.

Every quantity is an integer with its unit in its name. A bad value raises
:class:`ConfigError` naming the field, so a misconfiguration fails at start-up rather
than as a strange schedule later.
"""

from __future__ import annotations

import enum

import attrs


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


class TaskClass(enum.Enum):
    """The lane class of a task; each class has an entry level and may reserve lanes."""

    INTERACTIVE = "interactive"
    BATCH = "batch"
    BACKGROUND = "background"

    # Members are singletons compared by identity, so hashing by identity is consistent
    # with equality, and it is a C slot instead of Enum's Python-level hash of the name:
    # every queue-key lookup hashes a class. Nothing is ordered by this hash.
    __hash__ = object.__hash__


def _check(cond: bool, field: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{field}: {message}")


@attrs.frozen
class ClassConfig:
    """Per-class policy.

    ``entry_level`` is where a new task of the class enters the MLFQ;
    ``reserved_lanes`` are lanes only this class may use; ``idle_ms_reap`` is how long
    a running task may go without a progress signal before it is reaped;
    ``run_ms_limit`` is the longest a task may run in total (0 = no limit).
    """

    entry_level: int
    reserved_lanes: int
    idle_ms_reap: int
    run_ms_limit: int = 0


@attrs.frozen
class ProviderConfig:
    """One LLM provider behind the shared gate.

    The configured ``requests_per_min`` / ``tokens_per_min`` are the ceiling; the
    effective limit is ``limit_permille`` thousandths of it, adjusted by AIMD:
    a 429 multiplies it by ``decrease_permille``/1000 (TCP's halving by default) and
    pauses the provider until Retry-After (or ``default_retry_after_ms``);
    every ``success_streak`` consecutive successful steps add ``increase_permille``.
    The effective limit never leaves [``floor_permille``, 1000].
    """

    name: str
    requests_per_min: int
    tokens_per_min: int
    floor_permille: int = 100
    decrease_permille: int = 500
    increase_permille: int = 50
    success_streak: int = 10
    default_retry_after_ms: int = 1_000


@attrs.frozen
class SchedulerConfig:
    """The whole scheduler policy.

    ``level_allotments_ms[i]`` is the service time a task may use at level ``i``
    (counted across yields) before it drops a level; the last level keeps its tasks.
    ``boost_period_ms`` returns every waiting task to its class's entry level.
    ``admission_rate_per_window`` submissions per agent per ``admission_window_ms``
    enter at their entry level; a burst beyond it enters one level lower.
    ``queue_cap`` bounds the waiting tasks; beyond it submissions are refused.
    """

    lanes: int = 8
    level_allotments_ms: tuple[int, ...] = (2_000, 8_000, 32_000)
    boost_period_ms: int = 60_000
    interactive: ClassConfig = ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=30_000, run_ms_limit=0)
    batch: ClassConfig = ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=60_000, run_ms_limit=0)
    background: ClassConfig = ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=120_000, run_ms_limit=0)
    admission_window_ms: int = 10_000
    admission_rate_per_window: int = 20
    queue_cap: int = 100_000
    providers: tuple[ProviderConfig, ...] = (ProviderConfig("default", 600, 600_000),)

    def __attrs_post_init__(self) -> None:
        validate(self)

    @property
    def levels(self) -> int:
        """Number of MLFQ levels."""
        return len(self.level_allotments_ms)

    def class_config(self, task_class: TaskClass) -> ClassConfig:
        """The policy of one task class."""
        if task_class is TaskClass.INTERACTIVE:
            return self.interactive
        if task_class is TaskClass.BATCH:
            return self.batch
        return self.background

    def provider(self, name: str) -> ProviderConfig | None:
        """The provider named ``name``, or None."""
        for p in self.providers:
            if p.name == name:
                return p
        return None


def validate(config: SchedulerConfig) -> None:
    """Raise :class:`ConfigError` naming the first invalid field of ``config``."""
    _check(config.lanes >= 1, "lanes", f"must be >= 1, got {config.lanes}")
    _check(len(config.level_allotments_ms) >= 1, "level_allotments_ms", "needs at least one level")
    for i, a in enumerate(config.level_allotments_ms):
        _check(a >= 1, f"level_allotments_ms[{i}]", f"must be >= 1 ms, got {a}")
    _check(config.boost_period_ms >= 1, "boost_period_ms", f"must be >= 1, got {config.boost_period_ms}")
    reserved = 0
    for cls in TaskClass:
        cc = config.class_config(cls)
        name = cls.value
        _check(0 <= cc.entry_level < config.levels, f"{name}.entry_level",
               f"must be in [0, {config.levels - 1}], got {cc.entry_level}")
        _check(cc.reserved_lanes >= 0, f"{name}.reserved_lanes", f"must be >= 0, got {cc.reserved_lanes}")
        _check(cc.idle_ms_reap >= 1, f"{name}.idle_ms_reap", f"must be >= 1, got {cc.idle_ms_reap}")
        _check(cc.run_ms_limit >= 0, f"{name}.run_ms_limit", f"must be >= 0 (0 = none), got {cc.run_ms_limit}")
        reserved += cc.reserved_lanes
    _check(reserved <= config.lanes, "reserved_lanes",
           f"reservations ({reserved}) exceed lanes ({config.lanes})")
    for cls in TaskClass:  # a class without a reservation runs only on shared lanes
        _check(reserved < config.lanes or config.class_config(cls).reserved_lanes > 0, "reserved_lanes",
               f"reservations take all {config.lanes} lanes, leaving none for {cls.value}, "
               "which reserves none: its tasks could never start")
    foreground_reserved = config.interactive.reserved_lanes + config.batch.reserved_lanes
    _check(foreground_reserved >= 1, "interactive.reserved_lanes",
           "interactive and batch together must reserve at least one lane, "
           "or background work could take every lane")
    _check(foreground_reserved < config.lanes, "lanes",
           f"interactive and batch reserve {foreground_reserved} of {config.lanes} lanes, "
           "leaving none that background work may use")
    _check(config.interactive.entry_level <= config.batch.entry_level <= config.background.entry_level,
           "entry_level", "entry levels must be ordered interactive <= batch <= background")
    _check(config.admission_window_ms >= 1, "admission_window_ms", f"must be >= 1, got {config.admission_window_ms}")
    _check(config.admission_rate_per_window >= 1, "admission_rate_per_window",
           f"must be >= 1, got {config.admission_rate_per_window}")
    _check(config.queue_cap >= 1, "queue_cap", f"must be >= 1, got {config.queue_cap}")
    _check(len(config.providers) >= 1, "providers", "needs at least one provider")
    seen: set[str] = set()
    for i, p in enumerate(config.providers):
        where = f"providers[{i}]"
        _check(bool(p.name), f"{where}.name", "must be non-empty")
        _check(p.name not in seen, f"{where}.name", f"duplicate provider name {p.name!r}")
        seen.add(p.name)
        _check(p.requests_per_min >= 1, f"{where}.requests_per_min", f"must be >= 1, got {p.requests_per_min}")
        _check(p.tokens_per_min >= 1, f"{where}.tokens_per_min", f"must be >= 1, got {p.tokens_per_min}")
        _check(1 <= p.floor_permille <= 1000, f"{where}.floor_permille", f"must be in [1, 1000], got {p.floor_permille}")
        _check(1 <= p.decrease_permille < 1000, f"{where}.decrease_permille",
               f"must be in [1, 999], got {p.decrease_permille}")
        _check(0 <= p.increase_permille <= 1000, f"{where}.increase_permille",
               f"must be in [0, 1000], got {p.increase_permille}")
        _check(p.success_streak >= 1, f"{where}.success_streak", f"must be >= 1, got {p.success_streak}")
        _check(p.default_retry_after_ms >= 0, f"{where}.default_retry_after_ms",
               f"must be >= 0, got {p.default_retry_after_ms}")
