"""Durable mode: the SQLite journal and snapshots restore the kernel exactly, across kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentrm.adapters.eventlog import event_from_json, read_eventlog
from agentrm.adapters.runtime import (
    JournalError,
    Runtime,
    TaskContext,
    TaskFailedError,
    TaskReaped,
    restore_state,
)
from agentrm.adapters.store import JournalRecord, Store
from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig
from agentrm.kernel.scheduler.lifecycle import Phase
from agentrm.kernel.scheduler.state import SchedulerState
from agentrm.kernel import step

CONFIG = SchedulerConfig(
    lanes=4,
    interactive=ClassConfig(entry_level=0, reserved_lanes=1, idle_ms_reap=100),
    batch=ClassConfig(entry_level=1, reserved_lanes=0, idle_ms_reap=10_000),
    background=ClassConfig(entry_level=2, reserved_lanes=0, idle_ms_reap=10_000),
    providers=(ProviderConfig("default", 10**6, 10**9),),
)


async def mixed_run(rm: Runtime) -> list[object]:
    """Tasks that finish, fail, get reaped and write context: every kind of journal record."""

    async def ok(ctx: TaskContext) -> int:
        await ctx.append(f"hello from {ctx.task_id}")
        await ctx.step(tokens_used=5, next_step_tokens=7)
        return 1

    async def bad(ctx: TaskContext) -> None:
        raise RuntimeError("boom")

    async def hang(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    fns = [ok, bad, ok, hang, ok, ok]
    handles = [await rm.submit(fns[i % len(fns)], agent=f"ag{i % 2}",
                               lane_class="interactive" if i % 6 == 3 else "batch") for i in range(24)]
    out: list[object] = []
    for h in handles:
        try:
            out.append(await h)
        except (TaskFailedError, TaskReaped) as exc:
            out.append(type(exc).__name__)
    return out


def test_store_restores_the_exact_kernel_state(tmp_path: Path) -> None:
    """After a run, snapshot + journal restore a state equal to the live one, and the journal alone folds to it too."""
    db = tmp_path / "rt.db"

    async def main() -> tuple[list[object], SchedulerState]:
        async with Runtime(CONFIG, store=db, snapshot_every=7) as rm:
            out = await mixed_run(rm)
        return out, rm.state

    out, live = asyncio.run(main())
    assert out == [1, "TaskFailedError", 1, "TaskReaped", 1, 1] * 4
    with Store.open(db, create=False) as store:
        restored, seq = restore_state(store, CONFIG)
        folded = SchedulerState.initial(CONFIG)
        records = list(store.journal_after(0))
        for r in records:
            folded = step(folded, event_from_json(json.loads(r.event))).state
        entries = store.archived("ag0") + store.archived("ag1")
    assert restored == live
    assert folded == live
    assert seq == len(records)
    assert sorted(e.text for e in entries) == sorted(f"hello from t{i}" for i in range(24) if i % 6 in (0, 2, 4, 5))


def test_jsonl_event_log_replays_to_the_same_effects(tmp_path: Path) -> None:
    """The JSONL event log v1 written by the runtime replays: folding its events reproduces every recorded effect."""
    path = tmp_path / "run.jsonl"

    async def main() -> SchedulerState:
        async with Runtime(CONFIG, journal_jsonl=path) as rm:
            await mixed_run(rm)
        return rm.state

    live = asyncio.run(main())
    log = read_eventlog(str(path))
    state = SchedulerState.initial(log.header.config)
    for record in log.records:
        result = step(state, record.event)
        assert result.effects == record.effects, record.seq
        state = result.state
    assert log.header.config == CONFIG
    assert state == live


CHILD = textwrap.dedent('''
    import asyncio, sys
    from agentrm.adapters.runtime import Runtime
    from agentrm.kernel.scheduler.config import ClassConfig, ProviderConfig, SchedulerConfig
    CONFIG = {config!r}

    async def worker(ctx):
        for i in range(3):
            entry = await ctx.append(f"{{ctx.task_id}} step {{i}}")
            print("entry", entry.entry_id, flush=True)
            if i == 1 and int(ctx.task_id.removeprefix("job")) >= 8:
                # Hold the lane mid-task until the parent kills this process: the crash then
                # always finds jobs running and queued, however slowly the parent reads.
                await asyncio.Event().wait()
            await asyncio.sleep(0.01)
            await ctx.step()
        return ctx.task_id

    async def main():
        async with Runtime(CONFIG, store=sys.argv[1], journal_jsonl=sys.argv[3], snapshot_every=20) as rm:
            handles = [await rm.submit(worker, agent="worker", lane_class="batch", task_id=f"job{{i}}")
                       for i in range(int(sys.argv[2]))]
            print("submitted", flush=True)
            for h in handles:
                await h
            print("done", flush=True)

    asyncio.run(main())
''')


def test_kill_9_mid_run_then_resume_loses_nothing(tmp_path: Path) -> None:
    """A runtime killed with SIGKILL mid-run restarts on the same file: every task and context entry is accounted for.

    Tasks queued at the crash run again from the journal, tasks running at the crash
    are reported interrupted and are resubmitted, every entry whose append returned is
    in the store, and each job completes.
    """
    db = tmp_path / "crash.db"
    n = 40
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(config=CONFIG))
    jsonl = tmp_path / "crash.jsonl"
    child = subprocess.Popen([sys.executable, str(script), str(db), str(n), str(jsonl)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    printed: list[str] = []
    submitted = False
    for line in child.stdout:
        if line.strip() == "submitted":
            submitted = True
        elif line.startswith("entry "):
            printed.append(line.split()[1])
        # Jobs 0-7 finish (24 entries); jobs from 8 on stop after two entries, holding the
        # batch lanes: 28 entries means the run is stuck mid-way with jobs running and queued.
        if submitted and len(printed) >= 28:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert submitted and child.returncode == -signal.SIGKILL

    with Store.open(db, create=False) as store:
        at_crash, _ = restore_state(store, CONFIG)
        snapshot = store.latest_snapshot()
    assert snapshot is not None and snapshot[0] > 0  # restored from a mid-run snapshot plus the journal after it
    done_before = {t for t, r in at_crash.tasks.items() if r.phase is Phase.FINISHED}
    assert set(at_crash.tasks.keys()) == {f"job{i}" for i in range(n)}  # every submission survived

    async def worker(ctx: TaskContext) -> str:
        for i in range(3):
            await ctx.append(f"{ctx.task_id} step {i}")
            await ctx.step()
        return ctx.task_id.removesuffix("-retry")

    async def resume() -> tuple[list[str], list[str], int, dict[str, Any]]:
        async with Runtime(CONFIG, store=db, agents={"worker": worker}, journal_jsonl=jsonl) as rm:
            interrupted = [t.task_id for t in rm.interrupted]
            retries = [await rm.resubmit(t) for t in rm.interrupted]
            finished = [await h for h in rm.restored.values()] + [await h for h in retries]
            requeued = len(rm.restored)
        return finished, interrupted, requeued, dict(rm.state.tasks)

    finished, interrupted, requeued, tasks = asyncio.run(resume())
    # The JSONL log, caught up from the store after the crash, replays to the final state.
    log = read_eventlog(str(jsonl))
    state = SchedulerState.initial(CONFIG)
    for record in log.records:
        result = step(state, record.event)
        assert result.effects == record.effects, record.seq
        state = result.state
    assert dict(state.tasks) == tasks
    assert 1 <= len(interrupted) <= CONFIG.lanes
    assert all(tasks[t].phase is Phase.FAILED for t in interrupted)
    assert requeued == n - len(done_before) - len(interrupted)
    assert sorted(done_before | set(finished)) == sorted(f"job{i}" for i in range(n))  # every job completed
    assert not done_before & set(finished)  # finished work is never run again
    with Store.open(db, create=False) as store:
        entries = store.archived("worker")
    ids = [e.entry_id for e in entries]
    assert [e.seq for e in entries] == list(range(len(entries)))  # gapless across the crash
    assert set(printed) <= set(ids)  # every append that returned before the kill is stored
    # After the restart each re-run or resubmitted job wrote its three entries.
    assert len(entries) >= len(printed) + 3 * (len(finished))


def test_bulk_submit_then_sync_is_durable(tmp_path: Path) -> None:
    """Submissions made with wait_durable=False are all in the store's journal once sync() returns."""
    db = tmp_path / "bulk.db"

    async def wait_forever(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async def main() -> int:
        async with Runtime(CONFIG, store=db, shutdown="cancel") as rm:
            for i in range(50):
                await rm.submit(wait_forever, agent="w", lane_class="batch", task_id=f"b{i}", wait_durable=False)
            await rm.sync()
            with Store.open(db, create=False) as reader:  # a second connection sees only committed data
                restored, _ = restore_state(reader, CONFIG)
            return len(restored.tasks)

    assert asyncio.run(main()) == 50


def test_store_with_another_config_is_refused(tmp_path: Path) -> None:
    """Opening a store with a different scheduler config fails, naming the file, instead of folding a wrong history."""
    db = tmp_path / "cfg.db"

    async def run(cfg: SchedulerConfig) -> None:
        async with Runtime(cfg, store=db):
            pass

    asyncio.run(run(CONFIG))
    other = SchedulerConfig(lanes=5, providers=CONFIG.providers)
    with pytest.raises(ValueError, match=re.escape(f"{db}: config differs")):
        asyncio.run(run(other))


def test_a_refused_journal_write_is_reported_not_swallowed(tmp_path: Path) -> None:
    """When the store refuses a journal batch, the waiting submit and the final flush raise JournalError naming the cause."""
    db = tmp_path / "broken.db"

    async def main() -> tuple[str, str]:
        rm = Runtime(CONFIG, store=db, shutdown="cancel")
        with pytest.raises(JournalError) as at_exit:
            async with rm:
                await rm.sync()
                # Another writer appends a record: the runtime's next batch no longer continues the journal.
                with Store.open(db, create=False) as other:
                    other.append_journal([JournalRecord(other.last_journal_seq() + 1, "{}", "[]")])
                with pytest.raises(JournalError) as at_submit:
                    await rm.submit(_idle, agent="a", lane_class="batch")
        return str(at_submit.value), str(at_exit.value)

    at_submit, at_exit = asyncio.run(main())
    assert at_submit == at_exit
    assert at_submit.startswith("durable journal write failed") and "gapless" in at_submit


async def _idle(ctx: TaskContext) -> None:
    await asyncio.Event().wait()


def test_a_durable_wait_never_waits_for_a_snapshot(tmp_path: Path) -> None:
    """While a snapshot is being dumped (held here until released), durable submissions still commit and return, and the snapshot saved afterwards restores the exact state."""
    import threading

    from agentrm.adapters import runtime as runtime_module

    db = tmp_path / "rt.db"
    entered, release = threading.Event(), threading.Event()
    real_dump = runtime_module.dump_scheduler_state

    def held_dump(state: SchedulerState) -> str:
        if threading.current_thread() is not threading.main_thread():  # not the one at open
            entered.set()
            release.wait(30)
        return real_dump(state)

    async def quick(ctx: TaskContext) -> str:
        return ctx.task_id

    async def main() -> tuple[list[str], SchedulerState]:
        loop = asyncio.get_running_loop()
        async with Runtime(CONFIG, store=db, snapshot_every=3) as rm:
            first = [await (await rm.submit(quick, agent="a", lane_class="batch")) for _ in range(2)]
            assert await loop.run_in_executor(None, entered.wait, 30), "no snapshot started"
            # The dump is held: these durable submissions must not wait for it.
            during = [await (await asyncio.wait_for(rm.submit(quick, agent="a", lane_class="batch"), 30))
                      for _ in range(3)]
            release.set()
        return first + during, rm.state

    runtime_module.dump_scheduler_state = held_dump
    try:
        results, live = asyncio.run(main())
    finally:
        runtime_module.dump_scheduler_state = real_dump
        release.set()
    with Store.open(db, create=False) as store:
        restored, _ = restore_state(store, CONFIG)
        snapshots = store.latest_snapshot()
    assert (results, restored, snapshots is not None and snapshots[0] > 0) == (
        ["t0", "t1", "t2", "t3", "t4"], live, True)
