"""What a broken invariant looks like, and how a registry of predicates is run.

Each predicate in ``scheduler_invariants`` and ``context_invariants`` returns the
messages of what it found wrong (empty when the invariant holds); a registry pairs each
with its SPEC.md id. :func:`collect` turns a registry's findings into ``Violation``s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs


@attrs.frozen
class Violation:
    """One broken invariant: its id in SPEC.md (``"S3"``), its predicate's name, what is wrong."""

    invariant: str
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant} {self.name}: {self.message}"


def collect(registry: Iterable[tuple[str, Callable[..., Iterable[str]]]], *args: object) -> tuple[Violation, ...]:
    """Run every ``(id, predicate)`` of ``registry`` on ``args``, in registry order."""
    return tuple(Violation(inv, pred.__name__, m) for inv, pred in registry for m in pred(*args))
