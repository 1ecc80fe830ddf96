"""Suite-wide configuration.

The test tree mirrors the package (``tests/schemas``, ``tests/measures``, ``tests/data``,
``tests/models/<family>``, ``tests/results``, ``tests/design``, ...). ``tests/`` itself is on
``sys.path`` so every test module can import the one shared hypothesis strategies module,
``tests/strategies.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
