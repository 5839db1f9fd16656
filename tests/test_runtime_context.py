"""The runtime's agent context through the context kernel: real Runtime, real SQLite store, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest

from agentrm.adapters.context_driver import ContextError, ContextRefused
from agentrm.adapters.runtime import Runtime, TaskContext
from agentrm.adapters.store import Store
from agentrm.adapters.summarize import SummaryResult
from agentrm.kernel.context import ContextConfig, ContextRefusalReason, Entry, Summary, VisibleItem
from agentrm.kernel.context.state import AgentContext, Phase
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig
from agentrm.specs.context_invariants import check_context

CONFIG = SchedulerConfig(
    lanes=4,
    interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=10_000),
    batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=10_000),
    background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=10_000),
    providers=(ProviderConfig("default", 10**6, 10**9),),
)
# Small budgets so that a handful of 10-token entries compacts: hot holds 3, keeps 2.
CTX = ContextConfig(hot_budget_tokens=30, hot_target_tokens=20, warm_budget_tokens=40, window_tokens=100,
                    idle_ms_hibernate=0, recall_limit=2)


def E(seq: int, text: str, key: bool = False, task: str = "t0") -> Entry:
    """An entry as the runtime names it (``<task>:<seq>``), 10 tokens."""
    return Entry(f"{task}:{seq}", seq, "assistant", text, 10, key)


def note(i: int) -> str:
    """The text of the i-th example entry."""
    return "decision: ship on friday" if i == 2 else f"note {i}: the build uses port 80{i}"


async def write_six(ctx: TaskContext) -> tuple[VisibleItem, ...]:
    """Append six 10-token entries (the third marked key) and return the visible context."""
    for i in range(6):
        await ctx.append(note(i), tokens=10, key=i == 2)
    return await ctx.context()


SIX_CONTEXT = AgentContext(
    agent="a", next_seq=6,
    hot=(E(4, note(4)), E(5, note(5))),
    warm_keys=(E(2, note(2), key=True),),
    summaries=(Summary("a/s1", 0, 1, "assistant: note 0: the build uses port 800", 11),
               Summary("a/s3", 3, 3, "assistant: note 3: the build uses port 803", 11)),
    archived=((0, "t0:0"), (1, "t0:1"), (3, "t0:3")),
    next_request=4,
)
"""The context after :func:`write_six` under ``CTX`` with the extractive summarizer."""


def context_of(rm: Runtime, agent: str) -> AgentContext:
    """The resident context of ``agent`` in the runtime's context kernel."""
    slot = rm.context_state.agents[agent]
    assert slot.phase is Phase.RESIDENT and slot.context is not None
    return slot.context


def test_append_compacts_through_the_kernel_and_the_visible_context_is_its_function(tmp_path: Path) -> None:
    """Appends past the hot budget archive the oldest unmarked entries, summarize them and keep the key entry verbatim."""

    async def main() -> tuple[tuple[VisibleItem, ...], AgentContext, tuple[Entry, ...]]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX) as rm:
            visible = await (await rm.submit(write_six, agent="a"))
            assert check_context(rm.context_state) == ()
            return visible, context_of(rm, "a"), await rm.contexts.history("a", None, None)

    visible, ctx, history = asyncio.run(main())
    assert ctx == SIX_CONTEXT
    assert visible == (SIX_CONTEXT.summaries[0], E(2, note(2), key=True), SIX_CONTEXT.summaries[1],
                       E(4, note(4)), E(5, note(5)))
    # The store holds every entry verbatim, in order, whatever tier the kernel keeps it in.
    assert history == tuple(E(i, note(i), key=i == 2) for i in range(6))


def test_recall_by_query_brings_archived_entries_into_view(tmp_path: Path) -> None:
    """A query recall returns matching entries of the whole history and adds the archived ones to the visible context."""

    async def agent(ctx: TaskContext) -> tuple[tuple[Entry, ...], tuple[VisibleItem, ...]]:
        await write_six(ctx)
        found = await ctx.recall("port 801", limit=10)
        return found, await ctx.context()

    async def main() -> tuple[tuple[Entry, ...], tuple[VisibleItem, ...], AgentContext]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX) as rm:
            found, visible = await (await rm.submit(agent, agent="a"))
            return found, visible, context_of(rm, "a")

    found, visible, ctx = asyncio.run(main())
    # Every entry mentions "port"; BM25 ranks the one with "801" first, the rest by archive order.
    assert found == tuple(E(i, note(i)) for i in (0, 1, 3, 4, 5))
    # The kernel's recall_limit (2) of archived matches, best match first, joins the view.
    assert ctx == attrs.evolve(SIX_CONTEXT, recalled=(E(1, note(1)), E(0, note(0))), next_request=5)
    assert visible == (SIX_CONTEXT.summaries[0], E(0, note(0)), E(1, note(1)), E(2, note(2), key=True),
                       SIX_CONTEXT.summaries[1], E(4, note(4)), E(5, note(5)))


def test_query_recall_brings_the_best_archived_match_not_the_earliest(tmp_path: Path) -> None:
    """Entries written ahead but still hot never crowd out archived matches, and the kernel gets the best-ranked archived ones."""
    texts = ["one", "zeta delta", "two", "zeta zeta zeta", "three", "four", "zeta zeta", "five"]
    config = attrs.evolve(CTX, recall_limit=1)

    async def agent(ctx: TaskContext) -> None:
        for text in texts:
            await ctx.append(text, tokens=10, key=False)
        await ctx.recall("zeta")

    async def main() -> AgentContext:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=config) as rm:
            await (await rm.submit(agent, agent="a"))
            return context_of(rm, "a")

    ctx = asyncio.run(main())
    assert [e.seq for e in ctx.hot] == [6, 7]  # the strong "zeta zeta" match is hot, not archived
    assert [s for s, _ in ctx.archived] == [0, 1, 2, 3, 4, 5]
    assert ctx.recalled == (E(3, "zeta zeta zeta"),)


def test_hibernate_then_recall_restores_an_equal_context(tmp_path: Path) -> None:
    """An agent hibernated through the kernel comes back equal when it next reads its context."""

    async def main() -> tuple[AgentContext, Phase, tuple[VisibleItem, ...], tuple[VisibleItem, ...], AgentContext]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX) as rm:
            before_visible = await (await rm.submit(write_six, agent="a"))
            before = context_of(rm, "a")
            await rm.contexts.hibernate("a")
            phase = rm.context_state.agents["a"].phase
            stored = rm.context_state.agents["a"].context
            assert stored is None  # only the stub stays in the state

            async def reader(ctx: TaskContext) -> tuple[VisibleItem, ...]:
                return await ctx.context()

            after_visible = await (await rm.submit(reader, agent="a"))
            return before, phase, before_visible, after_visible, context_of(rm, "a")

    before, phase, before_visible, after_visible, after = asyncio.run(main())
    assert phase is Phase.HIBERNATED
    assert before == SIX_CONTEXT
    assert after == before
    assert after_visible == before_visible


def test_idle_agent_is_hibernated_by_the_kernel_tick(tmp_path: Path) -> None:
    """With idle_ms_hibernate set, a tick after the idle limit hibernates the agent; its next append recalls it."""
    config = ContextConfig(hot_budget_tokens=30, hot_target_tokens=20, warm_budget_tokens=40, window_tokens=100,
                           idle_ms_hibernate=1, recall_limit=2)

    async def main() -> tuple[Phase, AgentContext, tuple[str, ...]]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=config) as rm:
            await (await rm.submit(write_six, agent="a"))
            await asyncio.sleep(0.01)  # longer than the 1 ms idle limit
            await rm.contexts.tick()
            phase = rm.context_state.agents["a"].phase

            async def more(ctx: TaskContext) -> None:
                await ctx.append("note 6", tokens=1, key=False)

            await (await rm.submit(more, agent="a", task_id="t9"))
            with Store.open(tmp_path / "c.db", create=False) as reader:
                stored = reader.hibernated_agents()
            return phase, context_of(rm, "a"), stored

    phase, ctx, stored = asyncio.run(main())
    assert phase is Phase.HIBERNATED
    assert stored == ("a",)
    assert ctx == attrs.evolve(SIX_CONTEXT, next_seq=7, hot=(*SIX_CONTEXT.hot, Entry("t9:6", 6, "assistant",
                                                                                     "note 6", 1)))


def test_idle_timer_hibernates_without_any_call(tmp_path: Path) -> None:
    """The runtime arms a timer at the kernel's next idle deadline; when it fires, the tick hibernates the agent."""
    config = attrs.evolve(CTX, idle_ms_hibernate=5)

    async def main() -> tuple[Phase, tuple[str, ...]]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=config) as rm:
            await (await rm.submit(write_six, agent="a"))
            # Wait for the outcome, not for a fixed time: the bound only guards against a hang.
            async with asyncio.timeout(10):
                while rm.context_state.agents["a"].phase is not Phase.HIBERNATED:
                    await asyncio.sleep(0.002)
            with Store.open(tmp_path / "c.db", create=False) as reader:
                return rm.context_state.agents["a"].phase, reader.hibernated_agents()

    assert asyncio.run(main()) == (Phase.HIBERNATED, ("a",))


def test_memory_pressure_hibernates_the_least_recently_active_agent(tmp_path: Path) -> None:
    """With max_resident_agents=1, appending to a second agent hibernates the first; appending to it again swaps them."""
    config = attrs.evolve(CTX, max_resident_agents=1)

    async def one(ctx: TaskContext) -> None:
        await ctx.append(f"hello from {ctx.agent}", tokens=1, key=False)

    async def main() -> list[tuple[Phase, Phase | None]]:
        phases: list[tuple[Phase, Phase | None]] = []
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=config) as rm:
            for agent in ("a", "b", "a"):
                await (await rm.submit(one, agent=agent))
                state = rm.context_state.agents
                phases.append((state["a"].phase, state["b"].phase if "b" in state else None))
            assert [e.text for e in await rm.contexts.history("a", None, None)] == ["hello from a"] * 2
        return phases

    assert asyncio.run(main()) == [(Phase.RESIDENT, None), (Phase.HIBERNATED, Phase.RESIDENT),
                                   (Phase.RESIDENT, Phase.HIBERNATED)]


def test_restart_on_the_same_store_rebuilds_the_context(tmp_path: Path) -> None:
    """A second runtime on the same file sees the same context and continues its seqs."""

    async def first() -> AgentContext:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX) as rm:
            await (await rm.submit(write_six, agent="a"))
            return context_of(rm, "a")

    async def second() -> tuple[tuple[VisibleItem, ...], AgentContext, Entry]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX) as rm:
            visible = await rm.contexts.visible("a")
            ctx = context_of(rm, "a")

            async def more(ctx: TaskContext) -> Entry:
                return await ctx.append("again", tokens=1, key=False)

            return visible, ctx, await (await rm.submit(more, agent="a", task_id="x"))

    assert asyncio.run(first()) == SIX_CONTEXT
    visible, ctx, entry = asyncio.run(second())
    assert ctx == SIX_CONTEXT
    assert visible == (SIX_CONTEXT.summaries[0], E(2, note(2), key=True), SIX_CONTEXT.summaries[1],
                       E(4, note(4)), E(5, note(5)))
    assert entry == Entry("x:6", 6, "assistant", "again", 1, False)


@pytest.mark.parametrize("how", ["hibernated at exit", "no checkpoint"])
def test_restart_rebuilds_from_a_hibernated_context_or_from_the_archive_alone(tmp_path: Path, how: str) -> None:
    """A context hibernated at exit is recalled on first touch; with no checkpoint at all, replaying the archive through the kernel rebuilds the same context."""
    db = tmp_path / "c.db"

    async def first() -> None:
        async with Runtime(CONFIG, store=db, context_config=CTX) as rm:
            await (await rm.submit(write_six, agent="a"))
            if how == "hibernated at exit":
                await rm.contexts.hibernate("a")

    asyncio.run(first())
    if how == "no checkpoint":
        with Store.open(db, create=False) as store:
            assert store.delete_context("a")

    async def second() -> tuple[AgentContext, tuple[VisibleItem, ...]]:
        async with Runtime(CONFIG, store=db, context_config=CTX) as rm:
            visible = await rm.contexts.visible("a")
            assert check_context(rm.context_state) == ()
            return context_of(rm, "a"), visible

    ctx, visible = asyncio.run(second())
    assert ctx == SIX_CONTEXT
    assert visible == (SIX_CONTEXT.summaries[0], E(2, note(2), key=True), SIX_CONTEXT.summaries[1],
                       E(4, note(4)), E(5, note(5)))


class RecordingSummarizer:
    """A summarizer that names the seqs it was given (and can be told to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.fail = fail

    async def __call__(self, entries: Sequence[Entry]) -> SummaryResult:
        """Summarize as ``seqs a,b``, 3 tokens, cost 7; or raise."""
        self.calls.append(tuple(e.seq for e in entries))
        if self.fail:
            raise RuntimeError("model unavailable")
        return SummaryResult("seqs " + ",".join(str(e.seq) for e in entries), 7, 3)


@pytest.mark.parametrize("fail", [False, True])
def test_summarizer_is_pluggable_and_its_failure_keeps_every_entry(tmp_path: Path, fail: bool) -> None:
    """Runtime(summarizer=...) makes the summaries; a failing one leaves no summary and loses no entry."""
    summarizer = RecordingSummarizer(fail)

    async def main() -> tuple[AgentContext, tuple[Entry, ...]]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX, summarizer=summarizer) as rm:
            await (await rm.submit(write_six, agent="a"))
            return context_of(rm, "a"), await rm.contexts.history("a", None, None)

    ctx, history = asyncio.run(main())
    assert summarizer.calls == [(0, 1), (3,)]
    summaries = () if fail else (Summary("a/s1", 0, 1, "seqs 0,1", 3), Summary("a/s3", 3, 3, "seqs 3", 3))
    assert ctx == attrs.evolve(SIX_CONTEXT, summaries=summaries)
    assert len(history) == 6


def test_marker_decides_key_when_the_append_does_not(tmp_path: Path) -> None:
    """Without key=, the runtime's marker decides: a custom marker's verdict is what the entry records."""

    async def agent(ctx: TaskContext) -> tuple[Entry, Entry]:
        return await ctx.append("KEEP this", tokens=1), await ctx.append("drop this", tokens=1)

    async def main() -> tuple[Entry, Entry]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX,
                           marker=lambda text, role: text.startswith("KEEP")) as rm:
            return await (await rm.submit(agent, agent="a"))

    assert asyncio.run(main()) == (Entry("t0:0", 0, "assistant", "KEEP this", 1, True),
                                   Entry("t0:1", 1, "assistant", "drop this", 1, False))


def test_duplicate_entry_id_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Appending an id the agent already has raises ContextError naming it, and the store keeps one entry."""

    async def agent(ctx: TaskContext) -> str:
        await ctx.append("first", entry_id="e1", tokens=1)
        with pytest.raises(ContextError) as info:
            await ctx.append("second", entry_id="e1", tokens=1)
        return str(info.value)

    async def main() -> tuple[str, tuple[Entry, ...]]:
        async with Runtime(CONFIG, store=tmp_path / "c.db", context_config=CTX) as rm:
            message = await (await rm.submit(agent, agent="a"))
            return message, await rm.contexts.history("a", None, None)

    message, history = asyncio.run(main())
    assert message == "append to 'a': entry_id 'e1' is already seq 0"
    assert history == (Entry("e1", 0, "assistant", "first", 1, False),)


def test_hibernating_a_hibernated_or_unknown_agent_is_a_refusal() -> None:
    """The kernel's refusal reaches the caller as ContextRefused with the kernel's reason (in memory mode)."""

    async def main() -> list[ContextRefusalReason]:
        async with Runtime(CONFIG, context_config=CTX) as rm:
            await (await rm.submit(write_six, agent="a"))
            await rm.contexts.hibernate("a")
            reasons = []
            for agent in ("a", "nobody"):
                with pytest.raises(ContextRefused) as info:
                    await rm.contexts.hibernate(agent)
                reasons.append(info.value.refusal.reason)
            return reasons

    assert asyncio.run(main()) == [ContextRefusalReason.ALREADY_HIBERNATED, ContextRefusalReason.UNKNOWN_AGENT]


CHILD = textwrap.dedent('''
    import asyncio, sys
    from agentrm.adapters.runtime import Runtime
    from agentrm.kernel.context import ContextConfig
    from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig
    CONFIG = {config!r}
    CTX = {ctx!r}

    async def worker(ctx):
        for i in range(5):
            entry = await ctx.append(f"{{ctx.task_id}} wrote line {{i}}", tokens=7, key=i == 0)
            print("entry", entry.entry_id, flush=True)
            await asyncio.sleep(0.005)
        return ctx.task_id

    async def main():
        async with Runtime(CONFIG, store=sys.argv[1], context_config=CTX, context_checkpoint_every=7) as rm:
            handles = [await rm.submit(worker, agent="worker", lane_class="batch", task_id=f"job{{i}}")
                       for i in range(int(sys.argv[2]))]
            print("submitted", flush=True)
            for h in handles:
                await h

    asyncio.run(main())
''')


def test_kill_9_loses_no_context_entry_and_rebuilds_the_kernel_state(tmp_path: Path) -> None:
    """After SIGKILL mid-run, a new runtime rebuilds the context kernel from checkpoint plus archive: every returned entry is there.

    The child compacts (small budgets) and checkpoints every 7 appends, so recovery
    loads a checkpoint through a kernel recall and replays the archived entries after it.
    """
    db = tmp_path / "crash.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(config=CONFIG, ctx=CTX))
    child = subprocess.Popen([sys.executable, str(script), str(db), "30"], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    printed: list[str] = []
    for line in child.stdout:
        if line.startswith("entry "):
            printed.append(line.split()[1])
        if len(printed) >= 40:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with Store.open(db, create=False) as store:
        stored = store.archived("worker")
        checkpoint = store.load_context("worker", AgentContext)
    assert checkpoint is not None and 0 < checkpoint.next_seq <= len(stored)  # a mid-run checkpoint
    assert checkpoint.archived  # the child compacted before the crash

    go = asyncio.Event()

    async def worker(ctx: TaskContext) -> None:
        await go.wait()  # restored tasks start at once; let them write only after the rebuild is inspected
        await ctx.append(f"{ctx.task_id} after restart", tokens=7, key=False)

    async def resume() -> tuple[AgentContext, tuple[Entry, ...], AgentContext, int]:
        async with Runtime(CONFIG, store=db, context_config=CTX, agents={"worker": worker}) as rm:
            await rm.contexts.visible("worker")  # first touch: rebuild from checkpoint + archive
            rebuilt = context_of(rm, "worker")
            go.set()
            assert check_context(rm.context_state) == ()
            for t in rm.interrupted:
                await (await rm.resubmit(t, worker))
            for h in rm.restored.values():
                await h
            assert check_context(rm.context_state) == ()
            final = context_of(rm, "worker")
            return rebuilt, await rm.contexts.history("worker", None, None), final, len(rm.interrupted) + len(
                rm.restored)

    rebuilt, history, final, rerun = asyncio.run(resume())
    ids = [e.entry_id for e in history]
    assert set(printed) <= set(ids[: len(stored)])  # every append that returned before the kill survived
    assert [e.seq for e in history] == list(range(len(history)))  # gapless across the crash
    assert rebuilt.next_seq == len(stored)  # the kernel counts every stored entry
    assert len(history) == len(stored) + rerun  # each re-run task appended exactly one entry
    for ctx in (rebuilt, final):
        # Every seq is in exactly one tier: hot, warm (key) or the kernel's archive.
        tiers = sorted([e.seq for e in ctx.hot] + [e.seq for e in ctx.warm_keys] + [s for s, _ in ctx.archived])
        assert tiers == list(range(ctx.next_seq))
    assert final.next_seq == len(history)
