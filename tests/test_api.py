"""The public names are what the package promises, and each one resolves."""

from __future__ import annotations

import baton

PUBLIC = [
    "Artifact",
    "Assistant",
    "BadInput",
    "Catalog",
    "Expert",
    "ModelCard",
    "Plan",
    "PlanError",
    "Resource",
    "Result",
    "Run",
    "Session",
    "Settings",
    "Store",
    "Task",
    "TaskSpec",
]


def test_public_names_are_sorted_and_documented() -> None:
    assert baton.__all__ == sorted(baton.__all__)
    assert baton.__all__ == PUBLIC


def test_every_public_name_resolves_to_its_class() -> None:
    for name in baton.__all__:
        value = getattr(baton, name)
        assert value.__name__ == name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        baton.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("baton.NoSuchThing should not exist")
