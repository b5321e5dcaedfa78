"""Prompt templates, kept as text files; ``{name}`` placeholders are filled by ``render``."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

__all__ = ["load_json", "render"]


@cache
def _text(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    """The template ``name`` with each ``{key}`` replaced (other braces, as in JSON, stay as written)."""
    text = _text(name)
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def load_json(name: str) -> Any:
    return json.loads(_text(name))
