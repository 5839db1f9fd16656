"""Inputs to the scheduler kernel.

Every event carries ``at_ms``, the shell's clock reading when it happened (integer
milliseconds, never decreasing). The reducer :func:`agentrm.kernel.step` accepts any
:data:`SchedulerEvent`; a log of them replays as a fold.

Names follow the convention: commands are imperative (``Submit``), facts are past
tense (``StepFinished``, ``RateLimited``).
"""

from __future__ import annotations

import attrs

from .config import TaskClass


@attrs.frozen
class Submit:
    """A new task (one agent run, or a sub-agent run when ``parent`` is set).

    ``provider`` names the LLM provider its steps call; ``step_tokens`` is the token
    demand of its first step (the gate admits the step only when both the request and
    the token bucket can pay for it).
    """

    at_ms: int
    task_id: str
    agent: str
    task_class: TaskClass
    provider: str = "default"
    step_tokens: int = 0
    parent: str | None = None


@attrs.frozen
class Heartbeat:
    """A running task is alive and making progress (resets its idle clock)."""

    at_ms: int
    task_id: str


@attrs.frozen
class StepFinished:
    """A running task finished one step and stands at a step boundary.

    ``tokens_used`` is what the step really consumed; ``next_step_tokens`` is the
    demand of the step it wants to take next. The kernel answers with nothing (carry
    on: the next step is admitted by the gate) or :class:`~.effects.YieldTask`.
    """

    at_ms: int
    task_id: str
    tokens_used: int = 0
    next_step_tokens: int = 0


@attrs.frozen
class TaskFinished:
    """A task completed successfully; its lane is free."""

    at_ms: int
    task_id: str


@attrs.frozen
class TaskFailed:
    """A task raised or was interrupted; its lane is free. ``error`` is for humans."""

    at_ms: int
    task_id: str
    error: str = ""


@attrs.frozen
class RateLimited:
    """The provider answered 429 to ``task_id``'s step.

    ``retry_after_ms`` is the provider's Retry-After, when it sent one. The step did
    not happen: the task goes back to its queue (keeping its level) and the provider
    is paused for everybody.
    """

    at_ms: int
    task_id: str
    provider: str
    retry_after_ms: int | None = None


@attrs.frozen
class ClockAdvanced:
    """Time passed with nothing else happening (the shell's wake-up)."""

    at_ms: int


SchedulerEvent = Submit | Heartbeat | StepFinished | TaskFinished | TaskFailed | RateLimited | ClockAdvanced
"""Any input the scheduler reducer accepts."""
