"""The agentrm command: golden files, round trips, determinism, and exit codes for bad input."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from agentrm.adapters.cli import cmd_check, cmd_replay, main
from agentrm.adapters.simulator import kernel_reducer
from agentrm.kernel.scheduler.config import SchedulerConfig
from agentrm.kernel.scheduler.effects import SchedulerEffect, WakeAt
from agentrm.kernel.scheduler.events import SchedulerEvent

GOLDEN = Path(__file__).resolve().parent / "golden"
G_WORKLOAD = GOLDEN / "storm-s7.workload.jsonl"
G_LOG = GOLDEN / "storm-s7.mlfq.log.jsonl"
G_METRICS = GOLDEN / "storm-s7.metrics.json"
G_ARGS = ["--scenario", "storm", "--seed", "7", "--horizon-s", "120", "--fault-rate", "0.5"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``agentrm argv`` in process; return (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_reproduces_the_golden_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The scenario generator still writes the checked-in workload byte for byte."""
    out = tmp_path / "w.jsonl"
    assert run(capsys, "workload", "generate", *G_ARGS, "-o", str(out)) == (0, "", "")
    assert out.read_bytes() == G_WORKLOAD.read_bytes()


def test_simulate_reproduces_the_golden_log_and_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Simulating the golden workload writes the golden event log and every policy's golden metrics."""
    log = tmp_path / "run.log"
    code, _, _ = run(capsys, "simulate", str(G_WORKLOAD), "--policy", "mlfq", "--log", str(log), "--json")
    assert code == 0
    assert log.read_bytes() == G_LOG.read_bytes()
    code, out, err = run(capsys, "simulate", str(G_WORKLOAD), "--policy", "all", "--json")
    assert (code, err) == (0, "")
    assert out == G_METRICS.read_text(encoding="utf-8")


@pytest.mark.parametrize("log", [G_LOG, GOLDEN / "edges.mlfq.log.jsonl"], ids=["storm", "edges"])
def test_golden_log_replays_and_checks(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    """A golden log replays with every effect matching and passes every invariant at every step."""
    lines = len(log.read_text(encoding="utf-8").splitlines())
    assert run(capsys, "replay", str(log)) == (
        0, f"{log}: {lines - 1} steps replayed, every effect matches (logged by kernel 0.1.0)\n", "")
    assert run(capsys, "check", str(log)) == (
        0, f"{log}: {lines - 1} steps, every invariant holds at every step\n", "")


@pytest.mark.parametrize("scenario", ["paper", "overload"])
def test_simulate_replay_check_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str) -> None:
    """For a fresh workload, the mlfq log replays and checks clean, and every policy simulates it."""
    wl, log = tmp_path / "w.jsonl", tmp_path / "w.log"
    assert run(capsys, "workload", "generate", "--scenario", scenario, "--seed", "3", "--horizon-s", "90",
               "-o", str(wl))[0] == 0
    assert run(capsys, "simulate", str(wl), "--log", str(log))[0] == 0
    assert run(capsys, "replay", str(log))[0] == 0
    assert run(capsys, "check", str(log))[0] == 0
    code, out, _ = run(capsys, "simulate", str(wl), "--policy", "all", "--json")
    assert code == 0
    assert [r["policy"] for r in json.loads(out)["runs"]] == ["mlfq", "fifo", "rr", "priority"]


def test_determinism_across_processes(tmp_path: Path) -> None:
    """Two processes with different PYTHONHASHSEED write byte-equal workloads, logs and metrics."""
    script = (
        "import sys\nfrom agentrm.adapters.cli import main\nd = sys.argv[1]\n"
        "main(['workload', 'generate', '--scenario', 'paper', '--seed', '11', '--horizon-s', '90', '-o', d + '/w'])\n"
        "main(['simulate', d + '/w', '--log', d + '/l'])\n"
        "sys.stdout = open(d + '/m', 'w')\nmain(['simulate', d + '/w', '--policy', 'all', '--json'])\n"
    )
    outputs = []
    for seed in ("1", "2"):
        d = tmp_path / seed
        d.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", script, str(d)], check=True, env=env, capture_output=True)
        outputs.append([(d / name).read_bytes() for name in ("w", "l", "m")])
    assert outputs[0] == outputs[1]
    assert all(len(b) > 100 for b in outputs[0])


def test_replay_reports_the_first_divergence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log whose recorded effects differ from the kernel's exits 1 naming the seq, with a diff."""
    lines = G_LOG.read_text(encoding="utf-8").splitlines(keepends=True)
    idx = next(i for i, line in enumerate(lines) if i > 0 and '"type":"start_task"' in line)
    lines[idx] = lines[idx].replace('"type":"start_task"', '"type":"yield_task"', 1).replace('"lane":', '"lane_":', 1)
    # Keep the record valid: a yield_task has only task_id.
    record = json.loads(lines[idx])
    record["effects"] = [{"task_id": e["task_id"], "type": "yield_task"} if e["type"] == "yield_task" else e
                         for e in record["effects"]]
    lines[idx] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    bad = tmp_path / "bad.log"
    bad.write_text("".join(lines), encoding="utf-8")
    code, out, err = run(capsys, "replay", str(bad))
    assert (code, err) == (1, "")
    assert out.startswith(f"{bad}:{idx + 1}: seq {idx}: effects diverge\n  event: ")
    assert '-{"task_id":' in out and '+{"lane":' in out


def test_check_names_the_broken_invariant_and_step(capsys: pytest.CaptureFixture[str]) -> None:
    """A kernel that breaks an invariant makes check exit 1 naming the invariant and the step."""
    initial, reduce = kernel_reducer()

    def broken(state: Any, event: SchedulerEvent) -> tuple[Any, tuple[SchedulerEffect, ...]]:
        new, effects = reduce(state, event)
        if event.at_ms > 0:  # from the first step after t=0, one lane too many
            new = attrs.evolve(new, lanes=new.lanes + (None,))
        return new, effects

    def fake_initial(config: SchedulerConfig) -> Any:
        return initial(config)

    code = cmd_check(argparse.Namespace(log=str(G_LOG)), (fake_initial, broken))
    out = capsys.readouterr().out
    assert code == 1
    first_late = next(i for i, line in enumerate(G_LOG.read_text(encoding="utf-8").splitlines())
                      if i > 0 and '"at_ms":0,' not in line.split('"event":')[1])
    assert out.startswith(f"{G_LOG}:{first_late + 1}: seq {first_late}: invariant S2 ")


def test_replay_with_another_reducer_diverges(capsys: pytest.CaptureFixture[str]) -> None:
    """replay compares against whatever reducer it is given: one that drops wake-ups diverges."""
    initial, reduce = kernel_reducer()

    def no_wakes(state: Any, event: SchedulerEvent) -> tuple[Any, tuple[SchedulerEffect, ...]]:
        new, effects = reduce(state, event)
        return new, tuple(e for e in effects if not isinstance(e, WakeAt))

    assert cmd_replay(argparse.Namespace(log=str(G_LOG)), (initial, no_wakes)) == 1
    assert "effects diverge" in capsys.readouterr().out


def test_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo shows the crawler yielding to an interactive task and the hung sub-agent reaped."""
    code, out, _ = run(capsys, "demo")
    assert code == 0
    assert '-> yield_task task_id="crawler"' in out
    assert '-> cancel_task reason="idle" task_id="crawler/sub"' in out


HEADER = G_WORKLOAD.read_text(encoding="utf-8").splitlines()[0]
TASK = ('{"agent":"a","arrival_ms":5,"fault":"none","fault_step":0,"parent":null,"provider":"llm",'
        '"steps":[{"duration_ms":100,"tokens":10}],"task_class":"batch","task_id":"t1","type":"task"}')

BAD_WORKLOADS = [
    ("", 1, "format", "empty file"),
    ("{oops\n", 1, "", "not JSON"),
    (HEADER.replace('"version":1', '"version":7') + "\n", 1, "version", "unsupported version 7"),
    (HEADER.replace('"heartbeat_ms":5000', '"heartbeat_ms":0') + "\n", 1, "heartbeat_ms", "must be >= 1"),
    (HEADER.replace('"name":"llm","requests_per_min"', '"name":"zz","requests_per_min"', 1) + "\n", 1,
     "providers[0].name", "not in config.providers"),
    (HEADER + "\n" + TASK, 2, "", "truncated last line"),
    (HEADER + "\n" + TASK.replace('"task_id":"t1",', "") + "\n", 2, "task_id", "missing field"),
    (HEADER + "\n" + TASK.replace('"arrival_ms":5', '"arrival_ms":"5"') + "\n", 2, "arrival_ms",
     "expected an integer, got string"),
    (HEADER + "\n" + TASK.replace('"type":"task"', '"type":"job"') + "\n", 2, "type", "unknown record type"),
    (HEADER + "\n" + TASK.replace('"parent":null', '"parent":"ghost"') + "\n", 2, "parent", "unknown task 'ghost'"),
    (HEADER + "\n" + TASK.replace('"provider":"llm"', '"provider":"other"') + "\n", 2, "provider",
     "unknown provider 'other'"),
    (HEADER + "\n" + TASK + "\n" + TASK + "\n", 3, "task_id", "duplicate task id 't1'"),
    (HEADER + "\n" + TASK + "\n" + TASK.replace('"arrival_ms":5', '"arrival_ms":4').replace("t1", "t2") + "\n", 3,
     "arrival_ms", "goes back in time"),
    (HEADER + "\n" + TASK.replace('"duration_ms":100', '"duration_ms":0') + "\n", 2, "steps[0].duration_ms",
     "must be >= 1"),
    (HEADER + "\n" + TASK.replace('"fault_step":0', '"fault_step":3') + "\n", 2, "fault_step", "must be in [0, 0]"),
    (HEADER + "\n" + TASK.replace('"fault":"none"', '"fault":"melt"') + "\n", 2, "fault", "expected one of"),
    (HEADER + "\n" + TASK.replace('"steps":[{"duration_ms":100,"tokens":10}]', '"steps":[]') + "\n", 2, "steps",
     "needs at least one step"),
    (HEADER + "\n" + '{"agent":"a","answer":"x","at_ms":9,"fact":"f","probe_id":"p","query":"q","type":"probe"}\n',
     2, "fact", "unknown fact 'f'"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), BAD_WORKLOADS)
def test_bad_workload_exits_2_naming_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                     line: int, field: str, fragment: str) -> None:
    """simulate rejects each malformed workload with exit 2 and file:line: field: message on stderr."""
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "simulate", str(path))
    assert (code, out) == (2, "")
    prefix = f"agentrm: {path}:{line}: {field}: " if field else f"agentrm: {path}:{line}: "
    assert err.startswith(prefix), err
    assert fragment in err


@pytest.mark.parametrize("command", ["replay", "check"])
def test_bad_log_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    """replay and check reject a truncated log with exit 2 naming its last line."""
    path = tmp_path / "cut.log"
    text = G_LOG.read_text(encoding="utf-8")
    path.write_text(text[: text.rindex("\n") - 5], encoding="utf-8")
    lines = len(text.splitlines())
    code, out, err = run(capsys, command, str(path))
    assert (code, out, err) == (2, "", f"agentrm: {path}:{lines}: truncated last line (no newline at end of file)\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["simulate", "MISSING.jsonl"], "agentrm: MISSING.jsonl: No such file or directory\n"),
    (["simulate", str(G_WORKLOAD), "--policy", "fifo", "--log", "x.log"],
     "agentrm: --log: only the mlfq policy (the kernel) writes an event log; use --policy mlfq\n"),
    (["simulate", str(G_WORKLOAD), "--policy", "lottery"],
     "agentrm: --policy: unknown policy 'lottery'; choose from mlfq, fifo, rr, priority, sliding-window, "
     "rolling-summary or all\n"),
    (["simulate", str(G_WORKLOAD), "--policy", "sliding-window"],
     "agentrm: --policy: none of sliding-window applies to this workload (task records)\n"),
    (["workload", "generate", "--scenario", "paper", "--seed", "1", "--load", "0"],
     "agentrm: load: must be > 0, got 0.0\n"),
])
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Bad arguments and missing files exit 2 with a one-line message naming what was wrong."""
    assert run(capsys, *argv) == (2, "", message)


class _FakeTerminal:
    """A text stream that claims to be (or not to be) a terminal, recording what is written."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.written: list[str] = []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_bar_only_on_a_terminal() -> None:
    """The progress bar draws (and erases itself) on a TTY past its delay, and never on a pipe."""
    from agentrm.adapters.cli import Progress

    tty, pipe = _FakeTerminal(True), _FakeTerminal(False)
    for stream in (tty, pipe):
        bar = Progress(200, "simulating", stream, delay_s=0.0)  # type: ignore[arg-type]
        bar.update(100)
        bar.close()
    assert pipe.written == []
    assert tty.written[0] == "\rsimulating [###############               ]  50.0%"
    assert tty.written[1].startswith("\r ") and tty.written[1].endswith("\r")
    quiet = _FakeTerminal(True)
    slow = Progress(200, "x", quiet, delay_s=3600.0)  # type: ignore[arg-type]
    slow.update(100)
    slow.close()
    assert quiet.written == []


def test_simulate_check_passes_on_the_golden_workload(capsys: pytest.CaptureFixture[str]) -> None:
    """simulate --check runs every invariant at every mlfq step and exits 0 when all hold."""
    code, out, _ = run(capsys, "simulate", str(G_WORKLOAD), "--check")
    assert code == 0 and "mlfq" in out


def test_simulate_check_reports_a_violation() -> None:
    """The --check hook raises at the first broken invariant, naming the step."""
    from agentrm.adapters.cli import _checker, _Violated
    from agentrm.kernel.scheduler.events import ClockAdvanced

    initial, reduce = kernel_reducer()
    config = SchedulerConfig()
    hook = _checker()
    before = initial(config)
    after, effects = reduce(before, ClockAdvanced(5))
    hook(before, ClockAdvanced(5), after, effects)
    # One lane too many, with its derived index kept in step, so only S2 is broken.
    broken = attrs.evolve(after, lanes=after.lanes + (None,), lane_deadlines=after.lane_deadlines + (None,))
    with pytest.raises(_Violated) as info:
        hook(after, ClockAdvanced(6), broken, ())
    assert info.value.seq == 2
    assert [v.invariant for v in info.value.violations] == ["S2"]  # type: ignore[attr-defined]
