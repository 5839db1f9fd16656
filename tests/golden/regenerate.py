"""Regenerate the golden files after an intended change of the kernel, simulator or scenarios.

Run ``.venv/bin/python tests/golden/regenerate.py`` and review the diff before committing:
every changed byte is a changed decision.

* ``storm-s7.*`` -- a generated storm workload, the kernel's log for it, every policy's metrics;
* ``edges.mlfq.log.jsonl`` -- a scripted log through the kernel's edge cases: every
  refusal reason a shell can provoke, a parent failing with its sub-agents cancelled,
  idle reaping, a 429 with and without Retry-After, a boost.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from agentrm.adapters.cli import main
from agentrm.adapters.eventlog import EventLogWriter
from agentrm.adapters.simulator import kernel_reducer
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig, TaskClass
from agentrm.kernel.scheduler.events import (
    ClockAdvanced,
    Heartbeat,
    RateLimited,
    SchedulerEvent,
    StepFinished,
    Submit,
    TaskFailed,
    TaskFinished,
)

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "storm-s7.workload.jsonl"
LOG = HERE / "storm-s7.mlfq.log.jsonl"
METRICS = HERE / "storm-s7.metrics.json"
EDGES = HERE / "edges.mlfq.log.jsonl"
GENERATE = ["workload", "generate", "--scenario", "storm", "--seed", "7", "--horizon-s", "120", "--fault-rate", "0.5"]

EDGE_CONFIG = SchedulerConfig(
    lanes=3, level_allotments_ms=(1_000, 4_000), boost_period_ms=30_000,
    interactive=ClassConfig(0, 1, 5_000), batch=ClassConfig(1, 0, 5_000), background=ClassConfig(1, 0, 8_000),
    queue_cap=4, providers=(ProviderConfig("p", 60, 60_000), ProviderConfig("q", 2, 1_000)),
)
I, B, G = TaskClass.INTERACTIVE, TaskClass.BATCH, TaskClass.BACKGROUND
EDGE_EVENTS: tuple[SchedulerEvent, ...] = (
    Submit(0, "root", "a", G, "p", 100),
    Submit(0, "root", "a", G, "p", 100),            # duplicate: refused, nothing changes
    Submit(10, "", "a", B, "p", 100),               # empty id: invalid
    Submit(10, "x", "a", B, "nope", 100),           # unknown provider
    Submit(10, "y", "a", B, "p", 100, "ghost"),     # unknown parent
    Submit(20, "child", "a", B, "p", 100, "root"),
    Submit(20, "grandchild", "a", B, "p", 100, "child"),
    Heartbeat(30, "ghost"),                          # unknown task
    Heartbeat(30, "grandchild"),                     # waiting, not running (if no lane was free)
    StepFinished(500, "root", 150, 200),             # excess tokens charged
    RateLimited(600, "child", "p", None),            # default Retry-After
    Submit(700, "u1", "user", I, "p", 50),
    TaskFinished(900, "u1"),                         # not started yet (provider paused): refused
    Submit(1_000, "lim", "b", B, "q", 500),
    RateLimited(1_100, "lim", "q", 4_000),
    Heartbeat(1_200, "root"),
    TaskFailed(2_000, "root", "boom"),               # its sub-agents are cancelled
    TaskFinished(2_050, "root"),                     # terminal: refused
    Submit(2_060, "orphan", "a", B, "p", 10, "root"),  # parent already ended: refused
    Submit(2_100, "q1", "c", B, "p", 10),
    Submit(2_100, "q2", "c", B, "p", 10),
    Submit(2_100, "q3", "c", B, "p", 10),
    Submit(2_100, "q4", "c", B, "p", 10),
    Submit(2_100, "q5", "c", B, "p", 10),
    Submit(2_100, "q6", "c", B, "p", 10),            # may meet the queue cap
    ClockAdvanced(1_000),                            # clock went backwards
    ClockAdvanced(20_000),                           # idle reaping of whatever went silent
    ClockAdvanced(31_000),                           # past a boost instant
)


def regenerate_edges() -> None:
    """Fold the scripted edge cases through the kernel and write their log."""
    initial, reduce = kernel_reducer()
    state = initial(EDGE_CONFIG)
    with EDGES.open("w", encoding="utf-8", newline="\n") as out:
        writer = EventLogWriter(out, EDGE_CONFIG)
        for event in EDGE_EVENTS:
            state, effects = reduce(state, event)
            writer.write(event, effects)


def regenerate() -> None:
    """Write every golden file."""
    assert main([*GENERATE, "-o", str(WORKLOAD)]) == 0
    assert main(["simulate", str(WORKLOAD), "--policy", "mlfq", "--log", str(LOG), "--json"]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["simulate", str(WORKLOAD), "--policy", "all", "--json"]) == 0
    METRICS.write_text(buf.getvalue(), encoding="utf-8")
    regenerate_edges()


if __name__ == "__main__":
    regenerate()
