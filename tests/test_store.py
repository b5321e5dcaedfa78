"""The store: migrations, WAL, sessions, content-addressed files, run records, crash recovery, bad homes."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from baton import store as store_module
from baton.media import BadInput
from baton.plan import Plan, Task
from baton.runs import Run, TaskRecord
from baton.store import MIGRATIONS, Store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store(home)
    yield opened
    opened.close()


def png(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 8)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def files_on_disk(store: Store) -> list[Path]:
    return sorted(p for p in store.files.rglob("*") if p.is_file())


def make_run(session_id: str, run_id: str, request: str, *, created: float | None = None) -> Run:
    plan = Plan(
        tasks=[
            Task(id=0, task="image-to-text", args={"image": "photo.png"}),
            Task(id=1, task="text-to-speech", args={"text": "<GENERATED>-0"}, dep=[0]),
        ]
    )
    return Run(
        id=run_id,
        session_id=session_id,
        request=request,
        planner="keyword",
        plan=plan,
        tasks=[
            TaskRecord(id=0, task="image-to-text", model="builtin/tesseract"),
            TaskRecord(id=1, task="text-to-speech"),
        ],
        created=time.time() if created is None else created,
    )


# migrations and database mode


def test_migrations_are_recorded_once_and_not_rerun(home: Path) -> None:
    first = Store(home)
    rows = first.db.execute("SELECT name, applied FROM _migrations ORDER BY rowid").fetchall()
    first.close()
    assert [r["name"] for r in rows] == [m.__name__ for m in MIGRATIONS]
    assert rows[0]["name"] == "m001_initial"

    again = Store(home)  # m001 would fail with "table sessions already exists" if it ran again
    rows_again = again.db.execute("SELECT name, applied FROM _migrations ORDER BY rowid").fetchall()
    again.close()
    assert [tuple(r) for r in rows_again] == [tuple(r) for r in rows]


def test_a_new_migration_runs_once_on_an_existing_database(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(home).close()
    calls: list[int] = []

    def m002_notes(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m002_notes])
    for _ in range(2):
        opened = Store(home)
        opened.db.execute("INSERT INTO notes (text) VALUES ('x')")
        names = [r[0] for r in opened.db.execute("SELECT name FROM _migrations ORDER BY rowid")]
        opened.close()
    assert calls == [1]
    assert names[-1] == "m002_notes"


def test_a_database_of_the_first_version_is_upgraded_keeping_its_files_and_labels(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(home / "baton.db")
    old.executescript(
        """
        CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL);
        INSERT INTO _migrations VALUES ('m001_initial', 1.0);
        CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
        CREATE TABLE artifacts (
            sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL, ext TEXT NOT NULL,
            size INTEGER NOT NULL, path TEXT NOT NULL, created REAL NOT NULL
        );
        CREATE TABLE session_files (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            name TEXT NOT NULL, sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
            label TEXT NOT NULL DEFAULT '', origin TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (session_id, name)
        );
        CREATE INDEX session_files_label ON session_files(session_id, label);
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            request TEXT NOT NULL, planner TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
            plan TEXT NOT NULL DEFAULT '{"tasks": []}', answer TEXT NOT NULL DEFAULT '',
            error TEXT, pid INTEGER, created REAL NOT NULL, finished REAL
        );
        CREATE TABLE run_tasks (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            task_id INTEGER NOT NULL, task TEXT NOT NULL, model TEXT, status TEXT NOT NULL,
            outputs TEXT NOT NULL DEFAULT '{}', error TEXT, started REAL, seconds REAL,
            PRIMARY KEY (run_id, task_id)
        );
        INSERT INTO sessions VALUES ('s1', 'old', 1.0);
        INSERT INTO artifacts VALUES ('abc', 'image', 'png', 3, 'image/abc.png', 1.0);
        INSERT INTO session_files VALUES ('s1', 'sign.png', 'abc', 'sign.png', 'input', 2.0);
        INSERT INTO session_files VALUES ('s1', 'image/abc.png', 'abc', '', 'output', 3.0);
        """
    )
    old.commit()
    old.close()
    opened = Store(home)
    files = opened.db.execute("SELECT session_id, name, sha256, origin FROM session_files ORDER BY created")
    assert [tuple(r) for r in files] == [("s1", "sign.png", "abc", "input"), ("s1", "image/abc.png", "abc", "output")]
    labels = opened.db.execute("SELECT session_id, label, name FROM session_labels")
    assert [tuple(r) for r in labels] == [("s1", "sign.png", "sign.png")]
    names = [r[0] for r in opened.db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [m.__name__ for m in MIGRATIONS]
    opened.close()


def test_a_failing_migration_leaves_no_trace(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(home).close()

    def m002_broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (id INTEGER)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m002_broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        Store(home)
    db = sqlite3.connect(home / "baton.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    names = {r[0] for r in db.execute("SELECT name FROM _migrations")}
    db.close()
    assert "half_done" not in tables
    assert "m002_broken" not in names


def test_database_is_in_wal_mode(store: Store, home: Path) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other = sqlite3.connect(home / "baton.db")  # WAL is a property of the file, not of one connection
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


# sessions


def test_named_sessions_are_reused_and_unnamed_ones_are_new(store: Store) -> None:
    work = store.session("work")
    assert store.session("work") == work
    assert store.session("other").id != work.id
    a, b = store.session(), store.session()
    assert a.id != b.id
    assert a.name == a.id and b.name == b.id
    assert {s.id for s in store.sessions()} == {work.id, store.session("other").id, a.id, b.id}


def test_named_session_survives_reopening(home: Path) -> None:
    first = Store(home)
    session = first.session("work")
    first.close()
    again = Store(home)
    assert again.session("work") == session
    again.close()


# artifacts


def test_add_file_stores_content_once_across_sessions(store: Store, tmp_path: Path) -> None:
    source = png(tmp_path / "photo.png")
    data = source.read_bytes()
    s1, s2 = store.session("one"), store.session("two")

    a1 = store.add_file(s1.id, source, label="photo.png", origin="input")
    copy = tmp_path / "copy.png"
    copy.write_bytes(data)
    a2 = store.add_file(s2.id, copy, label="copy.png", origin="input")

    sha = hashlib.sha256(data).hexdigest()
    assert a1.sha256 == a2.sha256 == sha
    assert a1.path == a2.path == store.files / sha[:2] / f"{sha}.png"
    assert files_on_disk(store) == [a1.path]
    assert a1.path.read_bytes() == data
    assert re.fullmatch(r"image/[0-9a-f]{8}\.png", a1.name)
    assert a1.name == f"image/{sha[:8]}.png" == a2.name
    assert a1.kind == "image"
    assert store.db.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 1


def test_labels_resolve_within_their_own_session(store: Store, tmp_path: Path) -> None:
    s1, s2 = store.session("one"), store.session("two")
    red = store.add_file(s1.id, png(tmp_path / "red.png"), label="red.png", origin="input")
    blue = store.add_file(s1.id, png(tmp_path / "blue.png", (0, 0, 255)), label="blue.png", origin="input")
    output = store.add_file(s1.id, png(tmp_path / "made.png", (0, 255, 0)))  # an output: no label

    known = store.files_of(s1.id)
    assert known["red.png"] == red and known[red.name] == red
    assert known["blue.png"] == blue and known[blue.name] == blue
    assert known[output.name] == output
    assert red.name != blue.name
    assert set(known) == {"red.png", red.name, "blue.png", blue.name, output.name}
    assert store.files_of(s2.id) == {}
    assert known["red.png"].path.read_bytes() == (tmp_path / "red.png").read_bytes()


def test_adding_the_same_file_twice_to_a_session_keeps_one_name(store: Store, tmp_path: Path) -> None:
    session = store.session("one")
    source = png(tmp_path / "photo.png")
    first = store.add_file(session.id, source, label="photo.png", origin="input")
    second = store.add_file(session.id, source, label="photo.png", origin="input")
    assert first == second
    rows = store.db.execute("SELECT COUNT(*) FROM session_files WHERE session_id=?", (session.id,)).fetchone()
    assert rows[0] == 1


def test_add_file_refuses_names_that_are_not_media(store: Store, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(BadInput, match="not an image, audio or video"):
        store.add_file(store.session().id, notes)
    assert files_on_disk(store) == []


def test_artifact_files_are_complete_and_leave_no_partial_files(store: Store, tmp_path: Path) -> None:
    session = store.session("one")
    big = tmp_path / "noise.wav"
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several copy blocks
    big.write_bytes(payload)
    from_file = store.add_file(session.id, big)

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, format="PNG")
    from_bytes = store.add_bytes(session.id, buffer.getvalue(), ".png")

    assert from_file.kind == "audio" and re.fullmatch(r"audio/[0-9a-f]{8}\.wav", from_file.name)
    assert from_file.path.read_bytes() == payload
    assert from_bytes.path.read_bytes() == buffer.getvalue()
    assert from_bytes.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert files_on_disk(store) == sorted([from_file.path, from_bytes.path])
    assert not list(store.files.rglob("*.part"))
    # nothing else lies around: only the two-letter shard folders
    assert all(p.is_dir() and len(p.name) == 2 for p in store.files.iterdir())
    assert set(store.files_of(session.id)) == {from_file.name, from_bytes.name}


# runs


def test_run_round_trip_through_start_save_and_finish(store: Store) -> None:
    session = store.session("work")
    run = make_run(session.id, "a1b2c3d4e5f6", "read the sign aloud")
    store.start_run(run)

    stored = store.run(run.id)
    assert stored == run
    assert stored is not None and stored.status == "running"
    assert [t.status for t in stored.tasks] == ["pending", "pending"]

    first = run.task(0)
    first.status, first.outputs, first.started, first.seconds = (
        "succeeded",
        {"text": {"kind": "text", "value": "STOP"}},
        1.5,
        0.25,
    )
    store.save_task(run.id, first)
    stored = store.run(run.id)
    assert stored is not None and stored.task(0) == first
    assert stored.task(1).status == "pending"

    second = run.task(1)
    second.status, second.error = "failed", "espeak-ng is not installed: sudo apt-get install espeak-ng"
    run.status, run.answer, run.finished = "failed", '1 of 2 tasks succeeded.\n[0] image-to-text: "STOP"', time.time()
    store.finish_run(run)

    stored = store.run(run.id)
    assert stored == run
    assert stored is not None and stored.plan == run.plan and stored.tasks[1].error == second.error
    assert store.runs() == [run]


def test_run_lookup_by_prefix_and_search(store: Store) -> None:
    session = store.session("work")
    now = time.time()
    older = make_run(session.id, "abc111111111", "read the sign", created=now - 10)
    newer = make_run(session.id, "abc222222222", "describe the beach", created=now)
    for run in (older, newer):
        store.start_run(run)
    newer.status, newer.answer, newer.finished = "succeeded", "waves and sand", now + 1
    store.finish_run(newer)

    assert store.run("abc2") == newer
    assert store.run("abc111111111") == older
    assert store.run("abc") is None  # ambiguous
    assert store.run("fff") is None  # unknown
    assert store.run("%") is None

    assert [r.id for r in store.runs()] == [newer.id, older.id]  # newest first
    assert [r.id for r in store.runs(limit=1)] == [newer.id]
    assert [r.id for r in store.runs(search="sign")] == [older.id]
    assert [r.id for r in store.runs(search="sand")] == [newer.id]  # answers are searched too
    assert store.runs(search="nowhere") == []
    counts = {s.name: s.runs for s in store.sessions()}
    assert counts == {"work": 2}


def test_runs_of_a_live_process_are_left_running(home: Path) -> None:
    first = Store(home)
    run = make_run(first.session("work").id, "live00000000", "still working")
    first.start_run(run)
    second = Store(home)  # another process opening the store meanwhile: this process is alive
    stored = second.run(run.id)
    assert stored is not None and stored.status == "running"
    second.close()
    first.close()


KILLED = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from baton.plan import Plan, Task
    from baton.runs import Run, TaskRecord
    from baton.store import Store

    store = Store(Path(sys.argv[1]))
    session = store.session("killed")
    plan = Plan(tasks=[Task(id=i, task="summarization", args={"text": "x"}) for i in range(3)])
    run = Run(
        id="dead00000001", session_id=session.id, request="summarize", plan=plan, created=time.time(),
        tasks=[
            TaskRecord(id=0, task="summarization", status="succeeded", outputs={"text": {"kind": "text", "value": "s"}}),
            TaskRecord(id=1, task="summarization", status="running"),
            TaskRecord(id=2, task="summarization", status="pending"),
        ],
    )
    store.start_run(run)
    with store._transaction() as db:  # killed in the middle of a change: it must not land
        db.execute("UPDATE runs SET status='succeeded', answer='half written' WHERE id=?", (run.id,))
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_run_of_a_killed_process_is_marked_interrupted(home: Path) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED, str(home)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr

    raw = sqlite3.connect(home / "baton.db")
    assert raw.execute("SELECT status FROM runs WHERE id='dead00000001'").fetchone() == ("running",)
    raw.close()

    store = Store(home)
    try:
        run = store.run("dead00000001")
        assert run is not None
        assert run.status == "interrupted"
        assert run.answer == ""  # the killed transaction did not land
        assert run.error == "the process running it stopped"
        assert [t.status for t in run.tasks] == ["succeeded", "cancelled", "cancelled"]
        assert run.tasks[0].outputs == {"text": {"kind": "text", "value": "s"}}
        assert run.tasks[1].error == "the process running it stopped"
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()


# unusable homes


def test_a_home_that_cannot_be_created_raises_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BadInput, match="BATON_HOME") as caught:
        Store(blocker / "baton")
    assert str(blocker / "baton") in str(caught.value)


def test_a_database_that_cannot_be_opened_raises_bad_input(home: Path) -> None:
    (home / "artifacts").mkdir(parents=True)
    (home / "baton.db").mkdir()  # something that is not a database file is in the way
    with pytest.raises(BadInput, match="BATON_HOME"):
        Store(home)


def test_a_damaged_database_raises_bad_input(home: Path) -> None:
    home.mkdir()
    (home / "baton.db").write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    with pytest.raises(BadInput, match="BATON_HOME") as caught:
        Store(home)
    assert "baton.db" in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_a_read_only_home_raises_bad_input(home: Path) -> None:
    Store(home).close()
    os.chmod(home, 0o500)
    os.chmod(home / "baton.db", 0o400)
    try:
        with pytest.raises(BadInput, match="BATON_HOME"):
            Store(home)
    finally:
        os.chmod(home, 0o700)
        os.chmod(home / "baton.db", 0o600)


def test_search_and_prefix_match_underscores_and_percents_literally(store: Store) -> None:
    session = store.session()
    for run_id, request in [("abc_1", "rename file_a"), ("abcX1", "rename fileXa"), ("zz%9", "100% sure")]:
        store.start_run(make_run(session.id, run_id, request))
    assert [r.id for r in store.runs(search="file_a")] == ["abc_1"]
    assert [r.id for r in store.runs(search="100%")] == ["zz%9"]
    assert store.run("abc_") is not None and store.run("abc_").id == "abc_1"  # type: ignore[union-attr]
    assert store.run("zz%") is not None
    assert store.run("%") is None
