"""A live baton server on 127.0.0.1 for tests: uvicorn in a thread, on a socket bound before it starts."""

from __future__ import annotations

import base64
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.assistant import Assistant
from baton.catalog import Catalog
from baton.config import Settings
from baton.server.service import Service

REPO = Path(__file__).resolve().parents[1]
SIGN = REPO / "examples" / "sign.png"
READ_ALOUD = "read the text in this image aloud"


@dataclass
class Live:
    url: str
    service: Service
    settings: Settings


def server_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"cpu_slots": 2, "task_timeout": 60, "api_token": None, "request_timeout": 120}
    return Settings(home=home, **{**values, **overrides})


@contextmanager
def serving(
    settings: Settings, *, host: str = "127.0.0.1", ui: bool = False, catalog: Catalog | None = None
) -> Iterator[Live]:
    """Serve ``create_app(settings, host=host)`` on a free port of 127.0.0.1 until the block ends."""
    import uvicorn

    from baton.server.app import create_app

    assistant = Assistant(settings, catalog=catalog) if catalog is not None else None
    service = Service(settings, assistant)
    app = create_app(settings, service=service, host=host, ui=ui)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn has started: no polling
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{sock.getsockname()[1]}", service, settings)
    finally:
        server.should_exit = True
        thread.join(20)
        service.close()
        if assistant is not None:
            assistant.close()
        sock.close()


def data_url(path: Path = SIGN, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def store_snapshot(home: Path) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was: the rows of every table and the stored files."""
    with sqlite3.connect(home / "baton.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = tuple(tuple(sorted(map(repr, db.execute(f"SELECT * FROM {table}")))) for table in tables)
    files = tuple(sorted(str(p.relative_to(home)) for p in (home / "artifacts").rglob("*") if p.is_file()))
    return rows, files
