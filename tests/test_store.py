"""Tests of the SQLite store on real files: archive, search, contexts, journal, snapshots."""

from __future__ import annotations

import itertools
import json
import pathlib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrm.adapters.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    JournalRecord,
    Store,
    StoreError,
    fts_query,
)
from agentrm.kernel.context.types import Entry

TRICKY = [
    'it\'s "quoted" -- DROP TABLE entries; --',
    "NEAR(a b) AND c OR NOT d* ^e :f (g)",
    "naïve café 東京 🙂 עברית \u200b",
    "nul\x00inside",
    "",
]


def entry(seq: int, text: str, *, key: bool = False, entry_id: str | None = None) -> Entry:
    return Entry(
        entry_id=f"e{seq}" if entry_id is None else entry_id,
        seq=seq,
        role="user",
        text=text,
        tokens=len(text) // 4 + 1,
        key=key,
    )


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[Store]:
    with Store.create(tmp_path / "agents.db") as s:
        yield s


@attrs.frozen
class Ctx:
    agent: str
    entries: tuple[Entry, ...]
    budget: int


# ---------------------------------------------------------------- survives the process

WRITER = """
import json, sys
from agentrm.adapters.store import JournalRecord, Store
from agentrm.kernel.context.types import Entry
texts = json.loads(sys.argv[2])
with Store.open(sys.argv[1]) as s:
    s.archive("ag'ent\\"1", [Entry(f"id{i}", i, "user", t, 3, i % 2 == 0)
                            for i, t in enumerate(texts)])
    s.save_context("ag'ent\\"1", {"hot": texts, "n": 7})
    s.append_journal([JournalRecord(i, '{"e": %d}' % i, "[]") for i in (1, 2, 3)])
    s.save_snapshot(2, '{"state": 2}')
"""

READER = """
import json, sys
import attrs
from agentrm.adapters.store import Store
with Store.open(sys.argv[1], create=False) as s:
    a = "ag'ent\\"1"
    print(json.dumps({
        "archived": [attrs.asdict(e) for e in s.archived(a)],
        "search": [e.seq for e in s.search(a, sys.argv[2])],
        "context": s.load_context(a),
        "snapshot": s.latest_snapshot(),
        "journal": [attrs.astuple(r) for r in s.journal_after(2)],
    }))
"""


def test_write_exit_reopen_in_new_process_recalls_equal(tmp_path: pathlib.Path) -> None:
    """What one process writes and commits, a new process reads back exactly."""
    path = tmp_path / "agents.db"
    texts = TRICKY[:4]
    subprocess.run([sys.executable, "-c", WRITER, str(path), json.dumps(texts)], check=True)
    out = subprocess.run(
        [sys.executable, "-c", READER, str(path), "café OR"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out) == {
        "archived": [
            {"entry_id": f"id{i}", "seq": i, "role": "user", "text": t, "tokens": 3,
             "key": i % 2 == 0}
            for i, t in enumerate(texts)
        ],
        "search": [1, 2],
        "context": {"hot": texts, "n": 7},
        "snapshot": [2, '{"state": 2}'],
        "journal": [[3, '{"e": 3}', "[]"]],
    }


# ---------------------------------------------------------------- refusing bad files


def _bytes_and_siblings(path: pathlib.Path) -> tuple[bytes, list[str]]:
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


def _foreign_db(path: pathlib.Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('alice')")
    conn.commit()
    conn.close()


def _newer_store(path: pathlib.Path) -> None:
    Store.create(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    conn.commit()
    conn.close()


def _garbage(path: pathlib.Path) -> None:
    path.write_bytes(b"this is not a database\n" * 100)


def _corrupt_pages(path: pathlib.Path) -> None:
    # A valid SQLite header followed by nonsense: the damage shows when the schema is read.
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)


def _short(path: pathlib.Path) -> None:
    path.write_bytes(b"SQLite format 3\x00\x10")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_foreign_db, "not an agentrm store"),
        (_newer_store, f"schema version {SCHEMA_VERSION + 1} is newer"),
        (_garbage, "not a SQLite database"),
        (_corrupt_pages, "corrupt or not a SQLite database"),
        (_short, "not a SQLite database"),
    ],
)
def test_bad_files_are_refused_by_name_and_left_unchanged(
    tmp_path: pathlib.Path, make: object, message: str
) -> None:
    """A foreign, newer, garbage, corrupt or truncated file raises StoreError naming it; no byte changes."""
    path = tmp_path / "odd.db"
    assert callable(make)
    make(path)
    before = _bytes_and_siblings(path)
    for create in (True, False):
        with pytest.raises(StoreError, match=message) as err:
            Store.open(path, create=create)
        assert str(path) in str(err.value)
    assert _bytes_and_siblings(path) == before


def test_missing_file_without_create_is_refused_and_not_created(tmp_path: pathlib.Path) -> None:
    """Opening a missing file with create=False raises StoreError naming it and creates nothing."""
    path = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="no such store file") as err:
        Store.open(path, create=False)
    assert str(path) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_create_refuses_an_existing_file_and_empty_files_need_create(tmp_path: pathlib.Path) -> None:
    """Store.create never replaces a file; an empty file opens only with create=True."""
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="already exists"):
        Store.create(path)
    with pytest.raises(StoreError, match="empty database"):
        Store.open(path, create=False)
    assert path.read_bytes() == b""
    with Store.open(path) as s:
        assert s.archive_agents() == ()
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "no" / "such.db")


def test_new_store_is_stamped_and_in_wal_mode(tmp_path: pathlib.Path) -> None:
    """A new file carries the application id, schema version and WAL journal mode."""
    path = tmp_path / "agents.db"
    Store.create(path).close()
    conn = sqlite3.connect(path)
    got = (
        conn.execute("PRAGMA application_id").fetchone()[0],
        conn.execute("PRAGMA user_version").fetchone()[0],
        conn.execute("PRAGMA journal_mode").fetchone()[0],
        sorted(conn.execute("SELECT key, value FROM meta").fetchall()),
    )
    conn.close()
    assert got == (
        APPLICATION_ID,
        SCHEMA_VERSION,
        "wal",
        [("format", "agentrm-store"), ("schema_version", str(SCHEMA_VERSION))],
    )


# ---------------------------------------------------------------- archive


def test_archive_is_idempotent_and_never_overwrites(store: Store) -> None:
    """Re-archiving identical entries is a no-op; a conflicting seq or entry_id is refused, nothing written."""
    first = [entry(0, "alpha"), entry(1, "beta", key=True)]
    assert store.archive("a", first) == 2
    assert store.archive("a", first + [entry(2, "gamma")]) == 1
    with pytest.raises(StoreError, match="seq 1 is already archived with different content"):
        store.archive("a", [entry(3, "delta"), entry(1, "BETA", key=True)])
    with pytest.raises(StoreError, match="entry_id 'e0' is already archived at seq 0, not 4"):
        store.archive("a", [entry(4, "eps", entry_id="e0")])
    with pytest.raises(StoreError, match="two different entries in one batch"):
        store.archive("a", [entry(5, "x"), entry(5, "y")])
    with pytest.raises(StoreError, match="appears at seq 5 and seq 6 in one batch"):
        store.archive("a", [entry(5, "x", entry_id="z"), entry(6, "y", entry_id="z")])
    assert store.archived("a") == (entry(0, "alpha"), entry(1, "beta", key=True), entry(2, "gamma"))
    assert store.archived("a", 1, 1) == (entry(1, "beta", key=True),)
    assert store.archive_agents() == ("a",)
    assert (store.last_archived_seq("a"), store.last_archived_seq("b")) == (2, None)


def test_archived_rows_cannot_be_updated_even_by_raw_sql(store: Store) -> None:
    """A trigger makes archived text immutable, whatever code touches the file."""
    store.archive("a", [entry(0, "original")])
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        store.db.execute("UPDATE entries SET text = 'changed'")
    assert store.archived("a") == (entry(0, "original"),)


@pytest.mark.parametrize(
    ("agent", "bad", "message"),
    [
        ("", entry(0, "x"), "agent id must not be empty"),
        ("a", "not an entry", "entry 1 must be an Entry"),
        ("a", attrs.evolve(entry(0, "x"), seq=-1), "field 'seq' must be an int"),
        ("a", attrs.evolve(entry(0, "x"), tokens=True), "field 'tokens' must be an int"),
        ("a", attrs.evolve(entry(0, "x"), text="\ud800"), "field 'text' is not valid Unicode"),
        ("a", attrs.evolve(entry(0, "x"), role=None), "field 'role' must be a str"),  # type: ignore[arg-type]
        ("a", attrs.evolve(entry(0, "x"), key=1), "field 'key' must be a bool"),  # type: ignore[arg-type]
    ],
)
def test_bad_entries_are_refused_by_field(store: Store, agent: str, bad: object, message: str) -> None:
    """Each malformed entry raises StoreError naming the field, and nothing is archived."""
    with pytest.raises(StoreError, match=message):
        store.archive(agent, [entry(9, "fine"), bad])  # type: ignore[list-item]
    assert store.archive_agents() == ()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store for the property tests, which prefix each example's agent id with a fresh
    number so examples never see each other's entries (creating a file per example
    would spend the time budget on fsyncs)."""
    with Store.create(tmp_path_factory.mktemp("shared") / "s.db") as s:
        yield s


_EXAMPLE = itertools.count()


@given(
    agent=st.text(min_size=1),
    items=st.lists(st.tuples(st.text(), st.text(), st.text(), st.booleans()), min_size=1, max_size=5),
    query=st.text(),
)
def test_any_text_round_trips_and_any_query_is_safe(
    shared: Store, agent: str, items: list[tuple[str, str, str, bool]], query: str
) -> None:
    """Arbitrary unicode, quotes, SQL and FTS syntax in ids, text and contexts round-trip; any query runs."""
    entries = tuple(
        Entry(entry_id=f"{i}:{eid}", seq=i, role=role, text=text, tokens=i, key=key)
        for i, (eid, role, text, key) in enumerate(items)
    )
    agent = f"{next(_EXAMPLE)}\x1f{agent}"
    shared.archive(agent, entries)
    found = shared.search(agent, query, limit=100)
    assert shared.archived(agent) == entries
    assert set(found) <= set(entries)
    assert [e.seq for e in found] == sorted(e.seq for e in found)
    doc = {query: [text for _, _, text, _ in items], "agent": agent}
    shared.save_context(agent, doc)
    assert (shared.load_context(agent), agent in shared.hibernated_agents()) == (doc, True)


SEARCHABLE = st.text(
    alphabet=st.sampled_from("abcxyzAZ019_-/.\"'*^:()é東京 \n"), min_size=1, max_size=30
)


@given(agent=st.text(min_size=1, max_size=5), texts=st.lists(SEARCHABLE, min_size=1, max_size=4),
       data=st.data())
def test_a_chunk_of_archived_text_finds_its_entry(
    shared: Store, agent: str, texts: list[str], data: st.DataObject
) -> None:
    """Searching for any word-bearing chunk of an archived text returns that entry."""
    entries = tuple(entry(i, t) for i, t in enumerate(texts))
    target = data.draw(st.sampled_from(entries))
    chunks = [c for c in target.text.split() if any(ch.isalnum() for ch in c)]
    agent = f"{next(_EXAMPLE)}\x1f{agent}"
    shared.archive(agent, entries)
    if chunks:
        chunk = data.draw(st.sampled_from(chunks))
        assert target in shared.search(agent, chunk, limit=len(entries))
    else:
        assert shared.search(agent, target.text) == ()


def test_search_ranks_by_relevance_then_returns_seq_order(store: Store) -> None:
    """The best-matching entries are chosen (ties by seq) and come back in seq order, per agent."""
    store.archive(
        "a",
        [
            entry(0, "alpha"),
            entry(1, "unrelated words"),
            entry(2, "beta"),
            entry(3, "alpha beta gamma deployment"),
            entry(4, "the deploy target is src/main.py"),
        ],
    )
    store.archive("b", [entry(0, "alpha beta gamma")])
    assert store.search("a", "gamma beta alpha", limit=2) == (
        entry(0, "alpha"),
        entry(3, "alpha beta gamma deployment"),
    )
    assert store.search("a", "alpha beta", require_all=True) == (
        entry(3, "alpha beta gamma deployment"),
    )
    assert store.search("a", "targets main.py", limit=5) == (
        entry(4, "the deploy target is src/main.py"),
    )
    assert store.search("a", "NEAR(alpha OR) *", limit=0) == ()
    assert store.search("nobody", "alpha") == ()
    with pytest.raises(StoreError, match="limit must be >= 0"):
        store.search("a", "alpha", limit=-1)


def test_ranked_search_returns_best_match_first(store: Store) -> None:
    """With ranked=True the same best matches come back best first (BM25, ties by seq), the order SearchFound expects."""
    store.archive("a", [entry(0, "alpha"), entry(1, "beta"), entry(2, "alpha beta gamma"), entry(3, "gamma")])
    assert store.search("a", "gamma beta alpha", limit=3, ranked=True) == (
        entry(2, "alpha beta gamma"),
        entry(0, "alpha"),
        entry(1, "beta"),
    )
    assert store.search("a", "gamma beta alpha", limit=3) == (entry(0, "alpha"), entry(1, "beta"), entry(2, "alpha beta gamma"))


def test_fts_query_quotes_every_chunk() -> None:
    """FTS operators, quotes and punctuation-only chunks become inert quoted strings or vanish."""
    assert fts_query('NEAR(x* OR y^ -- a"b') == '"NEAR(x*" OR "OR" OR "y^" OR "a""b"'
    assert fts_query("a b", require_all=True) == '"a" AND "b"'
    assert fts_query(" -- ** () ") == ""
    assert fts_query("a\x00b") == '"a" OR "b"'
    assert fts_query("b a b A") == '"b" OR "a" OR "A"'


# ---------------------------------------------------------------- hibernated contexts


def test_contexts_round_trip_as_dicts_and_attrs_instances(store: Store) -> None:
    """Hibernated contexts come back equal, as dicts or as their attrs class; saves replace."""
    ctx = Ctx(agent="a", entries=(entry(0, TRICKY[2]), entry(1, TRICKY[0], key=True)), budget=9)
    store.save_context("a", ctx)
    store.save_context("b", {"x": [1, "é"], "y": None})
    store.save_context("b", {"x": [2]})
    assert store.load_context("a", Ctx) == ctx
    assert store.load_context("b") == {"x": [2]}
    assert store.load_context("a") == json.loads(store.converter.dumps(ctx))
    assert store.load_context("c") is None
    assert store.hibernated_agents() == ("a", "b")
    assert store.delete_context("a") is True
    assert store.delete_context("a") is False
    assert store.hibernated_agents() == ("b",)


def test_bad_contexts_are_refused(store: Store) -> None:
    """Non-JSON-able values, other types and a wrong class on load raise StoreError naming the agent."""
    with pytest.raises(StoreError, match="agent 'a' is not JSON-able"):
        store.save_context("a", {"x": object()})
    with pytest.raises(StoreError, match="must be a dict or an attrs instance, got list"):
        store.save_context("a", [1])
    with pytest.raises(StoreError, match="not JSON-able"):
        store.save_context("a", {"x": float("nan")})
    store.save_context("a", entry(0, "x"))
    with pytest.raises(StoreError, match="saved as agentrm.kernel.context.types.Entry, not .*Ctx"):
        store.load_context("a", Ctx)
    assert store.hibernated_agents() == ("a",)


# ---------------------------------------------------------------- journal and snapshots


def test_journal_is_gapless_ordered_and_pages_across_batches(store: Store) -> None:
    """Records appended in batches come back in seq order after any seq, across page boundaries."""
    records = [JournalRecord(i, json.dumps({"i": i}), "[]") for i in range(1, 2501)]
    for lo in range(0, 2500, 700):
        store.append_journal(records[lo : lo + 700])
    assert store.last_journal_seq() == 2500
    assert list(store.journal_after(0)) == records
    assert list(store.journal_after(1234)) == records[1234:]
    assert list(store.journal_after(2500)) == []


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([JournalRecord(2, "{}", "[]"), JournalRecord(4, "{}", "[]")], "record 1 has seq 4, expected 3"),
        ([JournalRecord(3, "{}", "[]")], "record 0 has seq 3, expected 2"),
        ([JournalRecord(2, "{}", "[]"), JournalRecord(3, "{", "[]")], "seq 3 field 'event' is not valid JSON"),
        ([JournalRecord(2, "{}", "[]"), JournalRecord(3, "{}", "nope")], "seq 3 field 'effects'"),
        ([JournalRecord(2, "{}", "[]"), (3, "{}", "[]")], "record 1 must be a JournalRecord"),
    ],
)
def test_a_bad_journal_batch_writes_nothing(store: Store, batch: list[JournalRecord], message: str) -> None:
    """A gap, a bad seq, bad JSON or a wrong type anywhere in a batch leaves the journal as it was."""
    store.append_journal([JournalRecord(1, "{}", "[]")])
    with pytest.raises(StoreError, match=message):
        store.append_journal(batch)
    assert list(store.journal_after(0)) == [JournalRecord(1, "{}", "[]")]


def test_snapshots_are_idempotent_bounded_by_the_journal_and_prunable(store: Store) -> None:
    """The latest snapshot wins; repeats are no-ops; conflicts and future seqs are refused."""
    assert store.latest_snapshot() is None
    store.save_snapshot(0, '{"s": 0}')
    store.append_journal([JournalRecord(i, "{}", "[]") for i in (1, 2, 3)])
    store.save_snapshot(2, '{"s": 2}')
    store.save_snapshot(2, '{"s": 2}')
    store.save_snapshot(3, '{"s": 3}')
    with pytest.raises(StoreError, match="different snapshot is already saved at seq 2"):
        store.save_snapshot(2, '{"s": "other"}')
    with pytest.raises(StoreError, match=r"snapshot seq 4 is outside the journal \(0..3\)"):
        store.save_snapshot(4, "{}")
    with pytest.raises(StoreError, match="snapshot seq 5 is not valid JSON"):
        store.save_snapshot(5, "{")
    assert store.latest_snapshot() == (3, '{"s": 3}')
    assert store.prune_snapshots(keep=1) == 2
    assert store.latest_snapshot() == (3, '{"s": 3}')
    assert store.db.execute("SELECT seq FROM snapshots").fetchall() == [(3,)]


def test_atomic_groups_calls_and_rolls_back_on_error(store: Store) -> None:
    """An exception inside Store.atomic() undoes every write made in it."""
    with pytest.raises(RuntimeError), store.atomic():
        store.archive("a", [entry(0, "x")])
        store.append_journal([JournalRecord(1, "{}", "[]")])
        store.save_context("a", {"k": 1})
        raise RuntimeError("crash between writes")
    assert (store.archive_agents(), store.last_journal_seq(), store.hibernated_agents()) == ((), 0, ())
    with store.atomic():
        store.archive("a", [entry(0, "x")])
        store.append_journal([JournalRecord(1, "{}", "[]")])
    assert (store.archived("a"), store.last_journal_seq()) == ((entry(0, "x"),), 1)


def test_a_store_belongs_to_the_thread_that_opened_it(store: Store) -> None:
    """Using a store from another thread fails loudly instead of racing."""
    errors: list[BaseException] = []

    def use() -> None:
        try:
            store.archived("a")
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert [type(e) for e in errors] == [sqlite3.ProgrammingError]


def test_the_kernels_agent_context_round_trips(store: Store) -> None:
    """A hibernated AgentContext of the context kernel comes back equal through cattrs."""
    from agentrm.kernel.context.state import AgentContext
    from agentrm.kernel.context.types import Summary

    ctx = AgentContext(
        agent="a",
        next_seq=3,
        hot=(entry(2, TRICKY[1]),),
        warm_keys=(entry(0, TRICKY[2], key=True),),
        summaries=(Summary("s0", 1, 1, "summary", 2),),
        archived=((1, "e1"),),
    )
    store.save_context("a", ctx)
    assert store.load_context("a", AgentContext) == ctx


CRASHER = """
import sys
from agentrm.adapters.store import JournalRecord, Store
from agentrm.kernel.context.types import Entry
s = Store.open(sys.argv[1])
n = 0
while True:
    with s.atomic():
        s.append_journal([JournalRecord(10 * n + i, '{"n": %d}' % n, "[]") for i in range(1, 11)])
        s.archive("a", [Entry(f"e{n}", n, "user", "x" * 4000, 1000)])
    n += 1
    if n == 20:
        print("ready", flush=True)
"""


def test_kill_9_mid_write_leaves_whole_batches_only(tmp_path: pathlib.Path) -> None:
    """A writer killed with SIGKILL mid-run leaves a gapless journal of whole batches, matching the archive."""
    path = tmp_path / "agents.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    finally:
        proc.kill()  # SIGKILL: no Python cleanup, no close, no checkpoint
        proc.wait()
    with Store.open(path, create=False) as s:
        last = s.last_journal_seq()
        batches = last // 10
        assert (last % 10, batches >= 20) == (0, True)
        assert [r.seq for r in s.journal_after(0)] == list(range(1, last + 1))
        assert [e.seq for e in s.archived("a")] == list(range(batches))
        s.append_journal([JournalRecord(last + 1, "{}", "[]")])
        assert s.last_journal_seq() == last + 1


def test_paths_with_uri_characters_work(tmp_path: pathlib.Path) -> None:
    """File names with spaces, %, ?, # and non-ASCII characters open and reopen, leaving no stray files."""
    path = tmp_path / "my agents 100%?#名前.db"
    with Store.create(path) as s:
        s.archive("a", [entry(0, "x")])
    with Store.open(path, create=False) as s:
        assert s.archived("a") == (entry(0, "x"),)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


OPENER = """
import os, sys, time
from agentrm.adapters.store import Store
from agentrm.kernel.context.types import Entry
print("ready", flush=True)
while not os.path.exists(sys.argv[3]):  # start together, to race on creation
    time.sleep(0.0005)
with Store.open(sys.argv[1]) as s:
    s.archive(sys.argv[2], [Entry("e0", 0, "user", sys.argv[2], 1)])
"""


def test_processes_creating_the_same_store_at_once_all_succeed(tmp_path: pathlib.Path) -> None:
    """Several processes opening one missing file with create=True share one initialized store."""
    path, go = tmp_path / "agents.db", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path), f"agent-{i}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    assert [p.stdout.readline() if p.stdout else "" for p in procs] == ["ready\n"] * 3
    go.touch()
    outcomes = [(p.wait(), p.stderr.read() if p.stderr else "") for p in procs]
    assert outcomes == [(0, "")] * 3
    with Store.open(path, create=False) as s:
        assert s.archive_agents() == ("agent-0", "agent-1", "agent-2")


def test_verify_finds_damage_that_open_cannot_see(tmp_path: pathlib.Path) -> None:
    """A store with a garbled data page opens, and verify() reports the damage by file name."""
    path = tmp_path / "agents.db"
    with Store.create(path) as s:
        s.archive("a", [entry(i, f"entry number {i} " * 20) for i in range(300)])
        s.verify()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 10 * page
    data[5 * page : 6 * page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))
    with Store.open(path, create=False) as s, pytest.raises(StoreError) as err:
        s.verify()
    assert str(err.value).startswith(f"{path}: damaged: ")


def test_a_lock_held_past_the_busy_timeout_is_reported_as_busy(tmp_path: pathlib.Path) -> None:
    """A file another connection keeps exclusively locked is refused as busy, not as corrupt."""
    path = tmp_path / "agents.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"busy: another process kept it locked"):
            Store.open(path, busy_timeout_s=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Store.open(path) as s:
        assert s.archive_agents() == ()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([JournalRecord(2, "{}", "[]"), JournalRecord(4, "{}", "[]")], "record 1 has seq 4, expected 3"),
        ([JournalRecord(3, "{}", "[]")], "record 0 has seq 3, expected 2"),
        ([JournalRecord(2, "{}", "[]"), (3, "{}", "[]")], "record 1 must be a JournalRecord"),
    ],
)
def test_a_trusted_journal_batch_is_still_gapless(store: Store, batch: list[JournalRecord], message: str) -> None:
    """A trusted batch skips only the JSON parse: a gap, a bad seq or a wrong type still writes nothing."""
    store.append_journal([JournalRecord(1, "{}", "[]")], trusted=True)
    with pytest.raises(StoreError, match=message):
        store.append_journal(batch, trusted=True)
    assert list(store.journal_after(0)) == [JournalRecord(1, "{}", "[]")]


@given(st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=5), st.booleans())
def test_journal_batches_of_any_size_append_whole_and_in_order(tmp_path_factory: pytest.TempPathFactory,
                                                               sizes: list[int], trusted: bool) -> None:
    """Batches of any size (cut into multi-row INSERTs of 256, 128, ... 1 rows) append every record once, in seq order."""
    store = Store.create(tmp_path_factory.mktemp("journal") / "j.db")
    try:
        records: list[JournalRecord] = []
        for size in sizes:
            batch = [JournalRecord(len(records) + i + 1, f'{{"i":{len(records) + i + 1}}}', "[]") for i in range(size)]
            store.append_journal(batch, trusted=trusted)
            records += batch
        assert (store.last_journal_seq(), list(store.journal_after(0))) == (len(records), records)
    finally:
        store.close()
