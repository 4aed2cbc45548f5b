"""History in SQLite (or PostgreSQL) through SQLAlchemy 2.

Runs hold per-host snapshots; a snapshot holds one row per collector section.
The facts and the raw output of a section are content-addressed blobs
(zlib-compressed canonical JSON / text, keyed by SHA-256): a section that did
not change since last night costs one small row, not a second copy.

Blobs are checked against their hash whenever they are read or reused: a damaged
one makes only its section incomplete, and the next collection that has the same
content writes it again, so damage heals instead of spreading to every later run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    delete,
    event,
    inspect,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from driftcheck.errors import DriftcheckError
from driftcheck.model import HostSnapshot, HostStatus, SectionResult, SectionStatus
from driftcheck.since import HistoryEntry

# SQLAlchemy logs some failures itself (a connection that cannot be reset); with no
# handler Python would print them on stderr. Each failure reaches the user once, as
# one line from the error raised here.
logging.getLogger("sqlalchemy").addHandler(logging.NullHandler())

DB_ENV = "DRIFTCHECK_DB"
#: Seconds to wait for a PostgreSQL server (libpq waits for the OS's TCP timeout).
CONNECT_TIMEOUT = 10
DEFAULT_DB = "sqlite:///driftcheck.db"
SCHEMA_VERSION = "1"
#: Blob content whose parsed facts one Store keeps in memory (see Store._facts).
FACTS_CACHE_BYTES = 256 * 1024 * 1024
#: What a section whose stored blob is damaged says instead of its facts.
DAMAGED = "stored data damaged; the next collection stores it again"


class _DamagedBlobError(Exception):
    """A blob is missing, does not decompress, or does not match its hash."""


def _unpack(data: bytes, size: int) -> bytes | None:
    """A blob's content when it decompresses to exactly ``size`` bytes, else None.

    Never inflates more than ``size`` + 1 bytes: damaged data cannot make this
    allocate more than the content it claims to be.
    """
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(data, size + 1)
    except zlib.error:
        return None
    if len(content) != size or not inflater.eof or inflater.unconsumed_tail:
        return None
    return content


class Base(DeclarativeBase):
    """Declarative base of driftcheck's tables."""


class Meta(Base):
    """Key/value facts about the database itself (schema version)."""

    __tablename__ = "driftcheck_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Run(Base):
    """One invocation of ``collect`` (or ``check``)."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[str] = mapped_column(String(40))
    finished_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    inventory: Mapped[str] = mapped_column(Text)


class Snapshot(Base):
    """What one host gave in one run."""

    __tablename__ = "snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    environment: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(Text)  # JSON list
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    collected_at: Mapped[str] = mapped_column(String(40))
    duration: Mapped[float] = mapped_column(default=0.0)


class SectionRow(Base):
    """One collector section of one snapshot, pointing at its blobs."""

    __tablename__ = "sections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), index=True)
    collector: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    rc: Mapped[str] = mapped_column(String(16), default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    key_errors: Mapped[str] = mapped_column(Text, default="{}")  # JSON: key -> why
    facts_hash: Mapped[str | None] = mapped_column(ForeignKey("blobs.hash"), nullable=True)
    raw_hash: Mapped[str | None] = mapped_column(ForeignKey("blobs.hash"), nullable=True)


class Blob(Base):
    """Content-addressed, compressed payload (facts JSON or raw output)."""

    __tablename__ = "blobs"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class PruneResult:
    """What :meth:`Store.prune` removed."""

    runs: int
    sections: int
    blobs: int


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class SeriesEntry:
    """One section of one host in one finished run (see :meth:`Store.host_series`)."""

    run_id: int
    collected_at: str
    collector: str
    #: None when the section was not collected completely
    digest: str | None


@dataclass(frozen=True)
class RunInfo:
    """A run as listed to users."""

    id: int
    started_at: str
    finished_at: str | None
    inventory: str


def canonical_json(value: Any) -> bytes:
    """The one serialisation whose hash identifies a set of facts."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def resolve_url(url: str | None) -> str:
    """``--db``, else ``$DRIFTCHECK_DB``, else ``sqlite:///driftcheck.db``."""
    return url or os.environ.get(DB_ENV) or DEFAULT_DB


class Store:
    """The history database."""

    def __init__(self, url: str | None = None, create: bool = True) -> None:
        """Open the database at ``url``; with ``create`` (collecting), make it on first
        use. Without (every command that only reads), a database that does not exist
        yet is an error: a mistyped --db must not answer from a new, empty one."""
        self._url = resolve_url(url)
        #: The URL as it may be shown: never with its password.
        self.url = _shown(self._url)
        self._create = create
        if not create:
            _check_exists(self._url, self.url)
        try:
            self.engine: Engine = create_engine(self._url, **engine_options(self._url))
        except (ArgumentError, ImportError, ValueError) as exc:
            raise DriftcheckError(
                f"--db {self.url}: not a usable database URL ({_one_line(exc)}); "
                "use e.g. sqlite:///driftcheck.db"
            ) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._facts_cache: dict[str, dict[str, Any]] = {}
        self._cached_bytes = 0
        try:
            self._prepare()
        except SQLAlchemyError as exc:
            raise self._trouble(exc, opening=True) from None

    def _prepare(self) -> None:
        """Create the tables in a new database; check an existing one is whole."""
        found = set(inspect(self.engine).get_table_names())
        ours = set(Base.metadata.tables)
        if not found & ours:  # new (or someone else's database: ours go beside theirs)
            if not self._create:
                raise NoDatabaseError(
                    f"--db {self.url}: no finished collection yet (no driftcheck tables "
                    f"there); {WHERE_FROM}"
                )
            Base.metadata.create_all(self.engine)
        elif Meta.__tablename__ not in found:
            raise self._damaged(f"table {Meta.__tablename__} missing")
        with self._session() as s:
            row = s.get(Meta, "schema_version")
            if row is None:
                if found & ours:
                    raise self._damaged("no schema version")
                s.add(Meta(key="schema_version", value=SCHEMA_VERSION))
            elif row.value != SCHEMA_VERSION:
                raise DriftcheckError(
                    f"--db {self.url}: database schema version {row.value}, this driftcheck "
                    f"uses {SCHEMA_VERSION}; use a matching driftcheck or a new database"
                )
        missing = sorted(ours - found) if found & ours else []
        if missing:
            # Creating them empty would silently drop history (sections, blobs).
            raise self._damaged(f"table {', '.join(missing)} missing")

    def _damaged(self, why: str) -> DriftcheckError:
        return DriftcheckError(
            f"--db {self.url}: not a driftcheck database or damaged ({why}); restore it from "
            "a backup or point --db at a new file"
        )

    def _trouble(self, exc: SQLAlchemyError, opening: bool = False) -> DriftcheckError:
        """A database failure as one line that says what to do."""
        orig = getattr(exc, "orig", None) or exc
        why = _one_line(orig)
        sqlite = self.engine.dialect.name == "sqlite"
        if sqlite and isinstance(exc, DatabaseError):
            if not isinstance(exc, OperationalError) or re.search(
                r"no such (table|column)|malformed", why
            ):
                return self._damaged(why)  # not a database, malformed, a table missing
            if opening:
                return DriftcheckError(
                    f"--db {self.url}: cannot open the database ({why}); check the path and "
                    "its permissions"
                )
        elif opening and isinstance(exc, OperationalError):
            return DriftcheckError(
                f"--db {self.url}: cannot reach the database ({why}); check that the server "
                "runs and the URL's host, port, database and user"
            )
        return DriftcheckError(f"--db {self.url}: database error ({why})")

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            with suppress(SQLAlchemyError):  # a broken connection cannot roll back either
                session.rollback()
            raise self._trouble(exc) from None
        except BaseException:
            with suppress(SQLAlchemyError):
                session.rollback()
            raise
        finally:
            with suppress(SQLAlchemyError):
                session.close()

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------

    def start_run(self, inventory: str, started_at: str) -> int:
        """Record a new run and return its id."""
        with self._session() as s:
            run = Run(started_at=started_at, inventory=inventory)
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, finished_at: str) -> None:
        """Mark a run complete; only finished runs are used for reports."""
        with self._session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.finished_at = finished_at

    def _put_blob(self, s: Session, payload: bytes) -> str:
        digest = hashlib.sha256(payload).hexdigest()
        stored = s.execute(select(Blob.size, Blob.data).where(Blob.hash == digest)).first()
        # Unchanged since the last run (the nightly common case): nothing to write,
        # and no need to compress it again; but reused only when intact, or one
        # damaged blob would stay damaged in every run that has the same content.
        if stored is not None and _unpack(stored.data, stored.size) == payload:
            return digest
        values = {"hash": digest, "size": len(payload), "data": zlib.compress(payload, 6)}
        if stored is not None:
            s.execute(update(Blob).where(Blob.hash == digest).values(**values))
        elif self.engine.dialect.name == "postgresql":
            s.execute(postgresql.insert(Blob).values(**values).on_conflict_do_nothing())
        else:
            s.execute(sqlite.insert(Blob).values(**values).on_conflict_do_nothing())
        return digest

    def add_snapshot(self, run_id: int, snap: HostSnapshot) -> None:
        """Store one host's snapshot with its sections (one transaction)."""
        with self._session() as s:
            row = Snapshot(
                run_id=run_id,
                host=snap.host,
                environment=snap.environment,
                roles=json.dumps(list(snap.roles)),
                status=str(snap.status),
                error=snap.error,
                collected_at=snap.collected_at,
                duration=snap.duration,
            )
            s.add(row)
            s.flush()
            for sec in snap.sections.values():
                complete = sec.status.complete
                s.add(
                    SectionRow(
                        snapshot_id=row.id,
                        collector=sec.collector,
                        status=str(sec.status),
                        error=sec.error,
                        rc=sec.rc,
                        stderr=sec.stderr[-4096:],
                        key_errors=json.dumps(sec.errors, sort_keys=True),
                        facts_hash=self._put_blob(s, canonical_json(sec.facts))
                        if complete
                        else None,
                        raw_hash=self._put_blob(s, sec.raw.encode()) if sec.raw else None,
                    )
                )

    def prune(self, inventory: str, doomed: list[int]) -> PruneResult:
        """Delete the runs ``doomed`` of ``inventory`` with their snapshots and sections,
        then every blob no remaining section uses (blobs shared with kept runs, or with
        other inventories' runs, stay). One transaction: nothing is half-pruned."""
        with self._session() as s:
            runs = list(
                s.scalars(select(Run.id).where(Run.inventory == inventory, Run.id.in_(doomed)))
            )
            snaps = select(Snapshot.id).where(Snapshot.run_id.in_(runs))
            sections = s.execute(delete(SectionRow).where(SectionRow.snapshot_id.in_(snaps)))
            s.execute(delete(Snapshot).where(Snapshot.run_id.in_(runs)))
            s.execute(delete(Run).where(Run.id.in_(runs)))
            used = union(
                select(SectionRow.facts_hash).where(SectionRow.facts_hash.is_not(None)),
                select(SectionRow.raw_hash).where(SectionRow.raw_hash.is_not(None)),
            )
            blobs = s.execute(delete(Blob).where(Blob.hash.not_in(used)))
        self._facts_cache.clear()
        self._cached_bytes = 0
        return PruneResult(len(runs), _rowcount(sections), _rowcount(blobs))

    def compact(self) -> None:
        """Give the space of deleted rows back to the file system (SQLite's VACUUM;
        PostgreSQL's autovacuum does this on its own)."""
        if self.engine.dialect.name != "sqlite":
            return
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM"))
        except SQLAlchemyError as exc:
            raise self._trouble(exc) from None

    # -- reading ---------------------------------------------------------------

    def latest_run(self, inventory: str | None = None) -> RunInfo | None:
        """The most recent finished run (of ``inventory`` when given), or None."""
        query = select(Run).where(Run.finished_at.is_not(None))
        if inventory is not None:
            query = query.where(Run.inventory == inventory)
        with self._session() as s:
            run = s.scalars(query.order_by(Run.id.desc()).limit(1)).first()
            return RunInfo(run.id, run.started_at, run.finished_at, run.inventory) if run else None

    def runs(self, inventory: str) -> list[RunInfo]:
        """Every finished run of ``inventory``, oldest first."""
        query = (
            select(Run)
            .where(Run.finished_at.is_not(None), Run.inventory == inventory)
            .order_by(Run.id)
        )
        with self._session() as s:
            return [
                RunInfo(r.id, r.started_at, r.finished_at, r.inventory) for r in s.scalars(query)
            ]

    def run(self, run_id: int) -> RunInfo | None:
        """One run by id, finished or not."""
        with self._session() as s:
            r = s.get(Run, run_id)
            return RunInfo(r.id, r.started_at, r.finished_at, r.inventory) if r else None

    def snapshot(self, run_id: int, host: str, raw: bool = False) -> HostSnapshot | None:
        """``host``'s snapshot in one run, or None when that run did not collect it."""
        with self._session() as s:
            row = s.scalars(
                select(Snapshot).where(Snapshot.run_id == run_id, Snapshot.host == host).limit(1)
            ).first()
            return self._snapshot(s, row, raw) if row else None

    def host_series(self, inventory: str, host: str) -> list[SeriesEntry]:
        """Every section of ``host`` in the finished runs of ``inventory``, oldest first."""
        query = (
            select(
                Run.id,
                Snapshot.collected_at,
                SectionRow.collector,
                SectionRow.status,
                SectionRow.facts_hash,
            )
            .join(Run, Run.id == Snapshot.run_id)
            .join(SectionRow, SectionRow.snapshot_id == Snapshot.id)
            .where(Run.inventory == inventory, Run.finished_at.is_not(None), Snapshot.host == host)
            .order_by(Run.id)
        )
        with self._session() as s:
            return [
                SeriesEntry(run_id, at, collector, digest if SectionStatus(st).complete else None)
                for run_id, at, collector, st, digest in s.execute(query)
            ]

    def _load(self, s: Session, hash_: str | None) -> bytes:
        """A blob's content, checked against its hash; raises :class:`_DamagedBlobError`."""
        if hash_ is None:
            return b""
        blob = s.get(Blob, hash_)
        content = _unpack(blob.data, blob.size) if blob is not None else None
        if content is None or hashlib.sha256(content).hexdigest() != hash_:
            raise _DamagedBlobError(hash_)
        return content

    def _facts(self, s: Session, hash_: str | None) -> dict[str, Any]:
        """The facts under ``hash_`` ({} for none); raises :class:`_DamagedBlobError`.

        Read-only to callers: parsed facts are kept by hash (up to
        :data:`FACTS_CACHE_BYTES` of blob content), because history reads the same
        unchanged blob night after night.
        """
        if hash_ is not None and hash_ in self._facts_cache:
            return self._facts_cache[hash_]
        content = self._load(s, hash_)
        try:
            facts = json.loads(content or b"{}")
        except ValueError:  # not UTF-8 or not JSON: written by something else
            raise _DamagedBlobError(hash_) from None
        if not isinstance(facts, dict):
            raise _DamagedBlobError(hash_)
        if hash_ is not None and self._cached_bytes + len(content) <= FACTS_CACHE_BYTES:
            self._facts_cache[hash_] = facts
            self._cached_bytes += len(content)
        return facts

    def _section(self, s: Session, sec: SectionRow, raw: bool) -> SectionResult:
        """One stored section; a damaged blob makes it an error, never a crash."""
        try:
            facts = self._facts(s, sec.facts_hash)
            text = self._load(s, sec.raw_hash).decode("utf-8") if raw else ""
        except (_DamagedBlobError, UnicodeDecodeError):
            return SectionResult(sec.collector, SectionStatus.ERROR, error=DAMAGED, rc=sec.rc)
        return SectionResult(
            sec.collector,
            SectionStatus(sec.status),
            facts,
            json.loads(sec.key_errors),
            sec.error,
            text,
            sec.stderr,
            sec.rc,
        )

    def _snapshot(self, s: Session, row: Snapshot, raw: bool = False) -> HostSnapshot:
        snap = HostSnapshot(
            row.host,
            row.environment,
            tuple(json.loads(row.roles)),
            HostStatus(row.status),
            row.collected_at,
            row.duration,
            row.error,
        )
        rows = s.scalars(select(SectionRow).where(SectionRow.snapshot_id == row.id))
        for sec in rows:
            snap.sections[sec.collector] = self._section(s, sec, raw)
        if not snap.sections:  # every snapshot is stored with all its sections
            snap.status, snap.error = HostStatus.FAILED, DAMAGED
            return snap
        damaged = [n for n, sec in snap.sections.items() if sec.error == DAMAGED]
        if damaged and snap.status is HostStatus.OK:
            # The host was collected completely, but what is stored of it is not whole.
            snap.status = HostStatus.PARTIAL
            snap.error = f"{', '.join(damaged)}: {DAMAGED}"
        return snap

    def snapshots(self, run_id: int) -> dict[str, HostSnapshot]:
        """Every host snapshot of a run, by host name."""
        with self._session() as s:
            rows = s.scalars(select(Snapshot).where(Snapshot.run_id == run_id))
            return {r.host: self._snapshot(s, r) for r in rows}

    def section_history(
        self, inventory: str, host: str, collector: str, before_run: int, limit: int = 400
    ) -> list[HistoryEntry]:
        """``host``'s ``collector`` section in the finished runs of ``inventory`` before
        ``before_run``, newest first (the facts hash None where it was not collected
        completely)."""
        query = (
            select(Run.id, Snapshot.collected_at, SectionRow.facts_hash, SectionRow.status)
            .join(Run, Run.id == Snapshot.run_id)
            .join(SectionRow, SectionRow.snapshot_id == Snapshot.id)
            .where(
                Run.inventory == inventory,
                Run.finished_at.is_not(None),
                Run.id < before_run,
                Snapshot.host == host,
                SectionRow.collector == collector,
            )
            .order_by(Run.id.desc())
            .limit(limit)
        )
        with self._session() as s:
            return [
                HistoryEntry(run_id, at, digest if SectionStatus(status).complete else None)
                for run_id, at, digest, status in s.execute(query)
            ]

    def facts_of(self, digest: str) -> dict[str, Any] | None:
        """The facts stored under a blob hash; None when that blob is damaged."""
        with self._session() as s:
            try:
                return self._facts(s, digest)
            except _DamagedBlobError:
                return None

    def latest_snapshot(self, host: str, raw: bool = False) -> HostSnapshot | None:
        """The most recent snapshot of ``host`` in a finished run, or None."""
        with self._session() as s:
            row = s.scalars(
                select(Snapshot)
                .join(Run, Run.id == Snapshot.run_id)
                .where(Snapshot.host == host, Run.finished_at.is_not(None))
                .order_by(Snapshot.id.desc())
                .limit(1)
            ).first()
            return self._snapshot(s, row, raw) if row else None


#: What a reading command says of a database nothing was collected into.
WHERE_FROM = (
    "run 'driftcheck collect -i INVENTORY' first, or point --db (or $DRIFTCHECK_DB) at the "
    "database collect wrote"
)


class NoDatabaseError(DriftcheckError):
    """A reading command was pointed at a database nothing was ever collected into."""


def _check_exists(url: str, shown: str) -> None:
    """A SQLite file that is not there: the error a reading command gives (with the
    absolute path: the default is relative to the current directory)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # create_engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database or "")
    if not path.exists():
        raise NoDatabaseError(
            f"--db {shown}: no finished collection yet ({path.resolve()} does not exist); "
            f"{WHERE_FROM}"
        )


def engine_options(url: str) -> dict[str, Any]:
    """create_engine options: a connect timeout for PostgreSQL unless the URL sets one."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    return {}


def _shown(url: str) -> str:
    """``url`` with any password replaced by ***, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _one_line(exc: object) -> str:
    """An exception's text on one line (drivers' messages span several)."""
    return " ".join(str(exc).split())[:300]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets reports read while a nightly collect writes; the busy timeout makes
    # a second writer wait instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
