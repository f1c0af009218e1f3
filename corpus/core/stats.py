"""Mergeable counters: every rank writes its own, the executor adds them up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


class StageStats:
    """Flat, additive counters for one stage: `in`, `kept`, `dropped/<reason>`, `seconds`, `chars_in`...

    Keys are namespaced strings (`lang/en`, `pii/email`) so any stage can add what it measures and
    two ranks' stats merge by plain addition.
    """

    __slots__ = ("id", "name", "counters")

    def __init__(self, id: str, name: str = "", counters: dict[str, float] | None = None) -> None:
        self.id = id
        self.name = name or id
        self.counters: Counter[str] = Counter(counters or {})

    def add(self, key: str, amount: float = 1) -> None:
        self.counters[key] += amount

    def __getitem__(self, key: str) -> float:
        return self.counters.get(key, 0)

    def merge(self, other: StageStats) -> StageStats:
        self.counters.update(other.counters)
        return self

    @property
    def dropped(self) -> dict[str, int]:
        return {k.split("/", 1)[1]: int(v) for k, v in sorted(self.counters.items()) if k.startswith("dropped/")}

    def to_dict(self) -> dict[str, Any]:
        counters = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in sorted(self.counters.items())}
        return {"id": self.id, "name": self.name, "counters": counters}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        return cls(data["id"], data.get("name", ""), data.get("counters"))


def merge_stage_lists(ranks: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge per-rank lists of stage stats (same stages, same order) into one list."""
    merged: dict[str, StageStats] = {}
    for stages in ranks:
        for data in stages:
            stats = StageStats.from_dict(data)
            if stats.id in merged:
                merged[stats.id].merge(stats)
            else:
                merged[stats.id] = stats
    return [s.to_dict() for s in merged.values()]
