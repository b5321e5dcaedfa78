"""Settings: where baton keeps its data, what it may reach, and which LLM (if any) conducts.

Read from environment variables, then an optional ``config.toml`` in ``BATON_HOME``; environment
variables win.

| variable                      | config key              | default                                  |
|-------------------------------|-------------------------|------------------------------------------|
| BATON_HOME                    |                         | the user's data folder (~/.local/share/baton) |
| BATON_CPU_SLOTS               | cpu_slots               | the number of CPU cores                  |
| BATON_TASK_TIMEOUT            | task_timeout            | 300 (seconds per task)                   |
| BATON_ALLOW_NETWORK           | allow_network           | false: downloaders and URL inputs refuse |
| BATON_ALLOW_PRIVATE_NETWORK   | allow_private_network   | false: loopback/private/link-local refused |
| BATON_MAX_DOWNLOAD_MB         | max_download_mb         | 50                                       |
| BATON_MAX_MEDIA_SECONDS       | max_media_seconds       | 600 (longest audio/video accepted)       |
| BATON_ALLOW_DOWNLOADS         | allow_downloads         | false: Hub weights only from the cache or registered folders |
| BATON_MEMORY                  | memory                  | per-device budget for loaded models, e.g. "cpu=8GB,cuda:0=20GB"; default half the free RAM |
| OPENAI_BASE_URL               | llm.base_url            | none (OPENAI_API_BASE is read too)       |
| OPENAI_API_KEY                | llm.api_key             | none (local servers need none)           |
| BATON_LLM_MODEL               | llm.model               | none                                     |
| BATON_LLM_JSON_MODE           | llm.json_mode           | auto (json_schema, json_object, prompt)  |
| BATON_LLM_TIMEOUT             | llm.timeout             | 120 (seconds per call)                   |
| BATON_LLM_MAX_RETRIES         | llm.max_retries         | 3 (on 429 and 5xx, with backoff)         |
| BATON_LLM_CONTEXT             | llm.context             | 8192 (the model's context, in tokens; a quarter goes to history) |
| BATON_ROUTER_THRESHOLD        | router_threshold        | 0.8: with an LLM, --planner auto plans locally at or above this confidence (0 to 1; 1 = always the LLM) |
| BATON_API_TOKEN               | api_token               | none: `baton serve` needs one on a non-loopback address |
| BATON_MAX_UPLOAD_MB           | max_upload_mb           | 50 (per file uploaded to the server)     |
| BATON_MAX_IMAGE_PIXELS        | max_image_pixels        | 64000000 (per image uploaded to the server) |
| BATON_REQUEST_TIMEOUT         | request_timeout         | 600 (seconds per server request)         |
| BATON_SERVER_RUNS             | server_runs             | 16 (runs the server does at once; the rest wait) |

An LLM is configured when a model or a base URL is set.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from baton.media import BadInput

__all__ = ["JsonMode", "Settings", "default_home"]

JsonMode = Literal["auto", "json_schema", "json_object", "prompt"]
JSON_MODES: tuple[str, ...] = ("auto", "json_schema", "json_object", "prompt")


def default_home() -> Path:
    if os.environ.get("BATON_HOME"):
        return Path(os.environ["BATON_HOME"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("baton", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path
    cpu_slots: int = 2
    task_timeout: float = 300
    allow_network: bool = False
    allow_private_network: bool = False
    max_download_mb: float = 50
    max_media_seconds: float = 600
    allow_downloads: bool = False
    memory: str = ""
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str | None = None
    llm_json_mode: JsonMode = "auto"
    llm_timeout: float = 120
    llm_max_retries: int = 3
    llm_context: int = 8192
    router_threshold: float = 0.8
    api_token: str | None = field(default=None, repr=False)
    max_upload_mb: float = 50
    max_image_pixels: int = 64_000_000
    request_timeout: float = 600
    server_runs: int = 16
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_model or self.llm_base_url)

    @property
    def history_chars(self) -> int:
        """How much earlier conversation goes into a prompt: a quarter of the context, ~4 characters a token."""
        return self.llm_context

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment and ``$BATON_HOME/config.toml``; keyword overrides win."""
        home = default_home()
        values: dict[str, Any] = {}
        config = home / "config.toml"
        if config.exists():
            try:
                values = tomllib.loads(config.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise BadInput(f"{config} is not valid TOML ({exc}); fix or delete it") from None
        llm_file = values.get("llm", {})
        if not isinstance(llm_file, dict):
            raise BadInput(f"{config}: 'llm' must be a table ([llm]); fix or delete it")
        notices: list[str] = []

        def raw(env: str, key: str, default: Any, table: dict[str, Any] = values) -> Any:
            return os.environ[env] if os.environ.get(env, "") != "" else table.get(key, default)

        def number(env: str, key: str, default: float, table: dict[str, Any] = values, zero_ok: bool = False) -> float:
            given = raw(env, key, default, table)
            try:
                value = float(given)
            except (TypeError, ValueError):
                raise BadInput(f"{env} (or '{key}' in config.toml) must be a number, not {given!r}") from None
            if value < 0 or (value == 0 and not zero_ok):
                least = "zero or more" if zero_ok else "positive"
                raise BadInput(f"{env} (or '{key}' in config.toml) must be {least}, not {given!r}")
            return value

        def flag(env: str, key: str) -> bool:
            given = raw(env, key, False)
            if isinstance(given, bool):
                return given
            text = str(given).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise BadInput(f"{env} (or '{key}' in config.toml) must be true or false, not {given!r}")

        base_url = raw("OPENAI_BASE_URL", "base_url", None, llm_file)
        if base_url is None and os.environ.get("OPENAI_API_BASE"):
            base_url = os.environ["OPENAI_API_BASE"]
            notices.append("OPENAI_API_BASE is the old name; set OPENAI_BASE_URL instead")
        json_mode = str(raw("BATON_LLM_JSON_MODE", "json_mode", "auto", llm_file))
        if json_mode not in JSON_MODES:
            raise BadInput(f"BATON_LLM_JSON_MODE must be one of {', '.join(JSON_MODES)}, not {json_mode!r}")
        router_threshold = number("BATON_ROUTER_THRESHOLD", "router_threshold", 0.8, zero_ok=True)
        if router_threshold > 1:
            raise BadInput(
                f"BATON_ROUTER_THRESHOLD (or 'router_threshold' in config.toml) must be 0 to 1, not {router_threshold}"
            )
        settings = cls(
            home=home,
            cpu_slots=int(number("BATON_CPU_SLOTS", "cpu_slots", os.cpu_count() or 1)),
            task_timeout=number("BATON_TASK_TIMEOUT", "task_timeout", 300),
            allow_network=flag("BATON_ALLOW_NETWORK", "allow_network"),
            allow_private_network=flag("BATON_ALLOW_PRIVATE_NETWORK", "allow_private_network"),
            max_download_mb=number("BATON_MAX_DOWNLOAD_MB", "max_download_mb", 50),
            max_media_seconds=number("BATON_MAX_MEDIA_SECONDS", "max_media_seconds", 600),
            allow_downloads=flag("BATON_ALLOW_DOWNLOADS", "allow_downloads"),
            memory=str(raw("BATON_MEMORY", "memory", "")),
            llm_base_url=base_url or None,
            llm_api_key=raw("OPENAI_API_KEY", "api_key", None, llm_file) or None,
            llm_model=raw("BATON_LLM_MODEL", "model", None, llm_file) or None,
            llm_json_mode=json_mode,  # type: ignore[arg-type]
            llm_timeout=number("BATON_LLM_TIMEOUT", "timeout", 120, llm_file),
            llm_max_retries=int(number("BATON_LLM_MAX_RETRIES", "max_retries", 3, llm_file, zero_ok=True)),
            llm_context=int(number("BATON_LLM_CONTEXT", "context", 8192, llm_file)),
            router_threshold=router_threshold,
            api_token=str(raw("BATON_API_TOKEN", "api_token", "")).strip() or None,
            max_upload_mb=number("BATON_MAX_UPLOAD_MB", "max_upload_mb", 50),
            max_image_pixels=int(number("BATON_MAX_IMAGE_PIXELS", "max_image_pixels", 64_000_000)),
            request_timeout=number("BATON_REQUEST_TIMEOUT", "request_timeout", 600),
            server_runs=int(number("BATON_SERVER_RUNS", "server_runs", 16)),
            notices=tuple(notices),
        )
        return settings.replace(**overrides) if overrides else settings

    def replace(self, **changes: Any) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)
