"""Card fields shared by the builtin experts built on one library."""

from __future__ import annotations

from typing import Any

__all__ = ["OPENCV"]

# OpenCV-based experts: the fields every such card repeats
OPENCV: dict[str, Any] = {
    "popularity": 80_000,
    "popularity_source": "GitHub stars of opencv/opencv",
    "licence": "Apache-2.0",
    "extra": "vision",
}
