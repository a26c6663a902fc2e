"""A session's score: right of tried, per kind of exercise."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnviz.exercises.model import KIND_TITLES, KINDS


@dataclass
class Score:
    """How many exercises of each kind were tried and how many of them answered right."""

    tried: dict[str, int] = field(default_factory=dict)
    right: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, correct: bool) -> None:
        """Count one checked exercise (a shown answer counts as tried and wrong)."""
        self.tried[kind] = self.tried.get(kind, 0) + 1
        self.right[kind] = self.right.get(kind, 0) + int(correct)

    @property
    def total(self) -> tuple[int, int]:
        """(right, tried) over every kind."""
        return sum(self.right.values()), sum(self.tried.values())

    def rows(self) -> list[tuple[str, int, int]]:
        """(kind's title, right, tried) for each kind tried, in the kinds' order."""
        return [(KIND_TITLES[k], self.right.get(k, 0), self.tried[k]) for k in KINDS if self.tried.get(k)]
