"""Task phases and their allowed moves: one table, one file (SPEC.md 1.1).

Every phase change in the scheduler goes through :func:`next_phase`, so the table
below is the whole lifecycle. Refusals (a late heartbeat from a reaped task, ...) are
decided before a move is attempted; a move that is not in the table is therefore a
bug in the kernel and raises.
"""

from __future__ import annotations

import enum
from typing import Final, Mapping


class Phase(enum.Enum):
    """Where a task is in its life."""

    __hash__ = object.__hash__  # identity, like equality: a C slot on the lifecycle-table lookup

    WAITING = "waiting"
    """In its (level, class, provider) queue."""
    RUNNING = "running"
    """Holding a lane."""
    FINISHED = "finished"
    """Completed successfully (terminal)."""
    FAILED = "failed"
    """Raised or was interrupted (terminal)."""
    REAPED = "reaped"
    """Made no progress for its idle limit, or ran past its run limit (terminal)."""
    CANCELLED = "cancelled"
    """An ancestor was reaped, failed or cancelled (terminal)."""

    @property
    def terminal(self) -> bool:
        """True for the phases a task never leaves."""
        return self in TERMINAL


TERMINAL: Final = frozenset({Phase.FINISHED, Phase.FAILED, Phase.REAPED, Phase.CANCELLED})
"""Phases that have no outgoing move."""


class Move(enum.Enum):
    """An input that changes a task's phase."""

    __hash__ = object.__hash__  # identity, like equality: a C slot on the lifecycle-table lookup

    DISPATCH = "dispatch"
    """Started on a free lane."""
    YIELD = "yield"
    """Gave its lane back at a step boundary (preempted, or its gate is closed)."""
    RATE_LIMITED = "rate_limited"
    """Its step got a 429; it waits again."""
    FINISH = "finish"
    """Reported success."""
    FAIL = "fail"
    """Reported failure."""
    REAP = "reap"
    """Reaped as a zombie (idle or over its run limit), or, waiting, selected for dispatch past its run limit."""
    CANCEL = "cancel"
    """An ancestor ended badly."""


W, R = Phase.WAITING, Phase.RUNNING

ALLOWED: Final[Mapping[tuple[Phase, Move], Phase]] = {
    (W, Move.DISPATCH): R,
    (R, Move.YIELD): W,
    (R, Move.RATE_LIMITED): W,
    (R, Move.FINISH): Phase.FINISHED,
    (R, Move.FAIL): Phase.FAILED,
    (W, Move.FAIL): Phase.FAILED,
    (R, Move.REAP): Phase.REAPED,
    (W, Move.REAP): Phase.REAPED,
    (R, Move.CANCEL): Phase.CANCELLED,
    (W, Move.CANCEL): Phase.CANCELLED,
}
"""The allowed moves of SPEC.md 1.1: (phase, move) -> new phase. Anything else is refused."""


class IllegalMove(AssertionError):
    """The kernel tried a move the lifecycle table forbids (a kernel bug, never user input)."""


def allowed(phase: Phase, move: Move) -> bool:
    """Whether ``move`` is allowed from ``phase``."""
    return (phase, move) in ALLOWED


def next_phase(phase: Phase, move: Move) -> Phase:
    """The phase after ``move`` from ``phase``; raises :class:`IllegalMove` if forbidden."""
    try:
        return ALLOWED[(phase, move)]
    except KeyError:
        raise IllegalMove(f"move {move.value!r} is not allowed from phase {phase.value!r}") from None
