"""Benchmark of ``ctx.append`` in the asyncio runtime: the context kernel with its store.

Run: ``python -m agentrm.adapters.bench_runtime_context`` (one line per shape). Each
shape runs ``agents`` agent tasks that append ``per_agent`` 50-token entries each
(every 17th marked key) through a real :class:`~.runtime.Runtime`, in memory mode (a
temporary store on the loop's thread) and in durable mode (the store file on the
writer thread). The cost covers the write-ahead archive insert, the kernel step, and
the compactions and extractive summaries the kernel asks for. Times are wall-clock on
this machine; compare shapes, not absolute numbers, across machines.
"""

from __future__ import annotations

import asyncio
import pathlib
import tempfile
import time

from agentrm.kernel.context import ContextConfig
from agentrm.kernel.scheduler.config import ProviderConfig, SchedulerConfig

from .runtime import Runtime, TaskContext

SCHEDULER = SchedulerConfig(lanes=64, providers=(ProviderConfig("default", 10**9, 10**12),))
"""Enough lanes and provider budget that scheduling never waits."""
CONTEXT = ContextConfig(hot_budget_tokens=2_000, hot_target_tokens=1_000, warm_budget_tokens=1_000,
                        window_tokens=4_000)
"""About 40 hot entries per agent, a compaction (and a summary) every ~20 appends."""


async def _run(agents: int, per_agent: int, durable: bool) -> float:
    async def writer(ctx: TaskContext) -> None:
        for i in range(per_agent):
            await ctx.append(f"step {i} of {ctx.agent}: checked the logs and moved on", tokens=50,
                             key=i % 17 == 0)

    with tempfile.TemporaryDirectory(prefix="agentrm-bench-") as tmp:
        store = pathlib.Path(tmp) / "bench.db" if durable else None
        async with Runtime(SCHEDULER, store=store, context_config=CONTEXT) as rm:
            start = time.perf_counter()
            handles = [await rm.submit(writer, agent=f"agent{a}", lane_class="batch", wait_durable=False)
                       for a in range(agents)]
            for h in handles:
                await h
            return time.perf_counter() - start


def run(agents: int, per_agent: int, durable: bool) -> str:
    """One shape; its result line (microseconds per append)."""
    seconds = asyncio.run(_run(agents, per_agent, durable))
    mode = "durable" if durable else "memory"
    return (f"{mode:7} {agents:>5} agents x {per_agent:>4} appends: "
            f"{seconds * 1e6 / (agents * per_agent):8.0f} us/append")


def main() -> None:
    """Print the benchmark lines: one long history, many agents, each in both modes."""
    for durable in (False, True):
        for agents, per_agent in ((1, 2_000), (10, 200), (1_000, 5)):
            print(run(agents, per_agent, durable), flush=True)


if __name__ == "__main__":
    main()
