"""Benchmark of the SQLite store (a command, not a test).

    python -m agentrm.adapters.bench_store [--entries N] [--agents A]

Prints, for a fresh store in a temporary directory: archive cost per entry (batches of
100), journal append cost per record (batches of 1 and of 100), full-text search
latency over the archive, the summarizer's and marker's cost per entry, and the
marker's precision and recall against the synthetic context scenario's planted facts. Timings are
wall-clock medians of repeated runs on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable

from agentrm.adapters.keymark import HeuristicMarker
from agentrm.adapters.store import JournalRecord, Store
from agentrm.adapters.summarize import ExtractiveSummarizer, count_tokens
from agentrm.kernel.context.types import Entry

#: Synthetic vocabulary: 5,000 words, so a word occurs in about 1 % of entries, as
#: topical words do in a long agent history; "step" occurs in every entry (worst case).
_VOCAB = 5000


def _text(i: int) -> str:
    # A deterministic pseudo-sentence: every entry differs, words recur across entries.
    words = [f"w{(i * 7919 + k * 104729) % _VOCAB}" for k in range(12)]
    return f"Step {i}: " + " ".join(words) + f". Ticket T-{i % 997} costs ${i % 89}."


def _median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per measurement."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--entries", type=int, default=20_000, help="entries per agent archived")
    ap.add_argument("--agents", type=int, default=5, help="agents sharing the archive")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d, Store.create(pathlib.Path(d) / "bench.db") as s:
        entries = [
            Entry(f"e{i}", i, "user", t, count_tokens(t)) for i, t in enumerate(map(_text, range(args.entries)))
        ]
        t0 = time.perf_counter()
        for a in range(args.agents):
            for lo in range(0, len(entries), 100):
                s.archive(f"agent-{a}", entries[lo : lo + 100])
        total = args.agents * len(entries)
        print(f"archive: {1e6 * (time.perf_counter() - t0) / total:.1f} us/entry "
              f"({total} entries, batches of 100)")

        seq = 0

        def journal(batch: int, n: int) -> float:
            nonlocal seq
            t = time.perf_counter()
            for _ in range(n // batch):
                s.append_journal(
                    [JournalRecord(seq + k, '{"kind": "Heartbeat", "task": "t1"}', "[]")
                     for k in range(1, batch + 1)]
                )
                seq += batch
            return 1e6 * (time.perf_counter() - t) / n

        print(f"journal append: {journal(1, 2000):.1f} us/record (batches of 1), "
              f"{journal(100, 20_000):.1f} us/record (batches of 100)")

        for query in (_text(7).split()[3], "T-42 w17", "nothing matches this", "step"):
            ms = 1e3 * _median_s(lambda: s.search("agent-0", query, limit=10), 20)
            print(f"search {query!r}: {ms:.2f} ms (archive of {total} entries)")

        sample = entries[:1000]
        summ = ExtractiveSummarizer()
        us = 1e6 * _median_s(lambda: [summ.summarize(sample[i : i + 20]) for i in range(0, 1000, 20)], 5)
        print(f"extractive summary: {us / 1000:.1f} us/entry (ranges of 20 entries)")
        marker = HeuristicMarker()
        us = 1e6 * _median_s(lambda: [marker(e.text, e.role) for e in sample], 5)
        print(f"heuristic marker: {us / 1000:.1f} us/entry")
        _marker_vs_planted_facts(marker)


def _marker_vs_planted_facts(marker: HeuristicMarker, seeds: range = range(1, 4)) -> None:
    """Score the marker against the context scenario's planted facts.

    The fact labels are used here only to score; the marker sees text and role alone.
    The scenario is synthetic (facts carry codes, filler has no digits), so this is an
    upper bound on real-world precision, not an estimate of it.
    """
    from agentrm.adapters.scenarios import generate
    from agentrm.adapters.workload import Message

    tp = fp = fn = 0
    for seed in seeds:
        for r in generate("context", seed).context:
            if isinstance(r, Message):
                marked, fact = marker(r.text, r.role), r.fact is not None
                tp += marked and fact
                fp += marked and not fact
                fn += fact and not marked
    print(f"marker vs planted facts (context scenario, seeds {seeds.start}-{seeds.stop - 1}): "
          f"recall {tp}/{tp + fn}, precision {tp}/{tp + fp}")


if __name__ == "__main__":
    main()
