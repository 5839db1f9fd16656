"""The agentrm policy kernel: immutable state and pure, deterministic transitions.

Nothing here performs I/O, reads a clock, or draws randomness: time and ids are
inputs, effects are outputs. Import it as ``agentrm.kernel``.
"""

if __name__ != "agentrm.kernel":  # pragma: no cover - guard against a second copy
    raise ImportError(
        f"agentrm's kernel was imported as {__name__!r}; import it as 'agentrm.kernel' "
        "(a second import path would create a second, incompatible copy of every class)"
    )
