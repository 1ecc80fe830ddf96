"""The measure registry: built-in definitions, plugins and measures registered at run time.

Three sources; when ids clash, a registered measure wins over everything and a plugin can
never replace a built-in:

1. measures registered with :func:`register_measure` (notebook use, no packaging);
2. built-in definitions (YAML files in ``coevidence/measures/builtin/``);
3. plugins: entry points in the group ``coevidence.measures`` whose object is a
   :class:`MeasureDefinition`, an iterable of them, or a callable returning either. Plugins are
   loaded lazily (on the first lookup that needs them) and cached; a plugin that fails to load,
   or that gives something else, becomes a :class:`~coevidence.exceptions.PluginLoadWarning`
   and is skipped; a plugin id that clashes with a built-in or an earlier plugin is skipped with
   a warning. Set the environment variable ``COEVIDENCE_DISABLE_PLUGINS`` to
   ``1``/``true``/``all``/``__all__`` to disable every plugin, or to a comma-separated list of
   entry-point names to disable those.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from importlib import metadata, resources
from typing import Any

import pandas as pd

from coevidence.exceptions import OptionError, PluginLoadWarning
from coevidence.measures.loaders import measures_from_data
from coevidence.schemas.measure import MeasureDefinition

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "get_measure",
    "list_measures",
    "load_plugins",
    "register_measure",
    "unregister_measure",
]

ENTRY_POINT_GROUP = "coevidence.measures"
DISABLE_ENV = "COEVIDENCE_DISABLE_PLUGINS"

_lock = threading.RLock()
_user: dict[str, MeasureDefinition] = {}
_builtin: dict[str, MeasureDefinition] | None = None
_plugins: dict[str, MeasureDefinition] | None = None
_plugin_origin: dict[str, str] = {}
_loading = False


def _load_builtin() -> dict[str, MeasureDefinition]:
    global _builtin
    with _lock:
        if _builtin is None:
            from coevidence.measures.loaders import safe_load_text

            found: dict[str, MeasureDefinition] = {}
            folder = resources.files("coevidence.measures") / "builtin"
            for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                if not entry.name.endswith(".yaml"):
                    continue
                data = safe_load_text(entry.read_text(encoding="utf-8"), "yaml")
                for m in measures_from_data(data, source=f"builtin/{entry.name}"):
                    if m.id in found:  # pragma: no cover - guarded by the tests
                        raise RuntimeError(f"duplicate built-in measure id {m.id!r}")
                    found[m.id] = m
            _builtin = found
        return _builtin


def _disabled() -> tuple[bool, set[str]]:
    raw = os.environ.get(DISABLE_ENV, "").strip()
    if not raw:
        return False, set()
    if raw.lower() in ("1", "true", "yes", "all", "__all__"):
        return True, set()
    return False, {p.strip() for p in raw.split(",") if p.strip()}


def _as_definitions(obj: Any) -> list[MeasureDefinition]:
    if callable(obj) and not isinstance(obj, MeasureDefinition):
        obj = obj()
    if isinstance(obj, MeasureDefinition):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, dict)):
        items = list(obj)
        if items and all(isinstance(x, MeasureDefinition) for x in items):
            return items
    raise TypeError(
        "a coevidence.measures entry point must give a MeasureDefinition, an iterable of them, "
        f"or a callable returning either; got {type(obj).__name__}"
    )


def load_plugins(*, reload: bool = False) -> dict[str, MeasureDefinition]:
    """Load (once, then cached) the measures contributed by installed plugins.

    Parameters
    ----------
    reload : bool, default False
        Scan the entry points again (e.g. after installing a plugin in a running session).

    Returns
    -------
    dict of str to MeasureDefinition

    Examples
    --------
    >>> isinstance(load_plugins(), dict)
    True
    """
    global _plugins, _loading
    with _lock:
        if _plugins is not None and not reload:
            return _plugins
        if _loading:  # a plugin looked measures up while being loaded: no recursion
            return {}
        all_off, names_off = _disabled()
        found: dict[str, MeasureDefinition] = {}
        origin: dict[str, str] = {}
        if not all_off:
            _loading = True
            try:
                builtin = _load_builtin()
                for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                    if ep.name in names_off:
                        continue
                    try:
                        defs = _as_definitions(ep.load())
                    except Exception as exc:  # noqa: BLE001 - any plugin failure is a warning
                        warnings.warn(
                            f"measure plugin {ep.name!r} ({ep.value}) failed to load and is "
                            f"ignored: {type(exc).__name__}: {exc}",
                            PluginLoadWarning,
                            stacklevel=2,
                        )
                        continue
                    for d in defs:
                        clash = "a built-in" if d.id in builtin else (
                            f"plugin {origin[d.id]!r}" if d.id in found else None)
                        if clash:
                            warnings.warn(
                                f"measure plugin {ep.name!r} defines {d.id!r}, already defined "
                                f"by {clash}; the plugin's definition is ignored",
                                PluginLoadWarning,
                                stacklevel=2,
                            )
                            continue
                        found[d.id] = d
                        origin[d.id] = ep.name
            finally:
                _loading = False
        _plugins = found
        _plugin_origin.clear()
        _plugin_origin.update(origin)
        return _plugins


def register_measure(definition: MeasureDefinition, *, replace: bool = False) -> MeasureDefinition:
    """Register a measure for this session (looked up before plugins and built-ins).

    Parameters
    ----------
    definition : MeasureDefinition
    replace : bool, default False
        Allow replacing a measure already registered with the same id.

    Returns
    -------
    MeasureDefinition
        The definition (so it can be used as a decorator-like one-liner).

    Examples
    --------
    >>> m = MeasureDefinition(id="doc_example", response_min=1, response_max=5, items=("a",))
    >>> _ = register_measure(m, replace=True)
    >>> get_measure("doc_example") is m
    True
    >>> unregister_measure("doc_example")
    """
    if not isinstance(definition, MeasureDefinition):
        raise TypeError(f"expected a MeasureDefinition, got {type(definition).__name__}")
    with _lock:
        if definition.id in _user and not replace:
            raise OptionError(
                f"measure {definition.id!r} is already registered; pass replace=True to replace it"
            )
        _user[definition.id] = definition
    return definition


def unregister_measure(measure_id: str) -> None:
    """Remove a measure registered with :func:`register_measure` (KeyError if absent).

    Examples
    --------
    >>> unregister_measure("no_such")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    KeyError: 'no_such'
    """
    with _lock:
        del _user[measure_id]


def _all() -> dict[str, tuple[MeasureDefinition, str]]:
    out: dict[str, tuple[MeasureDefinition, str]] = {}
    for mid, m in _load_builtin().items():
        out[mid] = (m, "builtin")
    for mid, m in load_plugins().items():
        out[mid] = (m, f"plugin:{_plugin_origin.get(mid, '?')}")
    for mid, m in _user.items():
        out[mid] = (m, "registered")
    return out


def get_measure(measure_id: str) -> MeasureDefinition:
    """The definition registered under ``measure_id``.

    Raises
    ------
    KeyError
        Naming the available ids.

    Examples
    --------
    >>> get_measure("oric").subscales[0].id
    'change_commitment'
    """
    with _lock:
        if measure_id in _user:
            return _user[measure_id]
        builtin = _load_builtin()
        if measure_id in builtin:  # plugins cannot replace built-ins: no scan needed
            return builtin[measure_id]
        plugins = load_plugins()
        if measure_id in plugins:
            return plugins[measure_id]
        known = sorted({*_user, *plugins, *builtin})
    raise KeyError(f"no measure {measure_id!r}; available: {', '.join(known)}")


def list_measures() -> pd.DataFrame:
    """One row per available measure, sorted by id.

    Columns: ``id``, ``name``, ``instrument``, ``construct``, ``level``, ``n_items``,
    ``scales``, ``scoring``, ``response_range``, ``verified``, ``source`` (``builtin``,
    ``plugin:<entry point>`` or ``registered``).

    Examples
    --------
    >>> "ebpas15" in set(list_measures()["id"])
    True
    """
    rows = []
    with _lock:
        for mid, (m, source) in sorted(_all().items()):
            rows.append({
                "id": mid,
                "name": m.name,
                "instrument": m.instrument,
                "construct": m.construct.value,
                "level": m.level.value,
                "n_items": len(m.items),
                "scales": ", ".join(s.id for s in m.scales()),
                "scoring": ", ".join(sorted({m.rule(s).value for s in m.scales()})),
                "response_range": f"{m.response_min:g}-{m.response_max:g}",
                "verified": m.verified,
                "source": source,
            })
    return pd.DataFrame(rows)
