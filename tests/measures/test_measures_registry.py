"""Registry: built-ins, run-time registration, entry-point plugins (lazy, cached, guarded)."""

from __future__ import annotations

import sys
import warnings

import pytest

import coevidence
from coevidence.exceptions import PluginLoadWarning
from coevidence.measures import registry
from coevidence.schemas.measure import MeasureDefinition

BUILTIN_IDS = {
    "seer_value_research", "seer_confidence", "seer_org_value", "ebpas15", "oric", "aim", "iam",
    "fim", "sieu", "brownson_ebdm_gaps", "brownson_use_research", "research_use_types",
}
# what the domain brief marks as not (fully) verified against the paper
UNVERIFIED = {"seer_org_value", "ebpas15", "sieu", "brownson_use_research", "research_use_types"}


@pytest.fixture
def fresh_plugins():
    """Forget cached plugins and the tiny plugin module before and after each test."""
    registry._plugins = None
    sys.modules.pop("coevidence_tiny_plugin", None)
    yield
    registry._plugins = None
    sys.modules.pop("coevidence_tiny_plugin", None)


def test_builtins_and_verification_flags():
    table = registry.list_measures()
    assert BUILTIN_IDS <= set(table["id"])
    built = table[table["source"] == "builtin"].set_index("id")
    assert set(built.index) == BUILTIN_IDS
    assert set(built.index[built["verified"] == False]) == UNVERIFIED  # noqa: E712
    for mid in BUILTIN_IDS:
        m = registry.get_measure(mid)
        assert m.citation and m.verification_note, mid
        assert m.verified is not None


@pytest.mark.parametrize(
    ("mid", "counts", "rng", "rule"),
    [
        ("ebpas15", {"appeal": 4, "requirements": 3, "openness": 4, "divergence": 4}, (0, 4),
         "mean"),
        ("oric", {"change_commitment": 5, "change_efficacy": 7}, (1, 5), "mean"),
        ("aim", {"total": 4}, (1, 5), "mean"),
        ("seer_value_research", {"total": 7}, (1, 5), "sum"),
        ("seer_confidence", {"total": 7}, (1, 5), "sum"),
        ("sieu", {"validity_reliability": 9, "reliance_on_others": 3, "relevance": 4, "use": 8,
                  "ignore": 4}, (1, 5), "mean"),
        ("brownson_ebdm_gaps", {"gap_total": 20}, (0, 10), "difference_sum"),
        ("brownson_use_research", {"total": 6}, (1, 4), "mean"),
    ],
)
def test_builtin_structure_matches_domain_brief(mid, counts, rng, rule):
    m = registry.get_measure(mid)
    scales = {s.id: s for s in m.scales()}
    for sid, n in counts.items():
        assert len(scales[sid].items) == n
        assert m.rule(scales[sid]).value == rule
    assert (m.response_min, m.response_max) == rng


def test_adverse_subscales_flagged():
    assert registry.get_measure("ebpas15").subscales[3].direction == "adverse"
    sieu = {s.id: s for s in registry.get_measure("sieu").subscales}
    assert sieu["ignore"].direction == "adverse"
    assert registry.get_measure("oric").aggregation.check_agreement


def test_register_get_unregister():
    m = MeasureDefinition(id="test_reg", response_min=1, response_max=5, items=("a", "b"))
    registry.register_measure(m)
    try:
        assert registry.get_measure("test_reg") is m
        assert coevidence.get_measure("test_reg") is m
        row = registry.list_measures().set_index("id").loc["test_reg"]
        assert row["source"] == "registered"
        with pytest.raises(ValueError, match="already registered"):
            registry.register_measure(m)
        m2 = m.model_copy(update={"name": "v2"})
        registry.register_measure(m2, replace=True)
        assert registry.get_measure("test_reg").name == "v2"
    finally:
        registry.unregister_measure("test_reg")
    with pytest.raises(KeyError, match="available"):
        registry.get_measure("test_reg")
    with pytest.raises(TypeError):
        registry.register_measure({"id": "x"})  # type: ignore[arg-type]


def test_registered_overrides_builtin():
    original = registry.get_measure("aim")
    mine = original.model_copy(update={"name": "local aim"})
    registry.register_measure(mine)
    try:
        assert registry.get_measure("aim").name == "local aim"
    finally:
        registry.unregister_measure("aim")
    assert registry.get_measure("aim") == original


def write_plugin(root, entries: str, module: str = "") -> None:
    """A tiny installed distribution: a module and a dist-info with entry_points.txt."""
    (root / "coevidence_tiny_plugin.py").write_text(module)
    info = root / "coevidence_tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: coevidence-tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[coevidence.measures]\n{entries}\n")


PLUGIN_MODULE = '''
from coevidence.schemas.measure import MeasureDefinition

TINY = MeasureDefinition(id="tiny_plugin_measure", response_min=0, response_max=3,
                         items=("t1", "t2"), scoring="sum")

def several():
    return [MeasureDefinition(id=f"tiny_{i}", response_min=0, response_max=1, items=("x",))
            for i in range(2)]

def clash():
    return MeasureDefinition(id="aim", response_min=0, response_max=1, items=("x",))

NOT_A_MEASURE = 42
'''


def test_entry_point_plugin_loads(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    write_plugin(tmp_path,
                 "tiny = coevidence_tiny_plugin:TINY\nmany = coevidence_tiny_plugin:several",
                 PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        m = registry.get_measure("tiny_plugin_measure")
    assert m.items == ("t1", "t2")
    assert {"tiny_0", "tiny_1"} <= set(registry.load_plugins())
    table = registry.list_measures().set_index("id")
    assert table.loc["tiny_plugin_measure", "source"] == "plugin:tiny"
    from coevidence.testing import check_measure

    assert check_measure(m)["passed"].all()


def test_plugins_are_cached(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    first = registry.load_plugins()
    write_plugin(tmp_path, "tiny = coevidence_tiny_plugin:TINY", PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.load_plugins() is first  # no rescan
    assert "tiny_plugin_measure" in registry.load_plugins(reload=True)


def test_broken_plugins_become_warnings(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    write_plugin(
        tmp_path,
        "good = coevidence_tiny_plugin:TINY\n"
        "missing = coevidence_no_such_module:X\n"
        "wrong = coevidence_tiny_plugin:NOT_A_MEASURE\n"
        "clash = coevidence_tiny_plugin:clash",
        PLUGIN_MODULE,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginLoadWarning) as record:
        plugins = registry.load_plugins()
    messages = " | ".join(str(w.message) for w in record)
    assert "'missing'" in messages and "ModuleNotFoundError" in messages
    assert "'wrong'" in messages and "int" in messages
    assert "'clash'" in messages and "built-in" in messages
    assert set(plugins) == {"tiny_plugin_measure"}
    assert registry.get_measure("aim").items == ("aim_1", "aim_2", "aim_3", "aim_4")


@pytest.mark.parametrize("value", ["1", "true", "__all__"])
def test_env_var_disables_all_plugins(tmp_path, monkeypatch, fresh_plugins, value):
    write_plugin(tmp_path, "tiny = coevidence_tiny_plugin:TINY", PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.DISABLE_ENV, value)
    assert registry.load_plugins() == {}
    with pytest.raises(KeyError):
        registry.get_measure("tiny_plugin_measure")
    assert "aim" in set(registry.list_measures()["id"])  # built-ins unaffected


def test_env_var_disables_named_plugins(tmp_path, monkeypatch, fresh_plugins):
    write_plugin(tmp_path, "tiny = coevidence_tiny_plugin:TINY\n"
                 "missing = coevidence_no_such_module:X", PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.DISABLE_ENV, "missing, other")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        assert set(registry.load_plugins()) == {"tiny_plugin_measure"}


RECURSIVE_MODULE = '''
from coevidence.measures import registry
from coevidence.schemas.measure import MeasureDefinition

SEEN = registry.list_measures()["id"].tolist()   # a plugin that looks measures up on import
TINY = MeasureDefinition(id="tiny_recursive", response_min=0, response_max=1, items=("x",))
'''


def test_plugin_looking_up_measures_while_loading(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    write_plugin(tmp_path, "rec = coevidence_tiny_plugin:TINY", RECURSIVE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tiny_recursive" in registry.load_plugins()
    import coevidence_tiny_plugin

    assert "aim" in coevidence_tiny_plugin.SEEN  # built-ins visible, no infinite recursion
