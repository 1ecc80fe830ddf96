"""Measures: the instrument registry, scoring, reliability and aggregation checks.

- :func:`~coevidence.measures.registry.get_measure`, ``list_measures``, ``register_measure``:
  built-in definitions, plugins (entry-point group ``coevidence.measures``) and your own;
- :func:`~coevidence.measures.scoring.score`: item responses -> scale scores, with a report of
  every score not computed; ``score_responses_table`` for a study's long response table;
- :func:`~coevidence.measures.reliability.reliability`: alpha (Feldt CI), omega, item stats;
- :func:`~coevidence.measures.agreement.agreement`: ICC(1), ICC(2), r_wg(j) per unit;
- :func:`~coevidence.measures.loaders.load_measures`: definitions from YAML/JSON files.

Examples
--------
>>> from coevidence.measures import get_measure
>>> get_measure("aim").items
('aim_1', 'aim_2', 'aim_3', 'aim_4')
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "score": "coevidence.measures.scoring",
    "score_responses_table": "coevidence.measures.scoring",
    "ScoreResult": "coevidence.measures.scoring",
    "reliability": "coevidence.measures.reliability",
    "reliability_by": "coevidence.measures.reliability",
    "ReliabilityResult": "coevidence.measures.reliability",
    "agreement": "coevidence.measures.agreement",
    "AgreementResult": "coevidence.measures.agreement",
    "register_measure": "coevidence.measures.registry",
    "unregister_measure": "coevidence.measures.registry",
    "get_measure": "coevidence.measures.registry",
    "list_measures": "coevidence.measures.registry",
    "load_plugins": "coevidence.measures.registry",
    "load_measures": "coevidence.measures.loaders",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'coevidence.measures' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
