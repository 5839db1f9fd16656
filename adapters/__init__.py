"""The imperative shell around the agentrm kernel: runtime, store, simulator, CLI.

Import it as ``agentrm.adapters``.
"""

if __name__ != "agentrm.adapters":  # pragma: no cover - guard against a second copy
    raise ImportError(
        f"agentrm's adapters were imported as {__name__!r}; import them as 'agentrm.adapters'"
    )
