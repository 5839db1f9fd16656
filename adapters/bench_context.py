"""Benchmark of the context kernel: cost per event, per tick and per visible-context read.

Run: ``python -m agentrm.adapters.bench_context`` (prints one line per shape). The
workload is deterministic: every agent appends 50-token entries (every 17th a key
entry), and every archive and summary request is answered at once, as a shell with
instant storage would. Times are wall-clock on this machine; compare shapes, not
absolute numbers, across machines.
"""

from __future__ import annotations

import time

from agentrm.kernel.context import (
    Append,
    ArchiveEntries,
    Archived,
    ContextConfig,
    ContextState,
    RequestSummary,
    Summarized,
    Summary,
    context_step,
    context_tick,
    visible_context,
)

CONFIG = ContextConfig(hot_budget_tokens=2_000, hot_target_tokens=1_000, warm_budget_tokens=1_000,
                       window_tokens=4_000, idle_ms_hibernate=600_000)
"""About 40 hot entries per agent, a compaction (and a summary) every ~20 appends."""


def run(agents: int, entries_per_agent: int) -> str:
    """Drive ``agents`` agents through ``entries_per_agent`` appends each; one result line."""
    state = ContextState.initial(CONFIG)
    events = 0
    start = time.perf_counter()
    for i in range(entries_per_agent):
        for a in range(agents):
            step = context_step(state, Append(i, f"agent{a}", f"e{i}", "user", "x" * 20, 50, i % 17 == 0))
            state, events = step.state, events + 1
            for eff in step.effects:
                if isinstance(eff, ArchiveEntries):
                    state, events = context_step(state, Archived(i, eff.agent, eff.request)).state, events + 1
                elif isinstance(eff, RequestSummary):
                    summary = Summary(f"s{eff.request}", eff.first_seq, eff.last_seq, "gist", 20)
                    state = context_step(state, Summarized(i, eff.agent, eff.request, summary)).state
                    events += 1
    per_event_us = (time.perf_counter() - start) / events * 1e6
    start = time.perf_counter()
    context_tick(state, entries_per_agent)
    tick_ms = (time.perf_counter() - start) * 1e3
    reads = 200  # over the first agents, so one agent's read is not a single noisy sample
    start = time.perf_counter()
    for r in range(reads):
        visible_context(state, f"agent{r % min(agents, 100)}")
    visible_us = (time.perf_counter() - start) / reads * 1e6
    return (f"agents={agents:>6} entries/agent={entries_per_agent:>6}: {events} events, "
            f"{per_event_us:.1f} us/event; tick {tick_ms:.1f} ms; visible_context {visible_us:.0f} us")


def main() -> None:
    """Print the benchmark lines: one long history, many agents, very many agents."""
    for agents, per_agent in ((1, 20_000), (1_000, 20), (10_000, 5)):
        print(run(agents, per_agent), flush=True)


if __name__ == "__main__":
    main()
