"""The replication registry: published analyses re-run from the library.

A replication is a function returning a list of :class:`Check` (one published number and the
number coevidence reproduces). Estimator families register theirs with :func:`replication`;
``coevidence reproduce`` runs them and prints the two side by side.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from coevidence.exceptions import OptionError

__all__ = ["Check", "Replication", "replication", "registry", "run", "run_all"]


@dataclass(frozen=True)
class Check:
    """One published quantity and its reproduction.

    ``passed`` when ``|reproduced - published| <= atol + rtol * |published|``.
    """

    quantity: str
    published: float
    reproduced: float
    atol: float = 0.0
    rtol: float = 0.0
    source: str = ""

    @property
    def difference(self) -> float:
        return self.reproduced - self.published

    @property
    def passed(self) -> bool:
        if not (math.isfinite(self.published) and math.isfinite(self.reproduced)):
            return False
        return abs(self.difference) <= self.atol + self.rtol * abs(self.published)


@dataclass(frozen=True)
class Replication:
    """A registered published analysis."""

    name: str
    title: str
    source: str
    run: Callable[[], list[Check]] = field(repr=False)


_REGISTRY: dict[str, Replication] = {}

#: Modules that register replications when imported (one per estimator family).
_PROVIDERS = (
    "coevidence.reproduce.mixed",
    "coevidence.reproduce.panel",
    "coevidence.reproduce.power",
)


def replication(name: str, title: str, source: str) -> Callable[[Callable[[], list[Check]]], Callable[[], list[Check]]]:
    """Register a replication function under ``name`` (decorator)."""

    def deco(fn: Callable[[], list[Check]]) -> Callable[[], list[Check]]:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise OptionError(f"replication {name!r} is already registered")
        _REGISTRY[name] = Replication(name=name, title=title, source=source, run=fn)
        return fn

    return deco


def registry() -> dict[str, Replication]:
    """All registered replications, by name (imports the family modules on first use)."""
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a family not written yet
            if exc.name != mod:
                raise
    return dict(sorted(_REGISTRY.items()))


def run(name: str) -> pd.DataFrame:
    """Run one replication; one row per check with published, reproduced and ``passed``."""
    reps = registry()
    if name not in reps:
        raise KeyError(f"unknown replication {name!r}; available: {', '.join(reps)}")
    checks = reps[name].run()
    return pd.DataFrame(
        {
            "replication": name,
            "quantity": [c.quantity for c in checks],
            "published": [c.published for c in checks],
            "reproduced": [c.reproduced for c in checks],
            "difference": [c.difference for c in checks],
            "tolerance": [c.atol + c.rtol * abs(c.published) for c in checks],
            "passed": [c.passed for c in checks],
            "source": [c.source for c in checks],
        }
    )


def run_all() -> pd.DataFrame:
    """Run every registered replication and stack the results."""
    frames = [run(name) for name in registry()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
