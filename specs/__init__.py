"""The executable specification of agentrm: invariants, reference model, contracts.

Import it as ``agentrm.specs``; see ``SPEC.md`` beside this file for the numbered list.
"""

if __name__ != "agentrm.specs":  # pragma: no cover - guard against a second copy
    raise ImportError(
        f"agentrm's specs were imported as {__name__!r}; import them as 'agentrm.specs'"
    )

from .scheduler_invariants import (  # noqa: E402 - after the guard on purpose
    Violation,
    check_scheduler,
    check_scheduler_transition,
)

__all__ = ["Violation", "check_scheduler", "check_scheduler_transition"]

# --- context ---------------------------------------------------------------------------
from .context_invariants import (  # noqa: E402 - after the guard on purpose
    check_context,
    check_context_transition,
    recall_restores,
)

__all__ += ["check_context", "check_context_transition", "recall_restores"]
