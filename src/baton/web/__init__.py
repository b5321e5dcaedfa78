"""The web UI (Gradio), mounted by the server at ``/ui``; Gradio is imported only when it is built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build", "mount"]

if TYPE_CHECKING:
    from baton.web.ui import build, mount


def __getattr__(name: str) -> Any:
    if name in __all__:
        from baton.web import ui

        return getattr(ui, name)
    raise AttributeError(f"module 'baton.web' has no attribute {name!r}")
