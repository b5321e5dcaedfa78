"""Loaded experts, shared by the tasks of a process, within a memory budget per device.

An expert loads on first use; concurrent tasks that need it wait for that one load and then share
it. Before a load that would exceed its device's budget, idle experts are unloaded, least recently
used first; when the memory is held by experts that are running, the load waits for them to finish
instead of failing. A model larger than the whole budget is an error that says how to raise it. The
estimate comes from the card and is replaced by the measured size once loaded (and remembered for
later loads of the same model). Unloading hands freed memory back to the operating system.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import itertools
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baton.experts import ExpertError
from baton.media import BadInput

if TYPE_CHECKING:
    from baton.catalog import ModelCard
    from baton.experts import Expert

__all__ = ["ExpertCache", "LoadEvent", "default_budget", "parse_budget"]

MB = 1024**2
GB = 1024**3
_UNITS = {
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": MB,
    "mb": MB,
    "mib": MB,
    "g": GB,
    "gb": GB,
    "gib": GB,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_DEVICE = re.compile(r"cpu|mps|(cuda|xpu)(:[0-9]+)?")
_FORM = "DEVICE=SIZE, e.g. cpu=8GB,cuda:0=20GB (a bare SIZE such as 512MB is for the CPU)"


def parse_budget(text: str) -> dict[str, int]:
    """'cpu=8GB,cuda:0=20GB' -> {'cpu': 8 GiB, 'cuda:0': 20 GiB} (bytes; a bare '512MB' is the CPU's).

    Units are binary (1 GB = 1024**3 bytes) and required; raises BadInput naming the form.
    """
    budget: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        device, sep, amount = part.rpartition("=")
        device = device.strip().lower() if sep else "cpu"
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", amount)
        unit = match.group(2).lower() if match else ""
        if not _DEVICE.fullmatch(device) or match is None or unit not in _UNITS:
            raise BadInput(f"memory budget '{part}' must look like {_FORM}")
        size = int(float(match.group(1)) * _UNITS[unit])
        if size <= 0:
            raise BadInput(f"memory budget '{part}' must be more than zero; give it as {_FORM}")
        budget[_normal_device(device)] = size
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


def _human(size: int) -> str:
    return f"{size / GB:.1f} GB" if size >= GB else f"{size / MB:.1f} MB"


def _size_arg(size: int) -> str:
    """The smallest round SIZE for ``--memory`` that holds ``size`` bytes."""
    return f"{math.ceil(size / GB * 10) / 10:g}GB" if size >= GB else f"{max(1, math.ceil(size / MB))}MB"


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None elsewhere (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Collect the garbage of unloaded models and hand the freed heap back to the operating system.

    Weights converted at load (fp16 files run at fp32, say) live in heap memory; once freed, glibc keeps
    most of it in the process unless asked to trim, so a cycle of loads would creep past the budget.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


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
    last_used: int = 0  # a tick of the cache's clock: larger is more recent
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
        self._measured: dict[str, int] = {}  # model -> its size when last loaded
        self._clock = itertools.count(1)
        self._cond = threading.Condition()

    def used(self, device: str) -> int:
        """Bytes held on ``device`` by loaded experts and those loading."""
        with self._cond:
            return self._used_locked(device)

    def loaded(self) -> list[str]:
        with self._cond:
            return [model for model, entry in self._entries.items() if entry.loaded]

    def size_of(self, model: str) -> int | None:
        """The bytes a loaded (or loading) model is counted for, or None when it is not loaded."""
        with self._cond:
            entry = self._entries.get(model)
            return entry.size if entry is not None else None

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
                entry.last_used = next(self._clock)
                self._cond.notify_all()

    def get(self, card: ModelCard) -> Expert:
        """The loaded expert, without holding it (it may be unloaded later to make room)."""
        with self.lease(card) as expert:
            return expert

    def _acquire(self, card: ModelCard) -> _Entry:
        built: Expert | None = None
        unloaded = False
        with self._cond:
            while True:
                entry = self._entries.get(card.id)
                if entry is not None and entry.loaded:
                    entry.users += 1
                    entry.last_used = next(self._clock)
                    break
                if card.id in self._loading:
                    self._cond.wait()  # another task is loading it: share that load
                    continue
                if built is None:
                    built = card.build()
                size = self._measured.get(card.id) or built.memory_bytes
                entry = _Entry(expert=built, device=_normal_device(built.device), size=size)
                budget = self._budget_for(entry.device)
                if entry.size > budget:
                    raise ExpertError(
                        f"{card.id} needs about {_human(entry.size)} on {entry.device} but the whole budget there is "
                        f"{_human(budget)}; raise it with --memory DEVICE=SIZE, e.g. --memory "
                        f"{entry.device}={_size_arg(entry.size)} (or BATON_MEMORY)"
                    )
                fits, freed = self._make_room(entry.device, entry.size, budget)
                unloaded |= freed
                if fits:
                    self._entries[card.id] = entry
                    self._loading.add(card.id)
                    entry.users += 1
                    break
                self._cond.wait()  # the memory is held by running experts: wait for one to finish
        if unloaded:
            release_freed_memory()  # outside the lock: a full collection can take a while
        if entry.loaded:
            return entry
        return self._load(card, entry, budget)

    def _load(self, card: ModelCard, entry: _Entry, budget: int) -> _Entry:
        """Load an entry that is accounted for and marked loading; tell what happened."""
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
                entry.size = self._measured[card.id] = measured
            entry.loaded = True
            entry.last_used = next(self._clock)
            self._loading.discard(card.id)
            # measured larger than its estimate: unload idle experts until the device is within budget again
            _, unloaded = self._make_room(entry.device, 0, budget, partly=True)
            self._cond.notify_all()
        if unloaded:
            release_freed_memory()
        self._tell(LoadEvent(card.id, entry.device, "loaded", time.monotonic() - began, entry.size))
        return entry

    def _make_room(self, device: str, size: int, budget: int, partly: bool = False) -> tuple[bool, bool]:
        """Unload idle experts on ``device``, least recently used first, until ``size`` fits (lock held).

        Returns (whether it fits, whether any expert was unloaded). Idle experts stay loaded when
        unloading all of them would not be enough, unless ``partly``.
        """
        idle = sorted(
            (entry.last_used, model)
            for model, entry in self._entries.items()
            if entry.device == device and entry.loaded and entry.users == 0
        )
        used = self._used_locked(device)
        if not partly and used - sum(self._entries[model].size for _, model in idle) + size > budget:
            return False, False
        unloaded = False
        for _, model in idle:
            if used + size <= budget:
                break
            used -= self._unload_locked(model)
            unloaded = True
        return used + size <= budget, unloaded

    def _used_locked(self, device: str) -> int:
        return sum(e.size for e in self._entries.values() if e.device == device and (e.loaded or e.users))

    def _unload_locked(self, model: str) -> int:
        """Unload an idle expert; returns the bytes it was counted for."""
        entry = self._entries.pop(model)
        entry.expert.unload()
        entry.loaded = False
        self._tell(LoadEvent(model, entry.device, "unloaded", bytes=entry.size))
        return entry.size

    def _tell(self, event: LoadEvent) -> None:
        if self.on_load is not None:
            self.on_load(event)

    def clear(self) -> None:
        """Unload every idle expert."""
        with self._cond:
            idle = [m for m, e in self._entries.items() if e.loaded and e.users == 0]
            for model in idle:
                self._unload_locked(model)
        if idle:
            release_freed_memory()
