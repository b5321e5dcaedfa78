"""Loaded experts, shared by the tasks of a process, within a memory budget per device.

An expert loads on first use; concurrent tasks that need it wait for that one load and then share
it. Before a load that would exceed its device's budget, idle experts are unloaded, least recently
used first; when the memory is held by experts that are running, the load waits for them to finish
instead of failing. A model larger than the whole budget is an error that says how to raise it. The
estimate comes from the card and is replaced by the measured size once loaded.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baton.experts import ExpertError
from baton.media import BadInput

if TYPE_CHECKING:
    from baton.catalog import ModelCard
    from baton.experts import Expert

__all__ = ["ExpertCache", "LoadEvent", "default_budget", "parse_budget"]

GB = 1024**3
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": GB,
    "gb": GB,
    "t": 1024**4,
    "tb": 1024**4,
}


def parse_budget(text: str) -> dict[str, int]:
    """'cpu=8GB,cuda:0=20GB' -> {'cpu': 8 GiB, 'cuda:0': 20 GiB} (bytes); raises BadInput with the form."""
    budget: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        device, sep, amount = part.partition("=")
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", amount)
        unit = match.group(2).lower() if match else ""
        if not sep or not device.strip() or match is None or unit not in _UNITS:
            raise BadInput(f"memory budget '{part}' must look like DEVICE=SIZE, e.g. cpu=8GB,cuda:0=20GB")
        budget[_normal_device(device.strip())] = int(float(match.group(1)) * _UNITS[unit])
    return budget


def _normal_device(device: str) -> str:
    return "cuda:0" if device == "cuda" else device


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def default_budget(device: str) -> int:
    """Half the free RAM for the CPU; 90% of a GPU's free memory."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free * 0.9)
    return _available_ram() // 2


@dataclass(frozen=True)
class LoadEvent:
    """A model started or finished loading (``seconds`` is None at the start), or was unloaded."""

    model: str
    device: str
    action: str  # "loading", "loaded", "unloaded"
    seconds: float | None = None
    bytes: int = 0


@dataclass
class _Entry:
    expert: Expert
    device: str
    size: int
    users: int = 0
    last_used: float = 0.0
    loaded: bool = False


class ExpertCache:
    def __init__(
        self,
        budget: dict[str, int] | None = None,
        on_load: Callable[[LoadEvent], None] | None = None,
    ) -> None:
        self.budget = {_normal_device(d): b for d, b in (budget or {}).items()}
        self.on_load = on_load
        self._entries: dict[str, _Entry] = {}
        self._loading: set[str] = set()
        self._cond = threading.Condition()

    def used(self, device: str) -> int:
        with self._cond:
            return sum(e.size for e in self._entries.values() if e.device == device and (e.loaded or e.users))

    def loaded(self) -> list[str]:
        with self._cond:
            return [model for model, entry in self._entries.items() if entry.loaded]

    def _budget_for(self, device: str) -> int:
        if device not in self.budget:
            self.budget[device] = default_budget(device)
        return self.budget[device]

    @contextmanager
    def lease(self, card: ModelCard) -> Iterator[Expert]:
        """The loaded expert for a card, held for the duration of the ``with`` block."""
        entry = self._acquire(card)
        try:
            yield entry.expert
        finally:
            with self._cond:
                entry.users -= 1
                entry.last_used = time.monotonic()
                self._cond.notify_all()

    def get(self, card: ModelCard) -> Expert:
        """The loaded expert, without holding it (it may be unloaded later to make room)."""
        with self.lease(card) as expert:
            return expert

    def _acquire(self, card: ModelCard) -> _Entry:
        with self._cond:
            while True:
                entry = self._entries.get(card.id)
                if entry is not None and entry.loaded:
                    entry.users += 1
                    entry.last_used = time.monotonic()
                    return entry
                if card.id in self._loading:
                    self._cond.wait()  # another task is loading it: share that load
                    continue
                if entry is None:
                    expert = card.build()
                    entry = _Entry(expert=expert, device=_normal_device(expert.device), size=expert.memory_bytes)
                budget = self._budget_for(entry.device)
                if entry.size > budget:
                    raise ExpertError(
                        f"{card.id} needs about {entry.size / GB:.1f} GB on {entry.device} but the budget there is "
                        f"{budget / GB:.1f} GB; raise it with --memory {entry.device}=SIZE (or BATON_MEMORY)"
                    )
                if self._make_room(entry.device, entry.size, budget):
                    self._entries[card.id] = entry
                    self._loading.add(card.id)
                    entry.users += 1
                    break
                self._cond.wait()  # the memory is held by running experts: wait for one to finish
        began = time.monotonic()
        self._tell(LoadEvent(card.id, entry.device, "loading"))
        try:
            entry.expert.load()
        except BaseException:
            with self._cond:
                self._loading.discard(card.id)
                self._entries.pop(card.id, None)
                self._cond.notify_all()
            raise
        measured = entry.expert.measured_bytes()
        with self._cond:
            if measured:
                entry.size = measured
            entry.loaded = True
            entry.last_used = time.monotonic()
            self._loading.discard(card.id)
            self._cond.notify_all()
        self._tell(LoadEvent(card.id, entry.device, "loaded", time.monotonic() - began, entry.size))
        return entry

    def _make_room(self, device: str, size: int, budget: int) -> bool:
        """Unload idle experts on ``device``, least recently used first, until ``size`` fits (lock held)."""
        while self._used_locked(device) + size > budget:
            idle = [
                (entry.last_used, model)
                for model, entry in self._entries.items()
                if entry.device == device and entry.loaded and entry.users == 0
            ]
            if not idle:
                return False
            _, model = min(idle)
            self._unload_locked(model)
        return True

    def _used_locked(self, device: str) -> int:
        return sum(e.size for e in self._entries.values() if e.device == device and (e.loaded or e.users))

    def _unload_locked(self, model: str) -> None:
        entry = self._entries.pop(model)
        entry.expert.unload()
        entry.loaded = False
        gc.collect()
        self._tell(LoadEvent(model, entry.device, "unloaded", bytes=entry.size))

    def _tell(self, event: LoadEvent) -> None:
        if self.on_load is not None:
            self.on_load(event)

    def clear(self) -> None:
        with self._cond:
            for model in [m for m, e in self._entries.items() if e.loaded and e.users == 0]:
                self._unload_locked(model)
