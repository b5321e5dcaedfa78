"""Shared fixtures: a private BATON_HOME, the ``baton`` command as a subprocess, and WAV/image helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_IMAGE = REPO / "examples" / "sign.png"


def baton_command() -> list[str]:
    """The installed ``baton`` script next to this interpreter, or ``python -m baton`` without one."""
    script = Path(sys.executable).with_name("baton")
    return [str(script)] if script.exists() else [sys.executable, "-m", "baton"]


def baton_env(home: Path) -> dict[str, str]:
    """The environment of a ``baton`` subprocess: its own data folder, wide plain (uncoloured) output, no LLM."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BATON_", "OPENAI_")) and k not in ("FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env.update(BATON_HOME=str(home), COLUMNS="200", NO_COLOR="1", PYTHONIOENCODING="utf-8")
    return env


@dataclass
class Done:
    """A finished ``baton`` call."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def __str__(self) -> str:  # shown when an assertion about it fails
        return f"baton {' '.join(self.args)} -> exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


Baton = Callable[..., Done]


def make_runner(home: Path) -> Baton:
    def baton(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> Done:
        strings = tuple(str(a) for a in args)
        done = subprocess.run(
            [*baton_command(), *strings],
            cwd=cwd or REPO,
            env=baton_env(home),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Done(strings, done.returncode, done.stdout, done.stderr)

    return baton


@pytest.fixture(autouse=True)
def _no_llm_from_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    """An LLM configured in the developer's shell must not change what any test sees."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "BATON_LLM_")):
            monkeypatch.delenv(name)


@pytest.fixture
def baton_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty BATON_HOME for this test (also set in this process's environment)."""
    home = tmp_path / "baton-home"
    monkeypatch.setenv("BATON_HOME", str(home))
    return home


@pytest.fixture
def baton(baton_home: Path) -> Baton:
    """Run the ``baton`` command against this test's BATON_HOME: ``baton("run", "...", "-i", path)``."""
    return make_runner(baton_home)


@pytest.fixture
def sign_image(tmp_path: Path) -> Path:
    """A copy of the bundled example in a folder of its own, so plans must name it by its file name."""
    target = tmp_path / "inputs" / "sign.png"
    target.parent.mkdir(parents=True)
    target.write_bytes(EXAMPLE_IMAGE.read_bytes())
    return target


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    """A blank 32x24 image, inputs/sign.png, for tests where what it shows does not matter."""
    from PIL import Image

    path = tmp_path / "inputs" / "sign.png"
    path.parent.mkdir()
    Image.new("RGB", (32, 24), "white").save(path)
    return path


def wav_info(path: Path) -> tuple[float, int, int, int, int]:
    """(seconds, sample rate, channels, sample width in bytes, peak absolute 16-bit sample) of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        rate, channels, width, frames = wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()
        data = wav.readframes(frames)
    peak = 0
    if width == 2:
        samples = array("h")
        samples.frombytes(data[: len(data) // 2 * 2])
        if sys.byteorder == "big":
            samples.byteswap()
        peak = max((abs(s) for s in samples), default=0)
    return frames / rate, rate, channels, width, peak


@pytest.fixture
def expert_ctx(tmp_path: Path) -> Iterator[Any]:
    """A real TaskContext: a scratch folder and a session in a fresh store, default settings."""
    from baton.config import Settings
    from baton.experts import TaskContext
    from baton.store import Store

    home = tmp_path / "home"
    store = Store(home)
    workdir = tmp_path / "work"
    workdir.mkdir()
    yield TaskContext(store, store.session("test").id, workdir, Settings(home=home))
    store.close()
