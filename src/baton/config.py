"""Settings: where baton keeps its data and how much work it runs at once.

Read from environment variables, then an optional ``config.toml`` in ``BATON_HOME``; environment
variables win.

| variable            | config key     | default                                  |
|---------------------|----------------|------------------------------------------|
| BATON_HOME          |                | the user's data folder (~/.local/share/baton) |
| BATON_CPU_SLOTS     | cpu_slots      | the number of CPU cores                  |
| BATON_TASK_TIMEOUT  | task_timeout   | 300 (seconds per task)                   |
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from baton.media import BadInput

__all__ = ["Settings", "default_home"]


def default_home() -> Path:
    if "BATON_HOME" in os.environ:
        return Path(os.environ["BATON_HOME"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("baton", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path
    cpu_slots: int
    task_timeout: float

    @classmethod
    def load(cls) -> Settings:
        home = default_home()
        file_values: dict[str, object] = {}
        config = home / "config.toml"
        if config.exists():
            try:
                file_values = tomllib.loads(config.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise BadInput(f"{config} is not valid TOML ({exc}); fix or delete it") from None

        def number(env: str, key: str, default: float) -> float:
            raw = os.environ.get(env, file_values.get(key, default))
            try:
                value = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise BadInput(f"{env} / {key} must be a number, not {raw!r}") from None
            if value <= 0:
                raise BadInput(f"{env} / {key} must be positive, not {raw!r}")
            return value

        return cls(
            home=home,
            cpu_slots=int(number("BATON_CPU_SLOTS", "cpu_slots", os.cpu_count() or 1)),
            task_timeout=number("BATON_TASK_TIMEOUT", "task_timeout", 300),
        )
