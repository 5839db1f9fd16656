"""The one transition shape shared by every part of the kernel."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

S = TypeVar("S")
E = TypeVar("E")


@attrs.frozen(slots=False)  # dict-backed: cheaper to construct on the hot path
class Step(Generic[S, E]):
    """The result of a transition: the new state and the effects for the shell, in order."""

    state: S
    effects: tuple[E, ...] = ()
