"""The SQLite store: agentrm's cold tier and its durable journal, in one database file.

One file holds

* ``meta`` -- the format name and schema version (also stamped in the SQLite header as
  ``PRAGMA application_id`` / ``user_version``), so a foreign or newer file is refused;
* ``agents`` and ``entries`` -- the archive of context entries, per agent, verbatim
  and append-only, full-text indexed with FTS5 (``entries_fts``, keyed by the agent's
  integer id as well as the text) so that recall by query works;
* ``contexts`` -- hibernated contexts, one JSON document per agent (never pickle);
* ``snapshots`` and ``journal`` -- for the runtime's durable mode: kernel snapshots
  ``(seq, JSON text)`` and an append-only, gapless event journal. Journal records are
  numbered from 1; a snapshot at ``seq`` is the state after journal records ``1..seq``
  (a snapshot at 0 is the initial state), so recovery is
  ``latest_snapshot()`` then a fold over ``journal_after(seq)``.

The database runs in WAL mode, and every write is one transaction (``_write``: a
``BEGIN IMMEDIATE`` transaction, or a ``db.atomic()`` savepoint inside one), so a
failing batch leaves nothing half-written.

Threads: a ``sqlite3`` connection belongs to the thread that opened it (Python refuses
to use it from another one). The asyncio runtime must give a ``Store`` one dedicated
writer thread and do every call from it, or open one ``Store`` per thread (WAL lets
readers run beside the single writer).

Processes: several may open one store (WAL: readers never wait; writers take turns,
each write transaction starting with ``BEGIN IMMEDIATE`` and waiting up to
``busy_timeout_s`` for the lock).

Durability: ``synchronous=NORMAL`` by default, which in WAL mode survives a process
crash (``kill -9``) with every committed transaction intact; pass ``sync_full=True``
to also survive power loss, at the cost of an fsync per commit.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar, overload

import attrs
import cattrs.preconf.json
import sqlite_utils

from agentrm.kernel.context.types import Entry

__all__ = [
    "APPLICATION_ID",
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "JournalRecord",
    "Store",
    "StoreError",
    "fts_query",
]

T = TypeVar("T")

#: Stamped into the SQLite header (``PRAGMA application_id``): the bytes "agrm". It
#: lets ``file(1)``-style tools and this module recognise the file without a query.
APPLICATION_ID: Final = 0x6167726D
#: The ``format`` value in the ``meta`` table.
FORMAT_NAME: Final = "agentrm-store"
#: Bumped on every incompatible schema change; a file with a larger number is refused.
SCHEMA_VERSION: Final = 1

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
#: The SQLite file header is exactly 100 bytes; a shorter non-empty file is not a database.
_SQLITE_HEADER_BYTES: Final = 100
#: Rows per ``IN (...)`` lookup; far below SQLite's 32,766 bound-variable limit.
_CHUNK: Final = 500
#: Rows fetched per page by ``journal_after``, so iteration never holds a cursor open
#: across the caller's own writes.
_PAGE: Final = 1000
#: Most journal rows per INSERT statement (3 variables each: 768, below even SQLite's
#: old 999-variable limit). sqlite3 releases the GIL around every statement step, and
#: taking it back waits for whichever thread holds it -- the event loop, busy running
#: tasks -- so a row per step starved the writer thread for seconds under load.
_JOURNAL_ROWS: Final = 256


def _journal_insert(rows: int) -> str:
    """The INSERT of ``rows`` journal records in one statement."""
    return "INSERT INTO journal (seq, event, effects) VALUES " + ",".join(["(?,?,?)"] * rows)


#: The statements for 256, 128, ..., 1 rows: a batch is cut into these sizes, so a
#: handful of prepared statements (cached by sqlite3) serve every batch size.
_JOURNAL_INSERTS: Final = tuple((n, _journal_insert(n)) for n in (256, 128, 64, 32, 16, 8, 4, 2, 1))

_TABLES: Final = ("agents", "contexts", "entries", "journal", "meta", "snapshots")

# The schema of version 1. ``entries.id`` is an explicit INTEGER PRIMARY KEY because the
# FTS index refers to rows by rowid, and VACUUM may renumber an implicit rowid.
_SCHEMA_V1: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Agents get small integer ids so that the full-text index can hold the agent as one
    # digit-only token and intersect it with the query (see ``search``).
    "CREATE TABLE agents (id INTEGER PRIMARY KEY, agent TEXT NOT NULL UNIQUE)",
    """CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        agent_id INTEGER NOT NULL REFERENCES agents (id),
        seq INTEGER NOT NULL,
        entry_id TEXT NOT NULL,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        key INTEGER NOT NULL,
        UNIQUE (agent_id, seq),
        UNIQUE (agent_id, entry_id)
    )""",
    # porter: "deploys" finds "deployed"; remove_diacritics 2: "cafe" finds "café".
    """CREATE VIRTUAL TABLE entries_fts USING fts5(
        agent_id, text, content='entries', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
        INSERT INTO entries_fts(rowid, agent_id, text) VALUES (new.id, new.agent_id, new.text);
    END""",
    """CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
        INSERT INTO entries_fts(entries_fts, rowid, agent_id, text)
            VALUES ('delete', old.id, old.agent_id, old.text);
    END""",
    # The archive is append-only: archived text is never silently overwritten, even by
    # code that bypasses this module.
    """CREATE TRIGGER entries_bu BEFORE UPDATE ON entries BEGIN
        SELECT RAISE(ABORT, 'archived entries are immutable');
    END""",
    """CREATE TABLE contexts (
        agent TEXT PRIMARY KEY, kind TEXT NOT NULL, doc TEXT NOT NULL
    )""",
    "CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, text TEXT NOT NULL)",
    """CREATE TABLE journal (
        seq INTEGER PRIMARY KEY, event TEXT NOT NULL, effects TEXT NOT NULL
    )""",
)

#: ``kind`` of a hibernated context stored from a plain JSON dict.
_JSON_KIND: Final = "json"


class StoreError(Exception):
    """A store file that cannot be used, or a write that would break the store's rules.

    The message names the file and, for bad input, the agent, seq or field at fault.
    """


@attrs.frozen
class JournalRecord:
    """One kernel step in the durable journal: its gapless ``seq`` (from 1), the input
    event as JSON text, and the effects it produced as JSON text."""

    seq: int
    event: str
    effects: str


def fts_query(query: str, *, require_all: bool = False) -> str:
    """Turn free text into an FTS5 query that treats every character as plain text.

    Each whitespace-separated chunk becomes one double-quoted FTS5 string (inner ``"``
    doubled), so ``AND``, ``OR``, ``NOT``, ``NEAR``, ``*``, ``^``, ``:``, ``(``, ``)``
    and quotes lose their meaning; the tokenizer then splits a chunk like
    ``src/main.py`` into a phrase that matches those words adjacent. Chunks without a
    letter or digit are dropped (they can match nothing), repeats are dropped, and NUL
    separates words. The chunks are joined with ``OR`` (rank by how many match) or,
    with ``require_all``, ``AND``. Returns ``""`` when nothing searchable is left.

    >>> fts_query('NEAR(x* OR y^ -- a"b')
    '"NEAR(x*" OR "OR" OR "y^" OR "a""b"'
    """
    # FTS5's query parser stops at a NUL (an "unterminated string" error), so NUL
    # separates words here, as it does in the tokenizer.
    chunks = dict.fromkeys(  # repeats add nothing but parse and match time
        c for c in query.replace("\x00", " ").split() if any(ch.isalnum() for ch in c)
    )
    joiner = " AND " if require_all else " OR "
    return joiner.join('"' + c.replace('"', '""') + '"' for c in chunks)


def _check_text(path: pathlib.Path, where: str, value: object) -> str:
    """Return ``value`` if it is a str SQLite can store as UTF-8, else raise naming it."""
    if not isinstance(value, str):
        raise StoreError(f"{path}: {where} must be a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise StoreError(f"{path}: {where} is not valid Unicode text ({e.reason})") from None
    return value


def _check_json(path: pathlib.Path, where: str, value: object) -> str:
    """Return ``value`` if it is JSON text, else raise naming where it came from."""
    text = _check_text(path, where, value)
    try:
        json.loads(text)
    except ValueError as e:
        raise StoreError(f"{path}: {where} is not valid JSON ({e})") from None
    return text


def _kind_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _row_entry(row: Sequence[Any]) -> Entry:
    """Build an Entry from ``(seq, entry_id, role, text, tokens, key)``."""
    return Entry(
        entry_id=row[1], seq=row[0], role=row[2], text=row[3], tokens=row[4], key=bool(row[5])
    )


_ENTRY_COLS: Final = "seq, entry_id, role, text, tokens, key"


class Store:
    """An open agentrm store file. Make one with :meth:`open` or :meth:`create`.

    Use it as a context manager or call :meth:`close`. All methods must be called from
    the thread that opened the store (see the module docstring).
    """

    def __init__(self, db: sqlite_utils.Database, path: pathlib.Path) -> None:
        """Wrap an already validated database; call :meth:`open` instead."""
        self.db = db
        self.path = path
        #: The converter used for attrs documents; register hooks on it for field
        #: types cattrs does not handle out of the box.
        self.converter: cattrs.preconf.json.JsonConverter = cattrs.preconf.json.make_converter()

    # ---------------------------------------------------------------- opening

    @classmethod
    def create(
        cls, path: str | pathlib.Path, *, sync_full: bool = False, busy_timeout_s: float = 30.0
    ) -> Store:
        """Create a new store at ``path``; a file already there is an error, never replaced."""
        p = pathlib.Path(path)
        if p.exists() or p.is_symlink():
            raise StoreError(f"{p}: already exists; refusing to overwrite it")
        return cls.open(p, create=True, sync_full=sync_full, busy_timeout_s=busy_timeout_s)

    @classmethod
    def open(
        cls,
        path: str | pathlib.Path,
        *,
        create: bool = True,
        sync_full: bool = False,
        busy_timeout_s: float = 30.0,
    ) -> Store:
        """Open the store at ``path``, creating it if it is missing and ``create`` is true.

        ``busy_timeout_s`` is how long a call waits for another process's write lock
        before failing with "database is locked". It is generous because a lock holder
        may be checkpointing (an fsync) on a busy disk.

        Raises :class:`StoreError`, naming the file and leaving it untouched, if the
        file is missing (and ``create`` is false), is not a SQLite database, is some
        other application's database, or has a newer schema version than this code.
        """
        p = pathlib.Path(path)
        if p.is_dir():
            raise StoreError(f"{p}: is a directory, not a store file")
        existed = p.exists()
        if not existed:
            if not create:
                raise StoreError(f"{p}: no such store file (open with create=True to make one)")
            if not p.parent.is_dir():
                raise StoreError(f"{p}: directory {p.parent} does not exist")
        else:
            _check_header(p)
        mode = "rw" if existed else "rwc"
        try:
            conn = sqlite3.connect(
                f"{p.resolve().as_uri()}?mode={mode}", uri=True, timeout=busy_timeout_s
            )
        except sqlite3.Error as e:
            raise StoreError(f"{p}: cannot open ({e})") from None
        try:
            fresh = _inspect(conn, p)
            if fresh and not create:
                raise StoreError(f"{p}: empty database, not an agentrm store")
            db = sqlite_utils.Database(conn)
            # WAL and the sync level first: the schema is then written in WAL mode too.
            db.enable_wal()
            db.execute(f"PRAGMA synchronous={'FULL' if sync_full else 'NORMAL'}")
            if fresh:
                _initialize(db, p)
        except BaseException:
            # The file is not removed even if this call created it: another process
            # may be creating the same store at this moment, and an empty database
            # left behind is simply initialized by the next open.
            conn.close()
            raise
        return cls(db, p)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self) -> Store:
        """Return the store itself; it closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Store]:
        """Group several store calls into one transaction (nests with savepoints)."""
        with _write(self.db):
            yield self

    # ---------------------------------------------------------------- archive

    def archive(self, agent: str, entries: Iterable[Entry]) -> int:
        """Archive ``entries`` of ``agent`` verbatim, atomically; return how many were new.

        Archiving an entry already archived with the same content is a no-op, so a
        retried effect is harmless. A different entry at an archived ``seq``, or an
        archived ``entry_id`` at a different ``seq``, raises :class:`StoreError` and
        writes nothing: archived text is never overwritten.
        """
        self._check_agent(agent)
        batch: dict[int, Entry] = {}
        for i, e in enumerate(entries):
            self._check_entry(agent, i, e)
            prior = batch.setdefault(e.seq, e)
            if prior != e:
                raise StoreError(
                    f"{self.path}: agent {agent!r} seq {e.seq}: two different entries in one batch"
                )
        ids: dict[str, int] = {}
        for e in batch.values():
            if ids.setdefault(e.entry_id, e.seq) != e.seq:
                raise StoreError(
                    f"{self.path}: agent {agent!r} entry_id {e.entry_id!r} appears at seq "
                    f"{ids[e.entry_id]} and seq {e.seq} in one batch"
                )
        if not batch:
            return 0
        with _write(self.db):
            agent_id = self._ensure_agent(agent)
            existing = self._existing(agent, agent_id, batch, ids)
            new = [e for seq, e in sorted(batch.items()) if seq not in existing]
            # A prepared executemany rather than insert_all, whose per-row value
            # conversion and per-call schema reads took over half of archive's time.
            self.db.conn.executemany(
                "INSERT INTO entries (agent_id, seq, entry_id, role, text, tokens, key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(agent_id, e.seq, e.entry_id, e.role, e.text, e.tokens, int(e.key)) for e in new],
            )
        return len(new)

    def _agent_id(self, agent: str) -> int | None:
        """Return the agent's integer id, or None if it has never archived anything."""
        row = self.db.execute("SELECT id FROM agents WHERE agent = ?", [agent]).fetchone()
        return None if row is None else int(row[0])

    def _ensure_agent(self, agent: str) -> int:
        """Return the agent's integer id, adding the agent if new (call inside a transaction)."""
        found = self._agent_id(agent)
        if found is not None:
            return found
        cur = self.db.execute("INSERT INTO agents (agent) VALUES (?)", [agent])
        assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
        return cur.lastrowid

    def _existing(
        self, agent: str, agent_id: int, batch: Mapping[int, Entry], ids: Mapping[str, int]
    ) -> set[int]:
        """Return the seqs of ``batch`` already archived, raising on any conflict."""
        existing: set[int] = set()
        seqs = sorted(batch)
        for i in range(0, len(seqs), _CHUNK):
            part = seqs[i : i + _CHUNK]
            sql = (
                f"SELECT {_ENTRY_COLS} FROM entries WHERE agent_id = ? "
                f"AND seq IN ({','.join('?' * len(part))})"
            )
            for row in self.db.execute(sql, [agent_id, *part]):
                old = _row_entry(row)
                if old != batch[old.seq]:
                    raise StoreError(
                        f"{self.path}: agent {agent!r} seq {old.seq} is already archived with "
                        f"different content; archived entries are never overwritten"
                    )
                existing.add(old.seq)
        names = sorted(ids)
        for i in range(0, len(names), _CHUNK):
            part_ids = names[i : i + _CHUNK]
            sql = (
                f"SELECT entry_id, seq FROM entries WHERE agent_id = ? "
                f"AND entry_id IN ({','.join('?' * len(part_ids))})"
            )
            for entry_id, seq in self.db.execute(sql, [agent_id, *part_ids]):
                if seq != ids[entry_id]:
                    raise StoreError(
                        f"{self.path}: agent {agent!r} entry_id {entry_id!r} is already "
                        f"archived at seq {seq}, not {ids[entry_id]}"
                    )
        return existing

    def archived(
        self, agent: str, first_seq: int | None = None, last_seq: int | None = None
    ) -> tuple[Entry, ...]:
        """Return ``agent``'s archived entries with ``first_seq <= seq <= last_seq``, in seq order."""
        lo = -1 if first_seq is None else first_seq
        hi = (1 << 63) - 1 if last_seq is None else last_seq
        rows = self.db.execute(
            f"SELECT {_ENTRY_COLS} FROM entries "
            "WHERE agent_id = (SELECT id FROM agents WHERE agent = ?) AND seq BETWEEN ? AND ? "
            "ORDER BY seq",
            [agent, lo, hi],
        )
        return tuple(_row_entry(r) for r in rows)

    def last_archived_seq(self, agent: str) -> int | None:
        """Return the largest archived seq of ``agent``, or None if nothing is archived."""
        row = self.db.execute(
            "SELECT max(seq) FROM entries WHERE agent_id = (SELECT id FROM agents WHERE agent = ?)",
            [agent],
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def search(
        self, agent: str, query: str, *, limit: int = 10, require_all: bool = False, ranked: bool = False
    ) -> tuple[Entry, ...]:
        """Return up to ``limit`` of ``agent``'s archived entries that best match ``query``.

        ``query`` is plain text: FTS5 syntax in it is escaped (see :func:`fts_query`),
        so no query is ever a syntax error. Entries matching any word (all words with
        ``require_all``) are ranked by BM25, ties broken by archive order (earlier
        first); the best ``limit`` are returned in seq order, the order the agent saw
        them in, or with ``ranked`` best first -- the order the context kernel's
        ``SearchFound`` expects, so that a short window keeps the best match rather
        than the newest.
        """
        if limit < 0:
            raise StoreError(f"{self.path}: search limit must be >= 0, got {limit}")
        words = fts_query(query, require_all=require_all)
        agent_id = self._agent_id(agent)
        if not words or limit == 0 or agent_id is None:
            return ()
        # The agent's id token AND the words (restricted to the text column), so FTS5
        # intersects posting lists instead of ranking every agent's matches; the agent
        # column weighs 0 in BM25. Only the ``limit`` best rows are joined back.
        match = f'agent_id : "{agent_id}" AND text : ({words})'
        rows = self.db.execute(
            f"SELECT {', '.join('e.' + c for c in _ENTRY_COLS.split(', '))} FROM entries e "
            "JOIN (SELECT rowid AS id, bm25(entries_fts, 0.0, 1.0) AS score FROM entries_fts "
            "      WHERE entries_fts MATCH ? ORDER BY score, rowid LIMIT ?) m ON e.id = m.id "
            "ORDER BY m.score, m.id",  # a join keeps no order of its own: restate the ranking
            [match, limit],
        )
        found = tuple(_row_entry(r) for r in rows)
        return found if ranked else tuple(sorted(found, key=lambda e: e.seq))

    def archive_agents(self) -> tuple[str, ...]:
        """Return every agent with archived entries, sorted."""
        # BINARY collation orders UTF-8 bytes, which is code point order, as sorted() does.
        rows = self.db.execute(
            "SELECT agent FROM agents WHERE EXISTS "
            "(SELECT 1 FROM entries WHERE agent_id = agents.id) ORDER BY agent"
        )
        return tuple(r[0] for r in rows)

    # ---------------------------------------------------------------- hibernation

    def save_context(self, agent: str, value: object) -> None:
        """Store ``agent``'s hibernated context, replacing any earlier one.

        ``value`` is a JSON-able dict, or an attrs instance (serialized with
        :attr:`converter`; read it back with its class). Never pickled.
        """
        self._check_agent(agent)
        if isinstance(value, dict):
            kind = _JSON_KIND
            try:
                doc = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise StoreError(
                    f"{self.path}: context of agent {agent!r} is not JSON-able ({e})"
                ) from None
        elif attrs.has(type(value)):
            kind = _kind_of(type(value))
            try:
                doc = self.converter.dumps(value, ensure_ascii=False, allow_nan=False)
            except Exception as e:
                raise StoreError(
                    f"{self.path}: context of agent {agent!r} ({kind}) cannot be "
                    f"serialized ({e})"
                ) from None
        else:
            raise StoreError(
                f"{self.path}: context of agent {agent!r} must be a dict or an attrs "
                f"instance, got {type(value).__name__}"
            )
        _check_text(self.path, f"context of agent {agent!r}", doc)
        with _write(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO contexts (agent, kind, doc) VALUES (?, ?, ?)",
                [agent, kind, doc],
            )

    @overload
    def load_context(self, agent: str) -> dict[str, Any] | None: ...

    @overload
    def load_context(self, agent: str, cls: type[T]) -> T | None: ...

    def load_context(self, agent: str, cls: type[Any] | None = None) -> Any:
        """Return ``agent``'s hibernated context, or ``None`` if there is none.

        Without ``cls`` the JSON document comes back as a dict; with ``cls`` it is
        structured into that attrs class, which must be the class it was saved from.
        """
        row = self.db.execute("SELECT kind, doc FROM contexts WHERE agent = ?", [agent]).fetchone()
        if row is None:
            return None
        kind, doc = row
        if cls is None:
            return json.loads(doc)
        if kind != _kind_of(cls):
            raise StoreError(
                f"{self.path}: context of agent {agent!r} was saved as {kind}, "
                f"not {_kind_of(cls)}"
            )
        return self.converter.loads(doc, cls)

    def delete_context(self, agent: str) -> bool:
        """Forget ``agent``'s hibernated context; return whether there was one."""
        with _write(self.db):
            cur = self.db.execute("DELETE FROM contexts WHERE agent = ?", [agent])
        return cur.rowcount > 0

    def hibernated_agents(self) -> tuple[str, ...]:
        """Return every agent with a hibernated context, sorted."""
        return tuple(r[0] for r in self.db.execute("SELECT agent FROM contexts ORDER BY agent"))

    # ---------------------------------------------------------------- durable mode

    def append_journal(self, records: Iterable[JournalRecord], *, trusted: bool = False) -> None:
        """Append kernel steps to the journal, atomically.

        The seqs must continue the journal without a gap (the first record ever is
        seq 1) and each ``event`` / ``effects`` must be JSON text; otherwise
        :class:`StoreError` and nothing is written. ``trusted=True`` skips parsing
        the JSON texts (the seqs are still checked): for a caller that has just
        encoded them itself with the event log's encoder, as the runtime does.
        """
        batch = list(records)
        if not batch:
            return
        with _write(self.db):
            expected = self.last_journal_seq() + 1
            for i, r in enumerate(batch):
                if not isinstance(r, JournalRecord):
                    raise StoreError(
                        f"{self.path}: journal record {i} must be a JournalRecord, "
                        f"got {type(r).__name__}"
                    )
                if r.seq != expected + i:
                    raise StoreError(
                        f"{self.path}: journal record {i} has seq {r.seq}, expected "
                        f"{expected + i} (the journal is gapless)"
                    )
                if not trusted:
                    _check_json(self.path, f"journal seq {r.seq} field 'event'", r.event)
                    _check_json(self.path, f"journal seq {r.seq} field 'effects'", r.effects)
            # Prepared multi-row INSERTs, not insert_all (which re-reads the table schema
            # on every call, about 0.3 ms) nor executemany (one step, so one GIL
            # hand-off, per row): see _JOURNAL_ROWS.
            conn = self.db.conn
            start = 0
            for rows, sql in _JOURNAL_INSERTS:
                while len(batch) - start >= rows:
                    chunk = batch[start : start + rows]
                    conn.execute(sql, [v for r in chunk for v in (r.seq, r.event, r.effects)])
                    start += rows

    def last_journal_seq(self) -> int:
        """Return the seq of the last journal record, or 0 if the journal is empty."""
        row = self.db.execute("SELECT max(seq) FROM journal").fetchone()
        return 0 if row[0] is None else int(row[0])

    def journal_after(self, seq: int) -> Iterator[JournalRecord]:
        """Yield the journal records with a seq greater than ``seq``, in order."""
        while True:
            rows = self.db.execute(
                "SELECT seq, event, effects FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                [seq, _PAGE],
            ).fetchall()
            for s, event, effects in rows:
                yield JournalRecord(seq=s, event=event, effects=effects)
            if len(rows) < _PAGE:
                return
            seq = rows[-1][0]

    def save_snapshot(self, seq: int, text: str) -> None:
        """Store a kernel snapshot: the state after journal records ``1..seq``, as JSON text.

        ``seq`` may not be ahead of the journal. Saving the same snapshot twice is a
        no-op; a different text at a saved seq is a :class:`StoreError`.
        """
        _check_json(self.path, f"snapshot seq {seq}", text)
        with _write(self.db):
            last = self.last_journal_seq()
            if not 0 <= seq <= last:
                raise StoreError(
                    f"{self.path}: snapshot seq {seq} is outside the journal (0..{last})"
                )
            row = self.db.execute("SELECT text FROM snapshots WHERE seq = ?", [seq]).fetchone()
            if row is not None:
                if row[0] != text:
                    raise StoreError(
                        f"{self.path}: a different snapshot is already saved at seq {seq}"
                    )
                return
            self.db.execute("INSERT INTO snapshots (seq, text) VALUES (?, ?)", [seq, text])

    def latest_snapshot(self) -> tuple[int, str] | None:
        """Return ``(seq, text)`` of the newest snapshot, or ``None`` if there is none."""
        row = self.db.execute(
            "SELECT seq, text FROM snapshots ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def prune_snapshots(self, keep: int = 1) -> int:
        """Delete all but the newest ``keep`` snapshots; return how many were deleted."""
        if keep < 1:
            raise StoreError(f"{self.path}: prune_snapshots keep must be >= 1, got {keep}")
        with _write(self.db):
            cur = self.db.execute(
                "DELETE FROM snapshots WHERE seq NOT IN "
                "(SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
                [keep],
            )
        return cur.rowcount

    def verify(self) -> None:
        """Check the whole file: SQLite's integrity check and the full-text index's.

        ``open`` only validates the header and the schema; damage deeper in the file
        surfaces as ``sqlite3.DatabaseError`` from whichever call reads it. This reads
        everything (O(file size)) and raises :class:`StoreError` naming the file and
        the first problems found.
        """
        try:
            problems = [r[0] for r in self.db.execute("PRAGMA integrity_check(10)")]
            if problems == ["ok"]:
                with _write(self.db):
                    self.db.execute(
                        "INSERT INTO entries_fts(entries_fts) VALUES ('integrity-check')"
                    )
                return
        except sqlite3.DatabaseError as e:
            problems = [str(e)]
        raise StoreError(f"{self.path}: damaged: {'; '.join(problems)}")

    # ---------------------------------------------------------------- checks

    def _check_agent(self, agent: object) -> None:
        _check_text(self.path, "agent id", agent)
        if agent == "":
            raise StoreError(f"{self.path}: agent id must not be empty")

    def _check_entry(self, agent: str, index: int, e: object) -> None:
        where = f"agent {agent!r} entry {index}"
        if not isinstance(e, Entry):
            raise StoreError(f"{self.path}: {where} must be an Entry, got {type(e).__name__}")
        for name in ("seq", "tokens"):
            v = getattr(e, name)
            if type(v) is not int or v < 0 or v >= 1 << 63:
                raise StoreError(
                    f"{self.path}: {where} field {name!r} must be an int in [0, 2**63), got {v!r}"
                )
        for name in ("entry_id", "role", "text"):
            _check_text(self.path, f"{where} (seq {e.seq}) field {name!r}", getattr(e, name))
        if type(e.key) is not bool:
            raise StoreError(f"{self.path}: {where} field 'key' must be a bool, got {e.key!r}")


def _check_header(path: pathlib.Path) -> None:
    """Refuse a file that cannot be a SQLite database, without letting SQLite touch it."""
    try:
        with path.open("rb") as f:
            head = f.read(_SQLITE_HEADER_BYTES)
    except OSError as e:
        raise StoreError(f"{path}: cannot read ({e.strerror})") from None
    if head and (len(head) < _SQLITE_HEADER_BYTES or not head.startswith(_SQLITE_MAGIC)):
        raise StoreError(f"{path}: not a SQLite database (corrupt or some other kind of file)")


def _inspect(conn: sqlite3.Connection, path: pathlib.Path) -> bool:
    """Validate an opened file; return True if it is an empty database to initialize."""
    try:
        tables = sorted(
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%'"
            )
        )
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if not tables and app_id == 0:
            return True
        if app_id != APPLICATION_ID or "meta" not in tables:
            shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
            raise StoreError(
                f"{path}: not an agentrm store (a SQLite database with application_id "
                f"{app_id:#x} and tables: {shown or 'none'})"
            )
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise StoreError(f"{path}: busy: another process kept it locked ({e})") from None
        raise StoreError(f"{path}: corrupt or not a SQLite database ({e})") from None
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: corrupt or not a SQLite database ({e})") from None
    if meta.get("format") != FORMAT_NAME:
        raise StoreError(f"{path}: not an agentrm store (format {meta.get('format')!r})")
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError):
        raise StoreError(
            f"{path}: corrupt store: bad schema_version {meta.get('schema_version')!r}"
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: store schema version {version} is newer than this agentrm supports "
            f"({SCHEMA_VERSION}); upgrade agentrm to open it"
        )
    missing = [t for t in _TABLES if t not in tables]
    if version < 1 or missing:
        raise StoreError(
            f"{path}: corrupt store: schema version {version}, missing tables {missing}"
        )
    return False


@contextlib.contextmanager
def _write(db: sqlite_utils.Database) -> Iterator[None]:
    """A write transaction: BEGIN IMMEDIATE, or a savepoint inside an open transaction.

    Not ``db.atomic()`` at the outermost level: its plain BEGIN is deferred, and a
    transaction that reads and then writes fails at once with "database is locked"
    when another process committed in between (its snapshot is stale, so SQLite cannot
    wait). BEGIN IMMEDIATE takes the write lock first and waits the busy timeout.
    """
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _initialize(db: sqlite_utils.Database, path: pathlib.Path) -> None:
    """Create the version-1 schema and stamp the file, in one write transaction.

    The write lock is taken before looking again: if another process initialized the
    file since ``_inspect``, the file is validated instead of initialized twice.
    """
    with _write(db):
        if _inspect(db.conn, path):
            for sql in _SCHEMA_V1:
                db.conn.execute(sql)
            db.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", FORMAT_NAME), ("schema_version", str(SCHEMA_VERSION))],
            )
