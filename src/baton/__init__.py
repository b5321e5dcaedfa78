"""baton: a language model (or a local planner) conducting a team of expert models.

Public names are imported lazily so that ``baton --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Artifact": "baton.media",
    "Assistant": "baton.assistant",
    "BadInput": "baton.media",
    "Catalog": "baton.catalog",
    "Expert": "baton.experts",
    "ModelCard": "baton.catalog",
    "Plan": "baton.plan",
    "PlanError": "baton.plan",
    "Resource": "baton.media",
    "Result": "baton.assistant",
    "Run": "baton.runs",
    "Session": "baton.runs",
    "Settings": "baton.config",
    "Store": "baton.store",
    "Task": "baton.plan",
    "TaskSpec": "baton.tasks",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from baton.assistant import Assistant, Result
    from baton.catalog import Catalog, ModelCard
    from baton.config import Settings
    from baton.experts import Expert
    from baton.media import Artifact, BadInput, Resource
    from baton.plan import Plan, PlanError, Task
    from baton.runs import Run, Session
    from baton.store import Store
    from baton.tasks import TaskSpec


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'baton' has no attribute {name!r}")
