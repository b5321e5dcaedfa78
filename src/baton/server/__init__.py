"""The HTTP server: OpenAI-compatible, HuggingGPT-compatible and native APIs, and the web UI.

``create_app(settings)`` builds the ASGI app that ``baton serve`` runs. FastAPI is imported only
when the app is built, so that importing baton (and ``baton --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ServerConfigError", "create_app"]

if TYPE_CHECKING:
    from baton.server.app import ServerConfigError, create_app


def __getattr__(name: str) -> Any:
    if name in __all__:
        from baton.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'baton.server' has no attribute {name!r}")
