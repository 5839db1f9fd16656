"""Regenerate the golden files after an intended change of the kernel, simulator or scenarios.

Run ``.venv/bin/python tests/golden/regenerate.py`` and review the diff before committing:
every changed byte is a changed decision.
"""

from __future__ import annotations

from pathlib import Path

from agentrm.adapters.cli import main

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "storm-s7.workload.jsonl"
LOG = HERE / "storm-s7.mlfq.log.jsonl"
METRICS = HERE / "storm-s7.metrics.json"
GENERATE = ["workload", "generate", "--scenario", "storm", "--seed", "7", "--horizon-s", "120", "--fault-rate", "0.5"]


def regenerate() -> None:
    """Write the golden workload, the kernel's event log for it, and every policy's metrics."""
    assert main([*GENERATE, "-o", str(WORKLOAD)]) == 0
    assert main(["simulate", str(WORKLOAD), "--policy", "mlfq", "--log", str(LOG), "--json"]) == 0
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["simulate", str(WORKLOAD), "--policy", "all", "--json"]) == 0
    METRICS.write_text(buf.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    regenerate()
