"""The store: SQLite for sessions, runs and artifacts; content-addressed files beside it.

Schema changes are an ordered list of small functions, each recorded by name once applied. The
database runs in WAL mode and every change is one transaction, so a killed process leaves it
consistent; a run left 'running' by a process that no longer exists is marked 'interrupted' the next
time the store opens. Artifact files are written to a temporary name, flushed, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from baton.media import Artifact, BadInput, MediaKind, kind_of_filename
from baton.runs import Run, Session, TaskRecord

__all__ = ["MIGRATIONS", "Store", "pid_alive"]

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(function: Migration) -> Migration:
    MIGRATIONS.append(function)
    return function


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _statements(
        db,
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL
        );
        CREATE TABLE artifacts (
            sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL, ext TEXT NOT NULL,
            size INTEGER NOT NULL, path TEXT NOT NULL, created REAL NOT NULL
        );
        CREATE TABLE session_files (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            name TEXT NOT NULL, sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            origin TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (session_id, name)
        );
        CREATE TABLE session_labels (
            session_id TEXT NOT NULL, label TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (session_id, label),
            FOREIGN KEY (session_id, name) REFERENCES session_files(session_id, name) ON DELETE CASCADE
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            request TEXT NOT NULL, planner TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
            plan TEXT NOT NULL DEFAULT '{"tasks": []}', answer TEXT NOT NULL DEFAULT '',
            error TEXT, pid INTEGER, created REAL NOT NULL, finished REAL
        );
        CREATE INDEX runs_created ON runs(created);
        CREATE TABLE run_tasks (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            task_id INTEGER NOT NULL, task TEXT NOT NULL, model TEXT, status TEXT NOT NULL,
            outputs TEXT NOT NULL DEFAULT '{}', error TEXT, started REAL, seconds REAL,
            PRIMARY KEY (run_id, task_id)
        );
        """,
    )


@migration
def m002_run_usage_and_notices(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE runs ADD COLUMN usage TEXT NOT NULL DEFAULT '{}'")
    db.execute("ALTER TABLE runs ADD COLUMN notices TEXT NOT NULL DEFAULT '[]'")


@migration
def m003_labels_of_first_databases(db: sqlite3.Connection) -> None:
    """Databases made by baton's first version kept a file's label in session_files.label; move the
    labels to session_labels (which m001 now creates) and drop the column."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(session_files)")}
    if "label" not in columns:
        return
    _statements(
        db,
        """
        CREATE TABLE IF NOT EXISTS session_labels (
            session_id TEXT NOT NULL, label TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (session_id, label),
            FOREIGN KEY (session_id, name) REFERENCES session_files(session_id, name) ON DELETE CASCADE
        );
        INSERT OR REPLACE INTO session_labels
            SELECT session_id, label, name, created FROM session_files WHERE label != '' ORDER BY created;
        DROP INDEX IF EXISTS session_files_label;
        ALTER TABLE session_files DROP COLUMN label
        """,
    )


def _statements(db: sqlite3.Connection, script: str) -> None:
    """Run a script inside the caller's transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _like(text: str) -> str:
    """Text matched literally inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Sessions, runs and artifacts under one folder (``BATON_HOME``)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.files = home / "artifacts"
        try:
            self.files.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(
                f"cannot create baton's data folder {home} ({exc.strerror}); set BATON_HOME to a writable folder"
            ) from None
        self._lock = threading.RLock()
        path = home / "baton.db"
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise BadInput(
                f"cannot open baton's database {path} ({exc}); set BATON_HOME to a writable folder"
            ) from None
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            self._mark_interrupted()
        except sqlite3.Error as exc:  # read-only or damaged: say so, with the fix
            self.db.close()
            raise BadInput(
                f"cannot use baton's database {path} ({exc}); set BATON_HOME to a writable folder "
                f"or move a damaged baton.db away"
            ) from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
            done = {row["name"] for row in db.execute("SELECT name FROM _migrations")}
            for step in MIGRATIONS:
                if step.__name__ not in done:
                    step(db)
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (step.__name__, time.time()))

    def _mark_interrupted(self) -> None:
        rows = self.db.execute("SELECT id, pid FROM runs WHERE status = 'running'").fetchall()
        stale = [row["id"] for row in rows if row["pid"] is None or not pid_alive(row["pid"])]
        for run_id in stale:
            with self._transaction() as db:
                db.execute(
                    "UPDATE runs SET status='interrupted', error=COALESCE(error, 'the process running it stopped') WHERE id=?",
                    (run_id,),
                )
                db.execute(
                    "UPDATE run_tasks SET status='cancelled', error='the process running it stopped' "
                    "WHERE run_id=? AND status IN ('pending', 'running')",
                    (run_id,),
                )

    # sessions

    def session(self, name: str | None = None) -> Session:
        """The session called ``name``, created if new; a fresh unnamed session when None."""
        with self._transaction() as db:
            if name is not None:
                row = db.execute("SELECT * FROM sessions WHERE name=?", (name,)).fetchone()
                if row is not None:
                    return Session(id=row["id"], name=row["name"], created=row["created"])
            session_id = uuid.uuid4().hex[:12]
            session = Session(id=session_id, name=name or session_id, created=time.time())
            db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (session.id, session.name, session.created))
            return session

    def find_session(self, name: str) -> Session | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM sessions WHERE name=?", (name,)).fetchone()
        return None if row is None else Session(id=row["id"], name=row["name"], created=row["created"])

    def session_by_id(self, session_id: str) -> Session | None:
        with self._lock:
            row = self.db.execute(
                "SELECT s.*, COUNT(r.id) AS runs FROM sessions s LEFT JOIN runs r ON r.session_id = s.id "
                "WHERE s.id=? GROUP BY s.id",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        return Session(id=row["id"], name=row["name"], created=row["created"], runs=row["runs"])

    def delete_session(self, session_id: str) -> bool:
        """Forget a session: its runs, file names and labels. Artifact files stay (other sessions may share them)."""
        with self._transaction() as db:
            return db.execute("DELETE FROM sessions WHERE id=?", (session_id,)).rowcount > 0

    def sessions(self) -> list[Session]:
        with self._lock:
            rows = self.db.execute(
                "SELECT s.*, COUNT(r.id) AS runs FROM sessions s LEFT JOIN runs r ON r.session_id = s.id "
                "GROUP BY s.id ORDER BY s.created DESC"
            ).fetchall()
        return [Session(id=r["id"], name=r["name"], created=r["created"], runs=r["runs"]) for r in rows]

    # artifacts

    def add_file(self, session_id: str, source: Path, *, label: str = "", origin: str = "output") -> Artifact:
        """Copy a file into the store (atomically, once per content) and make it known to a session."""
        kind = kind_of_filename(source.name)
        if kind is None:
            raise BadInput(f"'{source.name}' is not an image, audio or video file name")
        digest = hashlib.sha256()
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        ext = source.suffix.lower()
        target = self.files / sha[:2] / f"{sha}{ext}"
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
                with open(source, "rb") as handle:
                    shutil.copyfileobj(handle, tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, target)
        return self._register(session_id, sha, kind, ext, target, label, origin)

    def add_bytes(self, session_id: str, data: bytes, ext: str, *, origin: str = "output") -> Artifact:
        with tempfile.TemporaryDirectory(dir=self.files) as tmp:
            path = Path(tmp) / f"data{ext}"
            path.write_bytes(data)
            return self.add_file(session_id, path, origin=origin)

    def _register(
        self, session_id: str, sha: str, kind: MediaKind, ext: str, path: Path, label: str, origin: str
    ) -> Artifact:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?, ?)",
                (sha, kind, ext, path.stat().st_size, str(path.relative_to(self.home)), time.time()),
            )
            row = db.execute(
                "SELECT name FROM session_files WHERE session_id=? AND sha256=?", (session_id, sha)
            ).fetchone()
            if row is not None:
                name = row["name"]
            else:
                length = 8  # lengthen the short name in the rare case of a prefix clash
                while db.execute(
                    "SELECT 1 FROM session_files WHERE session_id=? AND name=?",
                    (session_id, name := f"{kind}/{sha[:length]}{ext}"),
                ).fetchone():
                    length += 4
                db.execute(
                    "INSERT INTO session_files VALUES (?, ?, ?, ?, ?)", (session_id, name, sha, origin, time.time())
                )
            if label:  # a label names the file the user gave last under that name
                db.execute(
                    "INSERT OR REPLACE INTO session_labels VALUES (?, ?, ?, ?)", (session_id, label, name, time.time())
                )
        return Artifact(name=name, sha256=sha, kind=kind, path=path, label=label)

    def files_of(self, session_id: str) -> dict[str, Artifact]:
        """Every name a session knows (artifact names and the user's own file names) -> artifact."""
        with self._lock:  # one connection is shared by threads: a read must not interleave with a write
            return self._files_of(session_id)

    def _files_of(self, session_id: str) -> dict[str, Artifact]:
        rows = self.db.execute(
            "SELECT f.name, a.sha256, a.kind, a.path FROM session_files f "
            "JOIN artifacts a ON a.sha256 = f.sha256 WHERE f.session_id=? ORDER BY f.created",
            (session_id,),
        ).fetchall()
        known = {
            row["name"]: Artifact(
                name=row["name"], sha256=row["sha256"], kind=row["kind"], path=self.home / row["path"]
            )
            for row in rows
        }
        labels = self.db.execute(
            "SELECT label, name FROM session_labels WHERE session_id=? ORDER BY created", (session_id,)
        ).fetchall()
        for row in labels:  # an artifact carries the last name the user gave it
            known[row["label"]] = known[row["name"]] = known[row["name"]].model_copy(update={"label": row["label"]})
        return known

    # runs

    def start_run(self, run: Run) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (id, session_id, request, planner, status, plan, pid, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.session_id,
                    run.request,
                    run.planner,
                    run.status,
                    run.plan.model_dump_json(),
                    os.getpid(),
                    run.created,
                ),
            )
            for task in run.tasks:
                self._write_task(db, run.id, task)

    def save_task(self, run_id: str, task: TaskRecord) -> None:
        with self._transaction() as db:
            self._write_task(db, run_id, task)

    @staticmethod
    def _write_task(db: sqlite3.Connection, run_id: str, task: TaskRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO run_tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, task.id, task.task, task.model, task.status,
                json.dumps(task.outputs, ensure_ascii=False), task.error, task.started, task.seconds,
            ),
        )  # fmt: skip

    def finish_run(self, run: Run) -> None:
        with self._transaction() as db:
            for task in run.tasks:
                self._write_task(db, run.id, task)
            db.execute(
                "UPDATE runs SET status=?, plan=?, answer=?, error=?, finished=?, usage=?, notices=? WHERE id=?",
                (
                    run.status,
                    run.plan.model_dump_json(),
                    run.answer,
                    run.error,
                    run.finished,
                    json.dumps(run.usage),
                    json.dumps(run.notices, ensure_ascii=False),
                    run.id,
                ),
            )

    def run(self, run_id: str) -> Run | None:
        """A run by id, or by a unique prefix of its id."""
        with self._lock:
            rows = self.db.execute(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY created DESC LIMIT 2", (_like(run_id) + "%",)
            ).fetchall()
            if len(rows) != 1:
                return None
            return self._run_from(rows[0])

    def runs(self, limit: int = 20, search: str | None = None, session_id: str | None = None) -> list[Run]:
        """Runs newest first; ``search`` matches request or answer text literally."""
        clauses, values = [], []
        if search:
            clauses.append("(request LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\')")
            values += [f"%{_like(search)}%", f"%{_like(search)}%"]
        if session_id:
            clauses.append("session_id = ?")
            values.append(session_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self.db.execute(
                f"SELECT * FROM runs {where} ORDER BY created DESC LIMIT ?", (*values, limit)
            ).fetchall()
            return [self._run_from(row) for row in rows]

    def _run_from(self, row: sqlite3.Row) -> Run:
        from baton.plan import Plan

        tasks = [
            TaskRecord(
                id=t["task_id"], task=t["task"], model=t["model"], status=t["status"],
                outputs=json.loads(t["outputs"]), error=t["error"], started=t["started"], seconds=t["seconds"],
            )
            for t in self.db.execute("SELECT * FROM run_tasks WHERE run_id=? ORDER BY task_id", (row["id"],))
        ]  # fmt: skip
        return Run(
            id=row["id"], session_id=row["session_id"], request=row["request"], planner=row["planner"],
            status=row["status"], plan=Plan.model_validate_json(row["plan"]), tasks=tasks,
            answer=row["answer"], error=row["error"], created=row["created"], finished=row["finished"],
            usage=json.loads(row["usage"]), notices=json.loads(row["notices"]),
        )  # fmt: skip
