"""The runner shared by the conformance checks (``check_measure``, ``check_result``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

__all__ = ["run_checks"]


def run_checks(
    checks: Iterable[tuple[str, Callable[[], str]]], label: str, *, raise_on_failure: bool
) -> pd.DataFrame:
    """Run every check; a frame ``check, passed, detail`` (every failure reported, not the first).

    With ``raise_on_failure`` an AssertionError lists the failed checks, starting with ``label``.
    """
    rows = []
    for name, fn in checks:
        try:
            rows.append((name, True, fn()))
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            rows.append((name, False, f"{type(exc).__name__}: {exc}"))
    table = pd.DataFrame(rows, columns=["check", "passed", "detail"])
    if raise_on_failure and not table["passed"].all():
        bad = table[~table["passed"]]
        lines = [f"{label} failed {len(bad)} check(s):"]
        lines += [f"  - {r.check}: {r.detail}" for r in bad.itertuples()]
        raise AssertionError("\n".join(lines))
    return table
