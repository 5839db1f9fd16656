"""The asyncio runtime running real coroutines under the kernel (no mocks, no fake clock).

Assertions are on counts and on facts the kernel reported (its journal of steps),
with generous bounds wherever wall time is unavoidable.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrm.adapters.runtime import (
    Runtime,
    TaskContext,
    TaskFailedError,
    TaskHandle,
    TaskInterrupted,
    TaskReaped,
    TaskRefused,
)
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig
from agentrm.kernel.scheduler.effects import (
    CancelReason,
    CancelTask,
    RefusalReason,
    SchedulerEffect,
    StartTask,
)
from agentrm.adapters.llm import ChatClient
from agentrm.kernel.scheduler.events import RateLimited, SchedulerEvent, StepFinished, Submit
from agentrm.kernel.scheduler.lifecycle import Phase

sys.path.insert(0, str(Path(__file__).parent))
from fake_llm_server import FakeLLMServer  # noqa: E402

Log = list[tuple[int, SchedulerEvent, tuple[SchedulerEffect, ...]]]


def phases(rm: Runtime) -> dict[str, Phase]:
    """Every task's phase in the kernel, by id."""
    return {tid: rec.phase for tid, rec in rm.state.tasks.items()}


def config(**overrides: Any) -> SchedulerConfig:
    """A small config for tests: 4 lanes, short idle limits (ms) so reaping is quick."""
    base: dict[str, Any] = dict(
        lanes=4,
        interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=5_000),
        batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=5_000),
        background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=5_000),
    )
    base.update(overrides)
    return SchedulerConfig(**base)


async def quick(ctx: TaskContext) -> str:
    """A two-step agent."""
    await ctx.step(tokens_used=3)
    return ctx.task_id


def test_tasks_run_to_completion() -> None:
    """Submitted agents return their results and the kernel ends with every task FINISHED and no lane held."""

    async def main() -> tuple[list[str], dict[str, Phase], tuple[str | None, ...]]:
        async with Runtime(config()) as rm:
            handles = [await rm.submit(quick, agent="a", lane_class="batch") for _ in range(10)]
            results = [await h for h in handles]
        return results, phases(rm), rm.state.lanes

    results, ph, lanes = asyncio.run(main())
    ids = [f"t{i}" for i in range(10)]
    assert results == ids
    assert ph == {i: Phase.FINISHED for i in ids}
    assert lanes == (None,) * 4


def test_raising_agent_is_a_failed_task_and_others_are_undisturbed() -> None:
    """A coroutine that raises becomes a FAILED task with its lane freed; the other tasks finish."""

    async def boom(ctx: TaskContext) -> None:
        await ctx.step()
        raise KeyError("missing")

    async def main() -> tuple[list[object], dict[str, Phase], tuple[str | None, ...]]:
        async with Runtime(config(lanes=2)) as rm:
            handles = [await rm.submit(boom if i == 1 else quick, agent="a") for i in range(6)]
            outcomes: list[object] = []
            for h in handles:
                try:
                    outcomes.append(await h)
                except TaskFailedError as exc:
                    outcomes.append((type(exc.__cause__).__name__, exc.task_id))
        return outcomes, phases(rm), rm.state.lanes

    outcomes, ph, lanes = asyncio.run(main())
    assert outcomes == ["t0", ("KeyError", "t1"), "t2", "t3", "t4", "t5"]
    assert ph == {"t0": Phase.FINISHED, "t1": Phase.FAILED, "t2": Phase.FINISHED, "t3": Phase.FINISHED,
                  "t4": Phase.FINISHED, "t5": Phase.FINISHED}
    assert lanes == (None, None)


def test_hung_agents_are_reaped_within_idle_limit_plus_one_tick() -> None:
    """Agents that stop making progress are cancelled by the kernel's idle reaper, at the idle deadline the kernel set."""
    idle_ms = 60
    log: Log = []

    async def hang(ctx: TaskContext) -> None:
        await ctx.step()
        await asyncio.Event().wait()  # never set: a zombie

    async def main() -> tuple[list[object], dict[str, Phase]]:
        cfg = config(interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=idle_ms))
        async with Runtime(cfg, observer=lambda s, ev, eff: log.append((s, ev, eff))) as rm:
            handles = [await rm.submit(hang if i % 2 else quick, agent="a") for i in range(6)]
            outcomes: list[object] = []
            for h in handles:
                try:
                    outcomes.append(await h)
                except TaskReaped as exc:
                    outcomes.append(exc.reason)
        return outcomes, phases(rm)

    outcomes, ph = asyncio.run(main())
    assert outcomes == ["t0", CancelReason.IDLE, "t2", CancelReason.IDLE, "t4", CancelReason.IDLE]
    assert ph == {"t0": Phase.FINISHED, "t1": Phase.REAPED, "t2": Phase.FINISHED, "t3": Phase.REAPED,
                  "t4": Phase.FINISHED, "t5": Phase.REAPED}
    # Kernel facts: each reap happened at a step whose clock is past the task's last progress
    # by at least the idle limit, and by less than the limit plus one generous tick (a late timer).
    progress: dict[str, int] = {}
    for _, ev, effects in log:
        for eff in effects:
            if isinstance(eff, StartTask):
                progress[eff.task_id] = ev.at_ms
            if isinstance(eff, CancelTask):
                late = ev.at_ms - progress[eff.task_id]
                assert idle_ms <= late <= idle_ms + 1_000, (eff, late)
        if type(ev).__name__ == "StepFinished":
            progress[getattr(ev, "task_id")] = ev.at_ms


def test_reaped_parent_cancels_its_sub_agents() -> None:
    """When a parent is reaped, its running and waiting sub-agents are cancelled with PARENT_REAPED."""

    async def child(ctx: TaskContext) -> None:
        while True:
            await asyncio.sleep(0.01)
            ctx.heartbeat()  # alive on its own: only the parent's reaping ends it

    async def parent(ctx: TaskContext) -> None:
        kids = [await ctx.spawn(child, agent="kid", lane_class="batch") for _ in range(5)]
        await asyncio.Event().wait()  # hangs holding its lane: reaped
        del kids

    async def main() -> tuple[list[str], dict[str, Phase]]:
        cfg = config(interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=80))
        async with Runtime(cfg) as rm:
            p = await rm.submit(parent, agent="boss")
            with pytest.raises(TaskReaped) as info:
                await p
            reasons = [info.value.reason.value]
            for tid in ("t1", "t2", "t3", "t4", "t5"):
                reasons.append(rm.state.tasks[tid].phase.value)
        return reasons, phases(rm)

    reasons, ph = asyncio.run(main())
    assert reasons == ["idle"] + ["cancelled"] * 5
    assert ph == {"t0": Phase.REAPED, **{f"t{i}": Phase.CANCELLED for i in range(1, 6)}}


def test_refusals_reach_the_handle() -> None:
    """A refused submission (duplicate id, queue full) gives a handle that raises TaskRefused with the kernel's reason."""

    async def wait_forever(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async def main() -> list[RefusalReason]:
        cfg = config(lanes=2, queue_cap=1)
        reasons = []
        async with Runtime(cfg, shutdown="cancel") as rm:
            await rm.submit(wait_forever, agent="a", task_id="x")
            dup = await rm.submit(quick, agent="a", task_id="x")
            await rm.submit(wait_forever, agent="a", lane_class="background")  # takes the shared lane
            await rm.submit(wait_forever, agent="a", lane_class="background")  # waits (queue holds 1)
            full = await rm.submit(quick, agent="a", lane_class="background")
            for h in (dup, full):
                with pytest.raises(TaskRefused) as info:
                    await h
                reasons.append(info.value.reason)
        return reasons

    assert asyncio.run(main()) == [RefusalReason.DUPLICATE_TASK, RefusalReason.QUEUE_FULL]


def test_cancel_shutdown_leaves_no_orphan_tasks() -> None:
    """Shutdown policy 'cancel' interrupts running and waiting tasks, fails them in the kernel, and leaves no asyncio task behind."""

    async def wait_forever(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    kids: list[TaskHandle[None]] = []

    async def parent(ctx: TaskContext) -> None:
        kids.extend([await ctx.spawn(wait_forever, agent="kid") for _ in range(2)])
        await asyncio.Event().wait()

    async def main() -> tuple[list[str], dict[str, Phase], int]:
        async with Runtime(config(lanes=2), shutdown="cancel") as rm:
            handles = [await rm.submit(parent if i == 0 else wait_forever, agent="a") for i in range(4)]
            await asyncio.sleep(0.01)
        handles += kids
        kinds = []
        for h in handles:
            try:
                await h
            except TaskInterrupted as exc:
                kinds.append(type(exc).__name__)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return kinds, phases(rm), len(others)

    kinds, ph, orphans = asyncio.run(main())
    assert kinds == ["TaskInterrupted"] * 6
    # Sub-agents of a task failed at shutdown are cancelled by the kernel's cascade.
    assert ph == {**{f"t{i}": Phase.FAILED for i in range(4)}, "t4": Phase.CANCELLED, "t5": Phase.CANCELLED}
    assert orphans == 0


def test_drain_shutdown_waits_for_tasks() -> None:
    """Shutdown policy 'drain' (the default) lets running and queued tasks finish before exit."""

    async def slow(ctx: TaskContext) -> int:
        await asyncio.sleep(0.02)
        await ctx.step()
        return 1

    async def main() -> tuple[int, dict[str, Phase]]:
        async with Runtime(config(lanes=2)) as rm:
            handles = [await rm.submit(slow, agent="a") for _ in range(6)]
        return sum([await h for h in handles]), phases(rm)

    total, ph = asyncio.run(main())
    assert (total, ph) == (6, {f"t{i}": Phase.FINISHED for i in range(6)})


def test_ten_thousand_concurrent_short_agents_complete() -> None:
    """10,000 agents submitted at once all complete, each started exactly once by the kernel."""
    n = 10_000
    starts = 0

    def observe(seq: int, ev: SchedulerEvent, effects: tuple[SchedulerEffect, ...]) -> None:
        nonlocal starts
        starts += sum(1 for e in effects if isinstance(e, StartTask))

    async def noop(ctx: TaskContext) -> int:
        await ctx.step()
        return 1

    async def main() -> tuple[int, int, int]:
        # Limits out of the way: this test is about completing 10,000 tasks, not about policy.
        cfg = config(lanes=16, queue_cap=n, providers=(ProviderConfig("default", 10**9, 10**12),),
                     batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=600_000))
        async with Runtime(cfg, observer=observe) as rm:
            handles = [await rm.submit(noop, agent=f"agent{i % 50}", lane_class="batch") for i in range(n)]
            total = sum(await asyncio.gather(*handles))
        finished = sum(1 for t in rm.state.tasks.values() if t.phase is Phase.FINISHED)
        return total, finished, rm.state.live

    total, finished, live = asyncio.run(main())
    assert (total, finished, live, starts) == (n, n, 0, n)


def test_interactive_starts_promptly_during_background_flood() -> None:
    """Interactive tasks submitted while background work fills the shared lanes start within one background step.

    The bound comes from the policy: interactive has a reserved lane, and a background
    task must yield at its next step boundary to a higher-level waiting task.
    """
    step_s = 0.02
    log: Log = []

    async def background(ctx: TaskContext) -> None:
        for _ in range(5):
            await asyncio.sleep(step_s)
            await ctx.step()

    async def interactive(ctx: TaskContext) -> str:
        await asyncio.sleep(step_s)
        return "ok"

    async def main() -> list[str]:
        cfg = config(lanes=3, background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=5_000))
        async with Runtime(cfg, observer=lambda s, ev, eff: log.append((s, ev, eff))) as rm:
            bg = [await rm.submit(background, agent="bulk", lane_class="background") for _ in range(12)]
            await asyncio.sleep(3 * step_s)
            fg = []
            for _ in range(5):
                fg.append(await rm.submit(interactive, agent="user", lane_class="interactive"))
                await asyncio.sleep(step_s / 2)
            results = [await h for h in fg]
            await asyncio.gather(*bg)
        return results

    assert asyncio.run(main()) == ["ok"] * 5
    submitted: dict[str, int] = {}
    waits: list[int] = []
    for _, ev, effects in log:
        if isinstance(ev, Submit) and ev.agent == "user":
            submitted[ev.task_id] = ev.at_ms
        for eff in effects:
            if isinstance(eff, StartTask) and eff.task_id in submitted:
                waits.append(ev.at_ms - submitted[eff.task_id])
    assert len(waits) == 5
    # One background step (20 ms) is the policy's bound; 500 ms leaves room for a slow CI loop.
    assert max(waits) <= 500, waits


def test_429_storm_does_not_cascade_and_every_task_completes() -> None:
    """Under a provider that answers 429 past its per-window limit, the shared gate pauses everyone.

    After the first 429 the provider sees, in every window, at most its limit of
    accepted requests plus only requests already under way when the pause began (a
    small multiple of the lane count, not of the agent count) -- no agent retries on
    its own -- and every task completes.
    """
    limit, window_s, lanes, n = 6, 0.25, 4, 24

    async def caller(ctx: TaskContext) -> str:
        reply = await ctx.llm([{"role": "user", "content": f"hello from {ctx.task_id}"}])
        return reply.content

    async def main() -> tuple[list[str], list[tuple[int, int]], int | None, int]:
        with FakeLLMServer(limit_per_window=limit, window_s=window_s, retry_after="decimal") as server:
            # The configured rate is the provider's nominal one; the gate learns the rest from 429s.
            provider = ProviderConfig("default", requests_per_min=int(limit * 60 / window_s),
                                      tokens_per_min=10**9, default_retry_after_ms=250)
            rate_limited = 0

            def observe(seq: int, ev: SchedulerEvent, effects: tuple[SchedulerEffect, ...]) -> None:
                nonlocal rate_limited
                rate_limited += isinstance(ev, RateLimited)

            async with ChatClient(server.base_url) as client, \
                    Runtime(config(lanes=lanes, providers=(provider,)), llm=client, observer=observe) as rm:
                handles = [await rm.submit(caller, agent=f"a{i % 3}", lane_class="batch") for i in range(n)]
                results = [await h for h in handles]
            return results, server.counts(), server.first_429_window, rate_limited

    results, counts, first, rate_limited = asyncio.run(main())
    assert results == [f"echo: hello from t{i}" for i in range(n)]
    assert first is not None  # the storm really happened
    assert sum(a for a, _ in counts) == n  # every call was answered exactly once
    assert rate_limited == sum(r for _, r in counts)  # every 429 reached the kernel
    for accepted, rejected in counts[first:]:
        assert accepted <= limit
        # Rejected per window: the calls in flight on the lanes when the server sent its 429,
        # plus at most one per lane started before the client had read that 429 (loop lag).
        # A cascade (each agent retrying on its own) would grow with the number of agents.
        assert rejected <= 2 * lanes, counts


def test_yielded_task_resumes_where_it_left_off() -> None:
    """A task told to yield at a step boundary is parked off its lane and later resumed, not restarted, by StartTask."""
    log: Log = []

    async def long_batch(ctx: TaskContext) -> list[int]:
        done = []
        for i in range(6):
            await asyncio.sleep(0.01)
            await ctx.step()  # a boundary: the kernel may park us here
            done.append(i)
        return done

    async def interactive(ctx: TaskContext) -> str:
        await asyncio.sleep(0.03)
        return "ok"

    async def main() -> tuple[list[int], list[str]]:
        # Two lanes, one reserved for interactive: the batch task holds the only shared lane.
        async with Runtime(config(lanes=2), observer=lambda s, ev, eff: log.append((s, ev, eff))) as rm:
            batch = await rm.submit(long_batch, agent="b", lane_class="batch")
            await asyncio.sleep(0.015)
            fg = [await rm.submit(interactive, agent="u") for _ in range(2)]
            return await batch, [await h for h in fg]

    done, fg = asyncio.run(main())
    kinds = [type(e).__name__ for _, _, effects in log for e in effects if getattr(e, "task_id", None) == "t0"]
    assert (done, fg) == ([0, 1, 2, 3, 4, 5], ["ok", "ok"])
    # Started, parked for the second interactive task, started again (resumed).
    assert kinds[:3] == ["StartTask", "YieldTask", "StartTask"], kinds


def test_run_limit_reaps_a_busy_task() -> None:
    """A task that keeps making progress is still reaped once it exceeds its class's run limit."""

    async def busy(ctx: TaskContext) -> None:
        while True:
            await asyncio.sleep(0.005)
            ctx.heartbeat()

    async def main() -> tuple[CancelReason, Phase]:
        cfg = config(interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=1_000, run_ms_limit=60))
        async with Runtime(cfg) as rm:
            h = await rm.submit(busy, agent="a")
            with pytest.raises(TaskReaped) as info:
                await h
        return info.value.reason, rm.state.tasks["t0"].phase

    assert asyncio.run(main()) == (CancelReason.RUN_LIMIT, Phase.REAPED)


def test_context_append_history_and_recall_in_memory() -> None:
    """Entries appended by an agent's tasks form one gapless context per agent, readable and searchable."""

    async def writer(ctx: TaskContext) -> tuple[str, ...]:
        await ctx.append("the deploy key is K-42", key=True, role="user")
        await ctx.append("nothing to see", tokens=3)
        return tuple(e.text for e in await ctx.recall("deploy"))

    async def main() -> tuple[list[tuple[str, ...]], list[tuple[str, int, str, int, bool]]]:
        async with Runtime(config()) as rm:
            # One writer after the other: concurrent writers would interleave their entries.
            found = [await (await rm.submit(writer, agent="w")) for _ in range(2)]

            async def reader(ctx: TaskContext) -> list[tuple[str, int, str, int, bool]]:
                return [(e.entry_id, e.seq, e.text, e.tokens, e.key) for e in await ctx.history()]

            history = await (await rm.submit(reader, agent="w"))
        return found, history

    found, history = asyncio.run(main())
    assert found == [("the deploy key is K-42",), ("the deploy key is K-42", "the deploy key is K-42")]
    assert history == [("t0:0", 0, "the deploy key is K-42", 6, True), ("t0:1", 1, "nothing to see", 3, False),
                       ("t1:2", 2, "the deploy key is K-42", 6, True), ("t1:3", 3, "nothing to see", 3, False)]


def test_submit_outside_async_with_is_an_error() -> None:
    """Submitting to a runtime that is not running raises a RuntimeError that says how to use it."""

    async def main() -> None:
        rm = Runtime(config())
        await rm.submit(quick, agent="a")

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(main())


def test_bad_lane_class_names_the_field() -> None:
    """An unknown lane class is refused with a ValueError naming lane_class and the allowed values."""

    async def main() -> None:
        async with Runtime(config()) as rm:
            await rm.submit(quick, agent="a", lane_class="urgent")

    with pytest.raises(ValueError, match="lane_class: expected one of interactive, batch, background"):
        asyncio.run(main())


def test_benchmark_command_runs() -> None:
    """The benchmark command runs end to end on a tiny workload and prints one row per mode."""
    import contextlib
    import io

    from agentrm.adapters import bench_runtime

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench_runtime.main(["--tasks", "50", "--repeat", "1", "--durable"]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] in ("kernel build: pure Python",
                        "kernel build: compiled by mypyc (transitions, gate, records)")
    assert [line.split()[0] for line in lines[3:]] == ["semaphore", "runtime", "runtime+sqlite", "runtime",
                                                        "runtime", "runtime+sqlite", "runtime+sqlite"]
    assert [line.split(":")[0] for line in lines[-4:]] == [
        "runtime split", "runtime shell alone (kernel replayed)",
        "runtime+sqlite split", "runtime+sqlite shell alone (kernel replayed)"]
    # The timing wrappers are gone afterwards: the runtime calls the real kernel and encoders again.
    from agentrm.adapters import eventlog, runtime
    from agentrm.kernel import step
    assert (runtime.kernel_step, runtime.encode_event, runtime.encode_effects) == (
        step, eventlog.event_line, eventlog.effects_line)


def test_cancelling_a_handle_cancels_the_task_and_its_sub_agents() -> None:
    """Cancelling a handle (here by wait_for's timeout) fails the task in the kernel, cascades to its sub-agents, and frees its lane."""
    kids: list[TaskHandle[None]] = []

    async def wait_forever(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async def parent(ctx: TaskContext) -> None:
        kids.extend([await ctx.spawn(wait_forever, agent="kid", lane_class="batch") for _ in range(2)])
        await asyncio.Event().wait()

    async def main() -> tuple[bool, list[str], str, dict[str, Phase], tuple[str | None, ...]]:
        async with Runtime(config(lanes=3)) as rm:
            h = await rm.submit(parent, agent="p")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(h, timeout=0.05)
            kid_errors = []
            for k in kids:
                with pytest.raises(TaskReaped) as info:
                    await k
                kid_errors.append(info.value.reason.value)
            after = await (await rm.submit(quick, agent="q"))
        return h.cancelled(), kid_errors, after, phases(rm), rm.state.lanes

    cancelled, kid_errors, after, ph, lanes = asyncio.run(main())
    assert (cancelled, kid_errors, after) == (True, ["parent_reaped", "parent_reaped"], "t3")
    assert ph == {"t0": Phase.FAILED, "t1": Phase.CANCELLED, "t2": Phase.CANCELLED, "t3": Phase.FINISHED}
    assert lanes == (None, None, None)


def test_idle_runtime_does_not_poll() -> None:
    """With no live task the runtime holds no timer and steps the kernel zero times while it sits idle."""
    log: Log = []

    async def main() -> tuple[int, int, bool]:
        async with Runtime(config(), observer=lambda s, ev, eff: log.append((s, ev, eff))) as rm:
            await (await rm.submit(quick, agent="a"))
            before = len(log)
            await asyncio.sleep(0.2)
            idle_steps = len(log) - before
            timer_pending = rm._timer is not None and not rm._timer.cancelled()
        return before, idle_steps, timer_pending

    before, idle_steps, timer_pending = asyncio.run(main())
    assert (before, idle_steps, timer_pending) == (3, 0, False)


def test_work_after_idle_still_gets_its_wake_up() -> None:
    """A hung task submitted after the runtime went idle is still reaped, even when the kernel's next deadline is one it announced before the idle spell."""

    async def hang(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async def main() -> CancelReason:
        # The boost instant (300 ms) is the first task's earliest deadline (its idle limit
        # is longer) and again the second's, so the kernel emits no new WakeAt for it.
        cfg = config(boost_period_ms=300, interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=1_000))
        async with Runtime(cfg) as rm:
            await (await rm.submit(quick, agent="a"))
            await asyncio.sleep(0.05)
            h = await rm.submit(hang, agent="a")
            with pytest.raises(TaskReaped) as info:
                await asyncio.wait_for(h, timeout=5)
        return info.value.reason

    assert asyncio.run(main()) is CancelReason.IDLE


def test_each_llm_call_is_a_gated_step_charged_with_its_usage() -> None:
    """Consecutive ctx.llm calls are separated by step boundaries that report each call's token usage to the kernel."""
    log: Log = []

    async def chatty(ctx: TaskContext) -> list[int]:
        used = []
        for words in ("one", "one two", "one two three"):
            reply = await ctx.llm([{"role": "user", "content": words}])
            used.append(reply.total_tokens)
        await ctx.step()
        return used

    async def main() -> list[int]:
        with FakeLLMServer(completion_tokens=5) as server:
            async with ChatClient(server.base_url) as client, \
                    Runtime(config(), llm=client, observer=lambda s, ev, eff: log.append((s, ev, eff))) as rm:
                return await (await rm.submit(chatty, agent="a"))

    used = asyncio.run(main())
    steps = [(ev.tokens_used, ev.next_step_tokens) for _, ev, _ in log if isinstance(ev, StepFinished)]
    assert used == [6, 7, 8]
    # Boundaries before calls 2 and 3 (demanding what the previous call used), then the final one.
    assert steps == [(6, 6), (7, 7), (8, 0)]


def test_leaving_by_an_exception_cancels_instead_of_draining() -> None:
    """An exception escaping the async-with block cancels live tasks at once (no drain wait) and still propagates."""

    async def wait_forever(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async def main() -> tuple[str, dict[str, Phase]]:
        rm = Runtime(config(), drain_timeout_s=60)
        with pytest.raises(KeyError) as info:
            async with rm:
                await rm.submit(wait_forever, agent="a")
                await asyncio.sleep(0.01)
                raise KeyError("user code failed")
        return str(info.value), phases(rm)

    message, ph = asyncio.run(asyncio.wait_for(main(), timeout=10))
    assert (message, ph) == ("'user code failed'", {"t0": Phase.FAILED})


def test_wake_ups_never_precede_the_announced_deadline() -> None:
    """While deadlines keep moving later (heartbeats) the runtime keeps one timer, yet wakes the kernel only at or after the latest deadline announced, and still reaps a hung task."""
    from agentrm.kernel.scheduler.effects import WakeAt
    from agentrm.kernel.scheduler.events import ClockAdvanced

    log: Log = []

    async def beating(ctx: TaskContext) -> int:
        # Beats for longer than the idle limit, so timers armed for early deadlines come due.
        for _ in range(25):
            await asyncio.sleep(0.01)
            ctx.heartbeat()
        return 25

    async def hang(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async def main() -> tuple[list[int], CancelReason]:
        cfg = config(interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=150))
        async with Runtime(cfg, observer=lambda s, ev, eff: log.append((s, ev, eff))) as rm:
            beats = [await rm.submit(beating, agent="b") for _ in range(2)]
            results = [await h for h in beats]
            stuck = await rm.submit(hang, agent="h")
            with pytest.raises(TaskReaped) as info:
                await asyncio.wait_for(stuck, timeout=5)
        return results, info.value.reason

    results, reason = asyncio.run(main())
    last_wake: int | None = None
    early: list[tuple[int, int]] = []
    moved_later = 0
    for _, event, effects in log:
        if isinstance(event, ClockAdvanced) and last_wake is not None and event.at_ms < last_wake:
            early.append((event.at_ms, last_wake))
        for eff in effects:
            if isinstance(eff, WakeAt):
                if last_wake is not None and eff.at_ms > last_wake:
                    moved_later += 1
                last_wake = eff.at_ms
    assert (results, reason, early, moved_later > 0) == ([25, 25], CancelReason.IDLE, [], True)
