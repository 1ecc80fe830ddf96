"""coevidence's fast mixed-model engine (``engine="fast"``).

Profiled REML/ML for linear mixed models with nested (or single) grouping factors, random
intercepts and slopes at any level, unstructured or diagonal covariance per term. See
``docs/models/fast_engine.md`` for the algorithm, accuracy against lme4 and benchmarks.

Examples
--------
>>> from coevidence.models.mixed._fast import FastEngine
>>> FastEngine.name
'fast'
"""

from .engine import SINGULAR_TOL, FastEngine, is_singular, theta_lower

__all__ = ["SINGULAR_TOL", "FastEngine", "is_singular", "theta_lower"]
